"""Release: ahead-of-time builds into prebuilt dirs, the audit, variant wheels, the matrix, the CI
workflow and the PEP 517 backend. Build-only: may import pyelftools and auditwheel."""
