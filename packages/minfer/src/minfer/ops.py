"""minfer's Python API: the op of the input's dtype and device, with its arguments checked.

Each (op, dtype, device) is its own compiled spec, loaded the first time it is called: a
process that only runs bf16 rmsnorm on CUDA never loads (or JIT-builds) anything else.

A call does little host work besides its checks (issue 13: host time at decode size). The checks
run on every call, before the op: the op checks its arguments too (csrc/include/minfer/binding.h,
for direct torch.ops calls), but an error thrown out of a stable-ABI op crashed torch 2.11's
dispatcher (a segfault on the H100, 2026-12-07, docs/benchmarks.md), so minfer never lets its op
be the one that refuses. So each public op checks them in one flat condition, written out for
its own arguments (no kwargs dict, generator, lambda or helper call per call), that reads each
attribute it needs once:

- isinstance on each tensor argument, before any attribute of it is read;
- one dict lookup on the first tensor's (dtype, device): it picks the loaded op and checks that
  the dtype is supported and the device is CPU or CUDA, since only those are ever keys (a key
  missing because its op is not loaded yet fails the condition too);
- `is` on the other tensors' dtype and `==` on their device (`get_device()` is -1 for CPU and
  meta alike), `is_contiguous()`, and the shapes from `.ndim`, `.numel()` and `.shape` (`.size(i)`
  goes through the argument parser: three times the cost).

When the condition holds, the op is called through its OpOverload (its private `_op`, the C++
function under it, is 0.2-0.3 us cheaper, but skips what `__call__` does in torch 2.14 and breaks
torch.compile's fullgraph) into the one output a returning op allocates: `torch.empty_like`, or
`new_empty` with the sizes as separate ints (a torch.Size or tuple argument costs 0.5-1 us more).
When it fails, the slow path, and only it, names the argument at fault in one line (the
`_*_problem` functions) or, on the first call of a (dtype, device), loads the op, then calls it;
under torch.compile too, where a compiled function makes the first call (`_loaded_spec`).
N-D inputs go to the op as they are (the bindings read them as rows).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch
from torch import Tensor
from torch._ops import OpOverload

from torchwheel import LoadedSpec, Loader
from torchwheel.runtime.package import package_project

from ._project import spec_name

__all__ = ["apply_rope", "fused_add_rmsnorm", "gelu_tanh_and_mul", "loaded_specs", "rmsnorm", "silu_and_mul"]

_DTYPES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}
# The project as pyproject.toml's [tool.torchwheel] declares it. minfer loads op by op, on first
# call, rather than everything at import (torchwheel.load_package), so a process that runs only
# bf16 rmsnorm on CUDA loads nothing else.
_loader = Loader(package_project("minfer"))
_DEVICE_TYPES = ("cpu", "cuda")
# The loaded op of each (dtype, device), per op; only a supported dtype on a CPU or CUDA device is
# ever a key, so finding one is also the check of both. Each CUDA device index is its own key (a
# tensor's `device` is one attribute read; `device.type` would be two), its spec loaded once.
_Key = tuple[torch.dtype, torch.device]
_OPS = ("rmsnorm", "fused_add_rmsnorm", "silu_and_mul", "gelu_tanh_and_mul", "apply_rope")
_LOADED: dict[str, dict[_Key, OpOverload]] = {op: {} for op in _OPS}
_RMSNORM = _LOADED["rmsnorm"]
_FUSED_ADD_RMSNORM = _LOADED["fused_add_rmsnorm"]
_APPLY_ROPE = _LOADED["apply_rope"]
# The specs loaded (one serves every CUDA device index).
_SPECS: set[str] = set()
_LOADING = threading.Lock()
_INT64 = torch.int64
# What the checks return: the error to raise, or None if all is well.
_Problem = Exception | None


def loaded_specs() -> dict[str, LoadedSpec]:
    """The specs this process has loaded, with where each came from (prebuilt or JIT) and why."""
    return _loader.loaded()


def _fake_mutating_op(*args: object) -> None:
    # Every minfer op writes into its arguments and returns nothing, so under FakeTensor
    # (torch.compile, opcheck) there is nothing to compute.
    return None


def _op(op: str, tensor: Tensor) -> OpOverload:
    """The op of `tensor`'s dtype and device (checked already), loaded (prebuilt or JIT) on first use."""
    key = (tensor.dtype, tensor.device)
    found = _LOADED[op].get(key)
    if found is None:
        found = getattr(torch.ops.minfer, _loaded_spec(op, tensor.dtype, tensor.device)).default  # untyped
        if not torch.compiler.is_compiling():
            # Under torch.compile the table stays as it was: its contents are a guard of the
            # traced frame, which a change in the middle of the trace would fail.
            _LOADED[op][key] = found
    return found


