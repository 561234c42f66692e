"""Run every minfer op in every dtype on one device against the torch reference; print where
each spec came from. Exits non-zero on any mismatch.

    python scripts/smoke.py [cpu|cuda]
"""

from __future__ import annotations

import sys

import torch

import minfer
from minfer import reference

TOLERANCES = {torch.float32: (1e-5, 1e-5), torch.float16: (2e-3, 1e-3), torch.bfloat16: (1.6e-2, 1e-2)}


def check_all(device: str) -> list[str]:
    failures = []
    generator = torch.Generator().manual_seed(0)

    def rand(*shape: int, dtype: torch.dtype) -> torch.Tensor:
        return torch.randn(*shape, generator=generator).to(device=device, dtype=dtype)

    for dtype, (rtol, atol) in TOLERANCES.items():
        x, w = rand(5, 257, dtype=dtype), rand(257, dtype=dtype)
        gated = rand(5, 2 * 129, dtype=dtype)
        q, k = rand(7, 4, 64, dtype=dtype), rand(7, 2, 64, dtype=dtype)
        positions = torch.arange(7, device=device) * 13
        residual = rand(5, 257, dtype=dtype)
        pairs = {
            "rmsnorm": (minfer.rmsnorm(x, w), reference.rmsnorm(x, w)),
            "silu_and_mul": (minfer.silu_and_mul(gated), reference.silu_and_mul(gated)),
            "gelu_tanh_and_mul": (minfer.gelu_tanh_and_mul(gated), reference.gelu_tanh_and_mul(gated)),
        }
        expected_x, expected_r = reference.fused_add_rmsnorm(x, residual, w)
        x2, r2 = x.clone(), residual.clone()
        minfer.fused_add_rmsnorm(x2, r2, w)
        pairs["fused_add_rmsnorm"] = (torch.cat([x2, r2]), torch.cat([expected_x, expected_r]))
        expected_q, expected_k = reference.apply_rope(q, k, positions)
        minfer.apply_rope(q, k, positions)
        pairs["apply_rope"] = (
            torch.cat([q.flatten(), k.flatten()]),
            torch.cat([expected_q.flatten(), expected_k.flatten()]),
        )
        for op, (got, want) in pairs.items():
            error = (got.float() - want.float()).abs().max().item()
            ok = torch.allclose(got.float(), want.float(), rtol=rtol, atol=atol)
            print(f"{op:<18} {str(dtype):<15} max abs error {error:.2e} {'ok' if ok else 'MISMATCH'}")
            if not ok:
                failures.append(f"{op} {dtype}")
    return failures


def main() -> int:
    device = sys.argv[1] if len(sys.argv) > 1 else "cpu"
    failures = check_all(device)
    for name, spec in sorted(minfer.loaded_specs().items()):
        print(f"{name:<28} {spec.origin:<10} {spec.seconds * 1e3:7.1f} ms  {spec.reason or ''}")
    print(f"{len(failures)} failed" if failures else "all ops match the torch reference")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
