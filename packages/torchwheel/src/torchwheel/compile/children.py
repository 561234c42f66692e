"""Child processes that die with the process that started them.

A builder killed with SIGKILL runs no cleanup, and its ninja, left behind, would go on
compiling into a directory nobody will use (and die of SIGPIPE at its next line of output,
orphaning its compilers). So ninja is started through a small exec wrapper that asks the
kernel (`prctl(PR_SET_PDEATHSIG, SIGTERM)`) to send it SIGTERM when its parent dies; on SIGTERM
ninja kills the process group of every running job (the compiler drivers and their cc1plus,
cicc, ptxas) and exits. A wrapper rather than `preexec_fn`, which may deadlock in a process
with threads, as torch's processes are.
"""

from __future__ import annotations

import os
import sys

_PR_SET_PDEATHSIG = 1

# argv: parent pid, executable, its arguments. The signal is set before the parent check, so a
# parent that died in between is caught by the check and one that dies after by the signal.
_WRAPPER = f"""
import ctypes, os, signal, sys
if ctypes.CDLL(None, use_errno=True).prctl({_PR_SET_PDEATHSIG}, signal.SIGTERM) != 0:
    sys.exit("prctl(PR_SET_PDEATHSIG) failed")
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def dying_with_parent(command: list[str]) -> list[str]:
    """`command`, wrapped so that it gets SIGTERM when this process (or thread) dies.

    The wrapper's parent must be the caller itself (spawn the result directly, not through a
    shell). Where there is no prctl (not Linux) or no Python to run the wrapper, the command is
    returned as is.
    """
    if not sys.platform.startswith("linux") or not sys.executable:
        return command
    return [sys.executable, "-I", "-S", "-c", _WRAPPER, str(os.getpid()), *command]
