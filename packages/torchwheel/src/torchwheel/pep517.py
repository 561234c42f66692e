"""The PEP 517 backend's public name (`build-backend = "torchwheel.pep517"`); the work is in
`torchwheel.release.pep517`."""

from torchwheel.release.pep517 import build_sdist, build_wheel

__all__ = ["build_sdist", "build_wheel"]