def _load_spec(op: str, dtype: torch.dtype, device: torch.device) -> str:
    """The name of the spec of (op, dtype, device), loaded."""
    name = spec_name(op, _DTYPES[dtype], device.type)
    with _LOADING:  # two threads' first calls: one loads, and registers the fake op once
        if name not in _SPECS:
            _loader.load(name)
            torch.library.register_fake(f"minfer::{name}", _fake_mutating_op)
            _SPECS.add(name)
    return name


# torch.compile runs this, rather than trace it (the loader takes a lock, which Dynamo cannot
# trace), when a compiled function makes an op's first call: fullgraph holds, and the spec is
# loaded once for eager and compiled calls alike. (The decorator is untyped; the name is not.)
_loaded_spec: Callable[[str, torch.dtype, torch.device], str] = torch.compiler.assume_constant_result(  # type: ignore[no-untyped-call]
    _load_spec
)


def _checked(op: str, problem: _Problem, first: Tensor) -> OpOverload:
    """The slow path: raise the one line naming the argument at fault, else the op of `first`."""
    if problem is not None:
        raise problem
    return _op(op, first)


def _tensors_problem(op: str, **tensors: Tensor) -> _Problem:
    """Same dtype (a supported one), same device (CPU or CUDA), contiguous: or one clear line."""
    first_name, first = next(iter(tensors.items()))
    for name, tensor in tensors.items():
        if not isinstance(tensor, Tensor):
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


def _norm_problem(op: str, input: Tensor, weight: Tensor) -> _Problem:
    if input.dim() < 1:
        return _error(op, "input is a scalar; give it a hidden dimension")
    if weight.dim() != 1 or weight.shape[0] != input.shape[-1]:
        return _error(
            op,
            f"weight has shape {tuple(weight.shape)}, expected ({input.shape[-1]},) to match the last dim of input",
        )
    return None


def _rmsnorm_problem(input: Tensor, weight: Tensor) -> _Problem:
    return _tensors_problem("rmsnorm", input=input, weight=weight) or _norm_problem("rmsnorm", input, weight)


def rmsnorm(input: Tensor, weight: Tensor, eps: float = 1e-6) -> Tensor:
    """`input * rsqrt(mean(input**2, -1) + eps) * weight`, computed in float32."""
    if not (
        isinstance(input, Tensor)
        and isinstance(weight, Tensor)
        and (found := _RMSNORM.get((dtype := input.dtype, device := input.device))) is not None
        and weight.dtype is dtype
        and weight.device == device
        and input.is_contiguous()
        and weight.is_contiguous()
        and input.ndim
        and weight.ndim == 1
        and weight.numel() == input.shape[-1]
    ):
        found = _checked("rmsnorm", _rmsnorm_problem(input, weight), input)
    out = torch.empty_like(input)
    found(out, input, weight, eps)
    return out


def _fused_problem(input: Tensor, residual: Tensor, weight: Tensor) -> _Problem:
    op = "fused_add_rmsnorm"
    problem = _tensors_problem(op, input=input, residual=residual, weight=weight)
    problem = problem or _norm_problem(op, input, weight)
    if problem is None and residual.shape != input.shape:
        return _error(op, f"residual has shape {tuple(residual.shape)}, expected {tuple(input.shape)} like input")
    return problem


