"""torchwheel: build, package and load PyTorch C++/CUDA extensions, prebuilt or just in time."""

from torchwheel.errors import TorchwheelError
from torchwheel.project import Project
from torchwheel.runtime.loader import LoadedSpec, Loader
from torchwheel.spec import JitSpec

__all__ = ["JitSpec", "LoadedSpec", "Loader", "Project", "TorchwheelError"]
__version__ = "0.1.0"
