"""minfer's specs: one per (op, dtype, device), from the sources in `csrc/`."""

from __future__ import annotations

from pathlib import Path

from torchwheel import JitSpec
from torchwheel.spec import Device

OPS = ("rmsnorm", "fused_add_rmsnorm", "silu_and_mul", "gelu_tanh_and_mul", "apply_rope")
DTYPES = ("fp16", "bf16", "fp32")
DEVICES: tuple[Device, ...] = ("cpu", "cuda")
PACKAGE_DIR = Path(__file__).parent
# Every binding is on torch's stable ABI (csrc/include/minfer/binding.h), so one build serves
# every torch from this one on: the GPU machine's torch 2.11 is the oldest it is proven on.
MIN_TORCH = "2.11"


def csrc_dir() -> Path:
    """The sources: packaged ones in an installed minfer, the repository's in a checkout."""
    packaged = PACKAGE_DIR / "csrc"
    if packaged.is_dir():
        return packaged
    return PACKAGE_DIR.parents[3] / "csrc"


def spec_name(op: str, dtype: str, device: str) -> str:
    return f"{op}_{dtype}_{device}"


def make_specs() -> list[JitSpec]:
    csrc = csrc_dir()
    specs = []
    for device in DEVICES:
        for op in OPS:
            kernel = csrc / "cpu" / f"{op}.cpp" if device == "cpu" else csrc / "cuda" / f"{op}.cu"
            for dtype in DTYPES:
                name = spec_name(op, dtype, device)
                defines = [f"-DMINFER_DTYPE_{dtype.upper()}", f"-DMINFER_SPEC_NAME={name}"]
                if device == "cuda":
                    defines.append("-DMINFER_CUDA")
                specs.append(
                    JitSpec(
                        name=name,
                        sources=[kernel],
                        torch_sources=[csrc / "bindings" / f"{op}.cpp"],
                        device=device,
                        include_dirs=[csrc / "include"],
                        extra_cflags=defines,
                        extra_cuda_cflags=defines,
                        root=csrc,
                        torch_abi="stable",
                        min_torch=MIN_TORCH,
                    )
                )
    return specs
