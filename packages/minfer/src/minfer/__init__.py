"""minfer: small inference kernels for PyTorch, prebuilt or compiled on first use."""

from .ops import (
    apply_rope,
    fused_add_rmsnorm,
    gelu_tanh_and_mul,
    loaded_specs,
    rmsnorm,
    silu_and_mul,
)

__all__ = [
    "apply_rope",
    "fused_add_rmsnorm",
    "gelu_tanh_and_mul",
    "loaded_specs",
    "rmsnorm",
    "silu_and_mul",
]
__version__ = "0.1.0"
