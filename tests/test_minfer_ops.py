"""minfer on CPU, end to end: one ninja run builds all 15 CPU specs, and every op loaded from
those prebuilt files matches the plain-torch reference, passes opcheck and runs under
torch.compile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
TOLERANCE = {torch.float32: (1e-5, 1e-5), torch.float16: (2e-3, 1e-3), torch.bfloat16: (1.6e-2, 1e-2)}


@pytest.fixture(scope="module")
def cpu_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("minfer-cpu")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINFER_", "TORCHWHEEL_"))}
    env["TORCHWHEEL_CACHE_DIR"] = str(out / "cache")
    result = subprocess.run(
        [sys.executable, "-m", "torchwheel", "build", "minfer", "--device", "cpu", "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=1800,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out, result


@pytest.fixture(scope="module")
def minfer_prebuilt(cpu_build: tuple[Path, subprocess.CompletedProcess]) -> Iterator[object]:
    """minfer in this process, reading prebuilt files only: any JIT attempt is an error."""
    import minfer
    from minfer import ops

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINFER_AOT_PATH", str(cpu_build[0] / "data" / "aot"))
        patch.setenv("MINFER_DISABLE_JIT", "1")
        ops._loader.__dict__.pop("settings", None)
        assert ops._loader.settings.disable_jit  # read once, kept for the module's tests
    yield minfer
    assert all(spec.origin == "prebuilt" for spec in minfer.loaded_specs().values())


def test_the_wrapper_subninjas_each_of_the_15_cpu_specs(cpu_build) -> None:
    out, result = cpu_build
    wrapper = (out / "build" / "build.ninja").read_text().splitlines()
    subninjas = sorted(line for line in wrapper if line.startswith("subninja "))
    assert len(subninjas) == 15
    assert "subninja " + str(out / "build" / "rmsnorm_bf16_cpu" / "build.ninja") in subninjas
    # 15 specs x (kernel + binding + link), all in the one run.
    assert "[45/45]" in result.stdout


def test_the_manifest_records_what_each_file_was_built_for(cpu_build) -> None:
    out, _ = cpu_build
    manifest = json.loads((out / "data" / "aot" / "manifest.json").read_text())
    assert manifest["schema"] == 1 and manifest["project"] == "minfer"
    entry = manifest["specs"]["silu_and_mul_fp16_cpu"]
    assert entry["file"] == "silu_and_mul_fp16_cpu/silu_and_mul_fp16_cpu.so"
    assert entry["torch_version"] == torch.__version__
    assert entry["cxx11_abi"] == torch._C._GLIBCXX_USE_CXX11_ABI
    assert entry["device"] == "cpu" and entry["cuda_version"] is None
    assert str(out) not in json.dumps(manifest)  # no build path recorded


def close(got: torch.Tensor, want: torch.Tensor) -> None:
    rtol, atol = TOLERANCE[want.dtype]
    torch.testing.assert_close(got, want, rtol=rtol, atol=atol)


SHAPES = [(0, 8), (1, 1), (3, 7), (4, 4099)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_rmsnorm_matches_the_reference(minfer_prebuilt, dtype, shape) -> None:
    from minfer import reference

    x, w = torch.randn(shape).to(dtype), torch.randn(shape[-1]).to(dtype)
    close(minfer_prebuilt.rmsnorm(x, w, 1e-5), reference.rmsnorm(x, w, 1e-5))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_fused_add_rmsnorm_updates_input_and_residual(minfer_prebuilt, dtype, shape) -> None:
    from minfer import reference

    x, r, w = torch.randn(shape).to(dtype), torch.randn(shape).to(dtype), torch.randn(shape[-1]).to(dtype)
    want_x, want_r = reference.fused_add_rmsnorm(x, r, w)
    minfer_prebuilt.fused_add_rmsnorm(x, r, w)
    close(x, want_x)
    close(r, want_r)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op", ["silu_and_mul", "gelu_tanh_and_mul"])
@pytest.mark.parametrize("shape", [(0, 4), (1, 2), (2, 3, 14), (5, 2 * 4099)], ids=str)
def test_gated_activations_match_the_reference(minfer_prebuilt, dtype, op, shape) -> None:
    from minfer import reference

    x = (3 * torch.randn(shape)).to(dtype)
    got = getattr(minfer_prebuilt, op)(x)
    assert got.shape == (*shape[:-1], shape[-1] // 2)
    close(got, getattr(reference, op)(x))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(("tokens", "heads", "kv_heads", "head_dim"), [(0, 2, 1, 8), (1, 1, 1, 2), (9, 8, 2, 128)])
def test_apply_rope_rotates_q_and_k_in_place(minfer_prebuilt, dtype, tokens, heads, kv_heads, head_dim) -> None:
    from minfer import reference

    q, k = torch.randn(tokens, heads, head_dim).to(dtype), torch.randn(tokens, kv_heads, head_dim).to(dtype)
    positions = torch.randint(0, 4096, (tokens,))
    want_q, want_k = reference.apply_rope(q, k, positions, 1e4)
    got_q, got_k = minfer_prebuilt.apply_rope(q, k, positions, 1e4)
    assert got_q is q and got_k is k
    close(q, want_q)
    close(k, want_k)


def opcheck_cases(dtype: torch.dtype) -> dict[str, tuple]:
    x = torch.randn(3, 16).to(dtype)
    w = torch.randn(16).to(dtype)
    return {
        "rmsnorm": (torch.empty_like(x), x, w, 1e-6),
        "fused_add_rmsnorm": (x.clone(), torch.randn(3, 16).to(dtype), w, 1e-6),
        "silu_and_mul": (torch.empty(3, 8).to(dtype), x),
        "gelu_tanh_and_mul": (torch.empty(3, 8).to(dtype), x),
        "apply_rope": (torch.randn(4, 2, 8).to(dtype), torch.randn(4, 1, 8).to(dtype), torch.arange(4), 1e4),
    }


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op", ["rmsnorm", "fused_add_rmsnorm", "silu_and_mul", "gelu_tanh_and_mul", "apply_rope"])
def test_every_op_passes_opcheck(minfer_prebuilt, op, dtype) -> None:
    from minfer import ops

    args = opcheck_cases(dtype)[op]
    torch.library.opcheck(ops._op(op, args[1]), args)


def test_ops_run_under_torch_compile_fullgraph(minfer_prebuilt) -> None:
    from minfer import reference

    def block(x: torch.Tensor, residual: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        minfer_prebuilt.fused_add_rmsnorm(x, residual, w)
        return minfer_prebuilt.silu_and_mul(minfer_prebuilt.rmsnorm(x, w))

    compiled = torch.compile(block, backend="aot_eager", fullgraph=True)
    x, r, w = torch.randn(4, 32), torch.randn(4, 32), torch.randn(32)
    want_x, _ = reference.fused_add_rmsnorm(x, r, w)
    want = reference.silu_and_mul(reference.rmsnorm(want_x, w))
    close(compiled(x.clone(), r.clone(), w), want)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.rmsnorm(torch.randn(2, 8), torch.randn(7)), r"minfer.rmsnorm: weight has shape \(7,\), expected \(8,\)"),
        (lambda m: m.rmsnorm(torch.randn(2, 8).half(), torch.randn(8)), r"weight has dtype torch.float32 but input has torch.float16; cast one"),
        (lambda m: m.rmsnorm(torch.randn(8, 2).t(), torch.randn(8)), r"input is not contiguous; pass input.contiguous\(\)"),
        (lambda m: m.rmsnorm(torch.randn(2, 8).double(), torch.randn(8).double()), r"input has dtype torch.float64; use float16, bfloat16 or float32"),
        (lambda m: m.silu_and_mul(torch.randn(2, 7)), r"minfer.silu_and_mul: input's last dim must be even"),
        (lambda m: m.fused_add_rmsnorm(torch.randn(2, 8), torch.randn(3, 8), torch.randn(8)), r"residual has shape \(3, 8\), expected \(2, 8\)"),
        (lambda m: m.apply_rope(torch.randn(2, 1, 8), torch.randn(2, 1, 8), torch.arange(2).int()), r"positions must be int64 of shape \(2,\)"),
        (lambda m: m.apply_rope(torch.randn(2, 1, 7), torch.randn(2, 1, 7), torch.arange(2)), r"head_dim must be even, got 7"),
    ],
)
def test_bad_arguments_get_one_clear_line(call, message: str) -> None:
    import minfer

    with pytest.raises(ValueError, match=message) as caught:
        call(minfer)
    assert "\n" not in str(caught.value)