def fused_add_rmsnorm(input: Tensor, residual: Tensor, weight: Tensor, eps: float = 1e-6) -> None:
    """In place: `residual += input`, then `input = rmsnorm(residual) * weight`."""
    if not (
        isinstance(input, Tensor)
        and isinstance(residual, Tensor)
        and isinstance(weight, Tensor)
        and (found := _FUSED_ADD_RMSNORM.get((dtype := input.dtype, device := input.device))) is not None
        and residual.dtype is dtype
        and weight.dtype is dtype
        and residual.device == device
        and weight.device == device
        and input.is_contiguous()
        and residual.is_contiguous()
        and weight.is_contiguous()
        and (shape := input.shape)
        and residual.shape == shape
        and weight.ndim == 1
        and weight.numel() == shape[-1]
    ):
        found = _checked("fused_add_rmsnorm", _fused_problem(input, residual, weight), input)
    found(input, residual, weight, eps)


def _gated_problem(op: str, input: Tensor) -> _Problem:
    problem = _tensors_problem(op, input=input)
    if problem is None and (input.dim() < 1 or input.shape[-1] % 2):
        return _error(op, f"input's last dim must be even (gate and up halves), got shape {tuple(input.shape)}")
    return problem


def _gated_op(op: str, doc: str) -> Callable[[Tensor], Tensor]:
    """silu_and_mul and gelu_tanh_and_mul, which differ only in their name and table: one body,
    made once per op. A closure, so that a call is one Python call, as a hand-written copy is."""
    table = _LOADED[op]

    def gated(input: Tensor) -> Tensor:
        if not (
            isinstance(input, Tensor)
            and (found := table.get((input.dtype, input.device))) is not None
            and input.is_contiguous()
            and (shape := input.shape)
            and not shape[-1] % 2
        ):
            found = _checked(op, _gated_problem(op, input), input)
            shape = input.shape
        *rows, last = shape
        out = input.new_empty(*rows, last // 2)
        found(out, input)
        return out

    gated.__name__ = gated.__qualname__ = op
    gated.__doc__ = doc
    return gated


silu_and_mul = _gated_op("silu_and_mul", "`silu(x[..., :d]) * x[..., d:]` for input of last dim 2d.")
gelu_tanh_and_mul = _gated_op(
    "gelu_tanh_and_mul", "`gelu(x[..., :d], approximate='tanh') * x[..., d:]` for input of last dim 2d."
)


def _rope_problem(q: Tensor, k: Tensor, positions: Tensor) -> _Problem:
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
    if not isinstance(positions, Tensor):
        return TypeError(f"minfer.{op}: positions must be a torch.Tensor, got {type(positions).__name__}")
    if positions.dtype != torch.int64 or positions.shape != (q.shape[0],):
        return _error(
            op,
            f"positions must be int64 of shape ({q.shape[0]},), got {positions.dtype} {tuple(positions.shape)}",
        )
    if positions.device != q.device:
        return _error(op, f"positions is on {positions.device} but q is on {q.device}; move one")
    return None


def apply_rope(q: Tensor, k: Tensor, positions: Tensor, theta: float = 10000.0) -> tuple[Tensor, Tensor]:
    """Rotary embedding, NeoX style (rotating halves), in place on q [tokens, heads, head_dim]
    and k [tokens, kv_heads, head_dim] at integer `positions` [tokens]; returns (q, k)."""
    if not (
        isinstance(q, Tensor)
        and isinstance(k, Tensor)
        and isinstance(positions, Tensor)
        and (found := _APPLY_ROPE.get((dtype := q.dtype, device := q.device))) is not None
        and k.dtype is dtype
        and k.device == device
        and q.is_contiguous()
        and k.is_contiguous()
        and len(q_shape := q.shape) == 3
        and len(k_shape := k.shape) == 3
        and q_shape[0] == k_shape[0]
        and q_shape[2] == k_shape[2]
        and not q_shape[2] % 2
        and positions.dtype is _INT64
        and positions.shape == q_shape[:1]
        and positions.device == device
    ):
        found = _checked("apply_rope", _rope_problem(q, k, positions), q)
    found(q, k, positions if positions.is_contiguous() else positions.contiguous(), theta)
    return q, k
