"""minfer's Python API: argument checks, then the op of the input's dtype and device.

Each (op, dtype, device) is its own compiled spec, loaded the first time it is called: a
process that only runs bf16 rmsnorm on CUDA never loads (or JIT-builds) anything else.
"""

from __future__ import annotations

import torch

from torchwheel import LoadedSpec, Loader
from torchwheel.runtime.package import package_project

from ._project import spec_name

_DTYPES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}
# The project as pyproject.toml's [tool.torchwheel] declares it. minfer loads op by op, on first
# call, rather than everything at import (torchwheel.load_package), so a process that runs only
# bf16 rmsnorm on CUDA loads nothing else.
_loader = Loader(package_project("minfer"))
# The op of each (op, dtype, device type), once loaded: a call looks it up in one dict.
_ops: dict[tuple[str, torch.dtype, str], torch._ops.OpOverload] = {}
_DEVICE_TYPES = ("cpu", "cuda")


def loaded_specs() -> dict[str, LoadedSpec]:
    """The specs this process has loaded, with where each came from (prebuilt or JIT) and why."""
    return _loader.loaded()


def _fake_mutating_op(*args: object) -> None:
    # Every minfer op writes into its arguments and returns nothing, so under FakeTensor
    # (torch.compile, opcheck) there is nothing to compute.
    return None


def _op(op: str, tensor: torch.Tensor) -> torch._ops.OpOverload:
    key = (op, tensor.dtype, tensor.device.type)
    found = _ops.get(key)
    if found is None:
        name = spec_name(op, _DTYPES[tensor.dtype], tensor.device.type)
        _loader.load(name)
        torch.library.register_fake(f"minfer::{name}", _fake_mutating_op)
        found = _ops[key] = getattr(torch.ops.minfer, name).default  # torch.ops is untyped
    return found


def _fail(op: str, message: str) -> None:
    raise ValueError(f"minfer.{op}: {message}")


def _check(op: str, **tensors: torch.Tensor) -> None:
    """Same dtype (a supported one), same device (CPU or CUDA), contiguous: or one clear line.
    The common case is one pass of attribute reads; only a failure works out which line to say."""
    values = tuple(tensors.values())
    first = values[0]
    if isinstance(first, torch.Tensor) and first.dtype in _DTYPES and first.device.type in _DEVICE_TYPES:
        dtype, device = first.dtype, first.device
        if all(isinstance(t, torch.Tensor) and t.dtype == dtype and t.device == device and t.is_contiguous()
               for t in values):  # fmt: skip
            return
    _explain(op, tensors)


def _explain(op: str, tensors: dict[str, torch.Tensor]) -> None:
    first_name, first = next(iter(tensors.items()))
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"minfer.{op}: {name} must be a torch.Tensor, got {type(tensor).__name__}")
        if tensor.dtype not in _DTYPES:
            _fail(op, f"{name} has dtype {tensor.dtype}; use float16, bfloat16 or float32")
        if tensor.device.type not in ("cpu", "cuda"):
            _fail(op, f"{name} is on {tensor.device}; minfer runs on CPU and CUDA")
        if tensor.dtype != first.dtype:
            _fail(op, f"{name} has dtype {tensor.dtype} but {first_name} has {first.dtype}; cast one")
        if tensor.device != first.device:
            _fail(op, f"{name} is on {tensor.device} but {first_name} is on {first.device}; move one")
        if not tensor.is_contiguous():
            _fail(op, f"{name} is not contiguous; pass {name}.contiguous()")


def _rows(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` as [rows, last dim], as the kernels take it: a view only where it is not so already."""
    return tensor if tensor.dim() == 2 else tensor.view(-1, tensor.shape[-1])


def _check_norm(op: str, input: torch.Tensor, weight: torch.Tensor) -> None:
    if input.dim() < 1:
        _fail(op, "input is a scalar; give it a hidden dimension")
    if weight.dim() != 1 or weight.shape[0] != input.shape[-1]:
        _fail(
            op,
            f"weight has shape {tuple(weight.shape)}, expected ({input.shape[-1]},) to match the last dim of input",
        )


def rmsnorm(input: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """`input * rsqrt(mean(input**2, -1) + eps) * weight`, computed in float32."""
    _check("rmsnorm", input=input, weight=weight)
    _check_norm("rmsnorm", input, weight)
    out = torch.empty_like(input)
    _op("rmsnorm", input)(_rows(out), _rows(input), weight, float(eps))
    return out


def fused_add_rmsnorm(input: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> None:
    """In place: `residual += input`, then `input = rmsnorm(residual) * weight`."""
    _check("fused_add_rmsnorm", input=input, residual=residual, weight=weight)
    _check_norm("fused_add_rmsnorm", input, weight)
    if residual.shape != input.shape:
        _fail(
            "fused_add_rmsnorm",
            f"residual has shape {tuple(residual.shape)}, expected {tuple(input.shape)} like input",
        )
    _op("fused_add_rmsnorm", input)(_rows(input), _rows(residual), weight, float(eps))


def _gated(op: str, input: torch.Tensor) -> torch.Tensor:
    _check(op, input=input)
    if input.dim() < 1 or input.shape[-1] % 2:
        _fail(op, f"input's last dim must be even (gate and up halves), got shape {tuple(input.shape)}")
    out = input.new_empty((*input.shape[:-1], input.shape[-1] // 2))
    _op(op, input)(_rows(out), _rows(input))
    return out


def silu_and_mul(input: torch.Tensor) -> torch.Tensor:
    """`silu(x[..., :d]) * x[..., d:]` for input of last dim 2d."""
    return _gated("silu_and_mul", input)


def gelu_tanh_and_mul(input: torch.Tensor) -> torch.Tensor:
    """`gelu(x[..., :d], approximate='tanh') * x[..., d:]` for input of last dim 2d."""
    return _gated("gelu_tanh_and_mul", input)


def apply_rope(
    q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor, theta: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary embedding, NeoX style (rotating halves), in place on q [tokens, heads, head_dim]
    and k [tokens, kv_heads, head_dim] at integer `positions` [tokens]; returns (q, k)."""
    op = "apply_rope"
    _check(op, q=q, k=k)
    if q.dim() != 3 or k.dim() != 3:
        _fail(op, f"q and k must be [tokens, heads, head_dim], got {tuple(q.shape)} and {tuple(k.shape)}")
    if q.shape[0] != k.shape[0] or q.shape[2] != k.shape[2]:
        _fail(op, f"q {tuple(q.shape)} and k {tuple(k.shape)} differ in tokens or head_dim")
    if q.shape[2] % 2:
        _fail(op, f"head_dim must be even, got {q.shape[2]}")
    if positions.dtype != torch.int64 or positions.shape != (q.shape[0],):
        _fail(
            op,
            f"positions must be int64 of shape ({q.shape[0]},), got {positions.dtype} {tuple(positions.shape)}",
        )
    if positions.device != q.device:
        _fail(op, f"positions is on {positions.device} but q is on {q.device}; move one")
    _op(op, q)(q, k, positions.contiguous(), float(theta))
    return q, k
