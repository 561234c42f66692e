// A torch-free unit: what it needs from the system is all the audit sees.
extern "C" float plain_scale(float x) { return 2.0f * x; }
