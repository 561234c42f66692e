"""minfer: small inference kernels for PyTorch, prebuilt or compiled on first use.

The ops (and torch with them) are imported on first use of one of them, not by `import minfer`:
`torchwheel build` imports `minfer._project` for the specs, and importing torch there was most of a
no-op rebuild (1.4 of 1.5 s, docs/benchmarks.md). `from minfer import rmsnorm` works as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
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


def __getattr__(name: str) -> object:
    if name in __all__:
        from . import ops

        # Kept in the package, so the next `minfer.rmsnorm` is a plain attribute, not this call
        # (1 us of a 12 us op call at decode size).
        value = globals()[name] = getattr(ops, name)
        return value
    raise AttributeError(f"module 'minfer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
