"""Run time: the manifest of prebuilt files, selection, verification, locks, the JIT cache and the
loader. Imports only the declarations, the standard library and `packaging`; it reaches the compile
tier only inside the JIT path (`torchwheel.runtime.loader` -> `torchwheel.compile.jit`)."""
