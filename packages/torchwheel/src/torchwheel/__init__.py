"""torchwheel: build, package and load PyTorch C++/CUDA extensions, prebuilt or just in time."""

from __future__ import annotations

from torchwheel.errors import TorchwheelError
from torchwheel.project import Project
from torchwheel.runtime.loader import LoadedSpec, Loader
from torchwheel.spec import JitSpec

__all__ = ["JitSpec", "LoadedSpec", "Loader", "Project", "TorchwheelError", "load_package"]
__version__ = "0.1.0"


def load_package(package: str) -> Loader:
    """Load every spec of `package`'s `[tool.torchwheel]` table that the running torch can use;
    call it from the package's `__init__.py` as `torchwheel.load_package(__name__)`
    (runtime/package.py). Imported here on first call: a package that loads op by op never reads
    a table."""
    from torchwheel.runtime.package import load_package as load

    return load(package)
