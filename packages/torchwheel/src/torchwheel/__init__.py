"""torchwheel: build, package and load PyTorch C++/CUDA extensions, prebuilt or just in time."""

from .errors import TorchwheelError
from .loader import LoadedSpec, Loader
from .project import Project
from .spec import JitSpec

__all__ = ["JitSpec", "LoadedSpec", "Loader", "Project", "TorchwheelError"]
__version__ = "0.1.0"
