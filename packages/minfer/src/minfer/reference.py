"""Plain-torch versions of every minfer op: the definition the kernels are tested against.

Each computes in float32 and rounds to the input dtype once, as the kernels do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rmsnorm(input: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    x = input.float()
    return (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight.float()).to(input.dtype)


def fused_add_rmsnorm(
    input: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (new input, new residual) instead of writing in place."""
    total = input.float() + residual.float()
    normed = total * torch.rsqrt(total.pow(2).mean(-1, keepdim=True) + eps) * weight.float()
    return normed.to(input.dtype), total.to(input.dtype)


def silu_and_mul(input: torch.Tensor) -> torch.Tensor:
    gate, up = input.float().chunk(2, dim=-1)
    return (F.silu(gate) * up).to(input.dtype)


def gelu_tanh_and_mul(input: torch.Tensor) -> torch.Tensor:
    gate, up = input.float().chunk(2, dim=-1)
    return (F.gelu(gate, approximate="tanh") * up).to(input.dtype)


def apply_rope(
    q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor, theta: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns rotated copies of (q, k), NeoX style: the two halves of head_dim rotate together."""
    head_dim = q.shape[-1]
    half = head_dim // 2
    # theta^(-2i/head_dim): the exponent in float32, the power rounded once from float64, so
    # that the angle of a position in the thousands is not off by float32 pow's last bits.
    # Computed on the CPU: CUDA divides by a scalar through its reciprocal, which is off by an
    # ulp where head_dim is not a power of two.
    exponents = -(torch.arange(half, dtype=torch.float32) * 2 / head_dim)
    inv_freq = torch.pow(theta, exponents.double()).float().to(q.device)
    angles = positions.float()[:, None] * inv_freq[None, :]  # [tokens, half]
    cos, sin = angles.cos()[:, None, :], angles.sin()[:, None, :]

    def rotate(x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.float()[..., :half], x.float()[..., half:]
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).to(x.dtype)

    return rotate(q), rotate(k)
