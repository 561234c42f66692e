"""minfer's Python API: the op of the input's dtype and device, with its arguments checked.

Each (op, dtype, device) is its own compiled spec, loaded the first time it is called: a
process that only runs bf16 rmsnorm on CUDA never loads (or JIT-builds) anything else.

A call does little host work besides its checks (issue 13: host time at decode size): one dict
lookup picks the op, an op that returns a tensor allocates it once, and N-D inputs go to the op
as they are (the bindings read them as rows). The Python checks run on every call, before the
op: the op checks its arguments too (csrc/include/minfer/binding.h, for direct torch.ops calls),
but an error thrown out of a stable-ABI op crashed torch 2.11's dispatcher (a segfault on the
H100, 2026-12-07, docs/benchmarks.md), so minfer never lets its op be the one that refuses.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from torchwheel import LoadedSpec, Loader
from torchwheel.runtime.package import package_project

from ._project import spec_name

_DTYPES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}
# The project as pyproject.toml's [tool.torchwheel] declares it. minfer loads op by op, on first
# call, rather than everything at import (torchwheel.load_package), so a process that runs only
# bf16 rmsnorm on CUDA loads nothing else.
_loader = Loader(package_project("minfer"))
_DEVICE_TYPES = ("cpu", "cuda")
# The loaded op of each (dtype, is_cuda), per op: a call looks it up with two attribute reads
# (`device.type` would build a torch.device per call); the checks before it refuse other devices.
_Key = tuple[torch.dtype, bool]
_LOADED: dict[str, dict[_Key, torch._ops.OpOverload]] = {
    op: {} for op in ("rmsnorm", "fused_add_rmsnorm", "silu_and_mul", "gelu_tanh_and_mul", "apply_rope")
}
# What the checks return: the error to raise, or None if all is well.
_Problem = Exception | None


def loaded_specs() -> dict[str, LoadedSpec]:
    """The specs this process has loaded, with where each came from (prebuilt or JIT) and why."""
    return _loader.loaded()


def _fake_mutating_op(*args: object) -> None:
    # Every minfer op writes into its arguments and returns nothing, so under FakeTensor
    # (torch.compile, opcheck) there is nothing to compute.
    return None


def _op(op: str, tensor: torch.Tensor) -> torch._ops.OpOverload:
    """The op of `tensor`'s dtype and device, loaded (prebuilt or JIT) on first use."""
    key = (tensor.dtype, tensor.is_cuda)
    found = _LOADED[op].get(key)
    if found is None:
        name = spec_name(op, _DTYPES[tensor.dtype], tensor.device.type)
        _loader.load(name)
        torch.library.register_fake(f"minfer::{name}", _fake_mutating_op)
        found = _LOADED[op][key] = getattr(torch.ops.minfer, name).default  # torch.ops is untyped
    return found


def _checked(op: str, problem: Callable[..., _Problem], *args: torch.Tensor) -> torch._ops.OpOverload:
    """The op for `args`, once they are checked: one line naming the argument where they are wrong."""
    error = problem(*args)
    if error is not None:
        raise error
    first = args[0]
    found = _LOADED[op].get((first.dtype, first.is_cuda))
    return found if found is not None else _op(op, first)


def _same_kind(tensors: tuple[torch.Tensor, ...]) -> bool:
    """The common case in the cheapest attribute reads (`get_device` builds no torch.device):
    tensors of one supported dtype, on one CPU or CUDA device, contiguous."""
    first = tensors[0]
    if not isinstance(first, torch.Tensor) or first.dtype not in _DTYPES or not (first.is_cuda or first.is_cpu):
        return False
    dtype, device = first.dtype, first.get_device()
    return all(
        isinstance(t, torch.Tensor) and t.dtype is dtype and t.get_device() == device and t.is_contiguous()
        for t in tensors
    )


def _tensors_problem(op: str, **tensors: torch.Tensor) -> _Problem:
    """Same dtype (a supported one), same device (CPU or CUDA), contiguous: or one clear line."""
    if _same_kind(tuple(tensors.values())):
        return None
    first_name, first = next(iter(tensors.items()))
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            return TypeError(f"minfer.{op}: {name} must be a torch.Tensor, got {type(tensor).__name__}")
        if tensor.dtype not in _DTYPES:
            return _error(op, f"{name} has dtype {tensor.dtype}; use float16, bfloat16 or float32")
        if tensor.device.type not in _DEVICE_TYPES:
            return _error(op, f"{name} is on {tensor.device}; minfer runs on CPU and CUDA")
        if tensor.dtype != first.dtype:
            return _error(op, f"{name} has dtype {tensor.dtype} but {first_name} has {first.dtype}; cast one")
        if tensor.device != first.device:
            return _error(op, f"{name} is on {tensor.device} but {first_name} is on {first.device}; move one")
        if not tensor.is_contiguous():
            return _error(op, f"{name} is not contiguous; pass {name}.contiguous()")
    return None


