"""The GPUs this process can see, and the CUDA version of the driver: asked in one place.

Asking initialises CUDA (about 0.2 s), so only CUDA specs and `doctor` ask.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    capability: tuple[int, int]  # (9, 0) for an H100


def visible_gpus() -> tuple[Gpu, ...]:
    import torch

    if not torch.cuda.is_available():
        return ()
    return tuple(
        Gpu(index, torch.cuda.get_device_name(index), torch.cuda.get_device_capability(index))
        for index in range(torch.cuda.device_count())
    )


def capabilities(gpus: tuple[Gpu, ...]) -> tuple[tuple[int, int], ...]:
    """The distinct capabilities of `gpus`, sorted: what a binary must run on."""
    return tuple(sorted({gpu.capability for gpu in gpus}))


def driver_cuda_version() -> str | None:
    """The CUDA version the installed driver supports ("13.0"), from libcuda itself."""
    import ctypes  # only CUDA specs ask

    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
        version = ctypes.c_int()
        if libcuda.cuDriverGetVersion(ctypes.byref(version)) != 0:
            return None
    except (OSError, AttributeError):
        return None
    return f"{version.value // 1000}.{version.value % 1000 // 10}"