def _error(op: str, message: str) -> ValueError:
    return ValueError(f"minfer.{op}: {message}")


def _norm_problem(op: str, input: torch.Tensor, weight: torch.Tensor) -> _Problem:
    if input.dim() < 1:
        return _error(op, "input is a scalar; give it a hidden dimension")
    if weight.dim() != 1 or weight.shape[0] != input.shape[-1]:
        return _error(
            op,
            f"weight has shape {tuple(weight.shape)}, expected ({input.shape[-1]},) to match the last dim of input",
        )
    return None


def _rmsnorm_problem(input: torch.Tensor, weight: torch.Tensor) -> _Problem:
    return _tensors_problem("rmsnorm", input=input, weight=weight) or _norm_problem("rmsnorm", input, weight)


def rmsnorm(input: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """`input * rsqrt(mean(input**2, -1) + eps) * weight`, computed in float32."""
    op = _checked("rmsnorm", _rmsnorm_problem, input, weight)
    out = torch.empty_like(input)
    op(out, input, weight, eps)
    return out


def _fused_problem(input: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor) -> _Problem:
    op = "fused_add_rmsnorm"
    problem = _tensors_problem(op, input=input, residual=residual, weight=weight)
    problem = problem or _norm_problem(op, input, weight)
    if problem is None and residual.shape != input.shape:
        return _error(op, f"residual has shape {tuple(residual.shape)}, expected {tuple(input.shape)} like input")
    return problem


def fused_add_rmsnorm(input: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> None:
    """In place: `residual += input`, then `input = rmsnorm(residual) * weight`."""
    _checked("fused_add_rmsnorm", _fused_problem, input, residual, weight)(input, residual, weight, eps)


def _gated_problem(op: str, input: torch.Tensor) -> _Problem:
    problem = _tensors_problem(op, input=input)
    if problem is None and (input.dim() < 1 or input.shape[-1] % 2):
        return _error(op, f"input's last dim must be even (gate and up halves), got shape {tuple(input.shape)}")
    return problem


def _gated(op: str, input: torch.Tensor) -> torch.Tensor:
    found = _checked(op, lambda x: _gated_problem(op, x), input)
    shape = input.shape
    out = input.new_empty(shape[:-1] + (shape[-1] // 2,))
    found(out, input)
    return out


def silu_and_mul(input: torch.Tensor) -> torch.Tensor:
    """`silu(x[..., :d]) * x[..., d:]` for input of last dim 2d."""
    return _gated("silu_and_mul", input)


def gelu_tanh_and_mul(input: torch.Tensor) -> torch.Tensor:
    """`gelu(x[..., :d], approximate='tanh') * x[..., d:]` for input of last dim 2d."""
    return _gated("gelu_tanh_and_mul", input)


def _rope_problem(q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor) -> _Problem:
    op = "apply_rope"
    problem = _tensors_problem(op, q=q, k=k)
    if problem is not None:
        return problem
    if q.dim() != 3 or k.dim() != 3:
        return _error(op, f"q and k must be [tokens, heads, head_dim], got {tuple(q.shape)} and {tuple(k.shape)}")
    if q.shape[0] != k.shape[0] or q.shape[2] != k.shape[2]:
        return _error(op, f"q {tuple(q.shape)} and k {tuple(k.shape)} differ in tokens or head_dim")
    if q.shape[2] % 2:
        return _error(op, f"head_dim must be even, got {q.shape[2]}")
    if not isinstance(positions, torch.Tensor):
        return TypeError(f"minfer.{op}: positions must be a torch.Tensor, got {type(positions).__name__}")
    if positions.dtype != torch.int64 or positions.shape != (q.shape[0],):
        return _error(
            op,
            f"positions must be int64 of shape ({q.shape[0]},), got {positions.dtype} {tuple(positions.shape)}",
        )
    if positions.device != q.device:
        return _error(op, f"positions is on {positions.device} but q is on {q.device}; move one")
    return None


def apply_rope(
    q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor, theta: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary embedding, NeoX style (rotating halves), in place on q [tokens, heads, head_dim]
    and k [tokens, kv_heads, head_dim] at integer `positions` [tokens]; returns (q, k)."""
    op = _checked("apply_rope", _rope_problem, q, k, positions)
    op(q, k, positions if positions.is_contiguous() else positions.contiguous(), theta)
    return q, k
