"""minfer end to end, per device: one ninja run builds all 15 specs of the device, and every op
loaded from those prebuilt files matches the plain-torch reference, passes opcheck and runs
under torch.compile. CPU runs everywhere; CUDA runs where a GPU is (the GPU machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import minfer
from minfer import reference

pytestmark = pytest.mark.slow

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
TOLERANCE = {torch.float32: (1e-5, 1e-5), torch.float16: (2e-3, 1e-3), torch.bfloat16: (1.6e-2, 1e-2)}


NO_GPU = not torch.cuda.is_available()
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(NO_GPU, reason="no GPU: CUDA kernels run only on the GPU machine"),
        ],
    ),
]
# sm_90a for the H100 of the GPU machine, plus the visible GPU's own arch elsewhere.
GPU_ARCHS = (
    "9.0a"
    if NO_GPU or torch.cuda.get_device_capability() == (9, 0)
    else "{}.{}".format(*torch.cuda.get_device_capability())
)


@pytest.fixture(scope="module")
def device_build(
    device: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path, subprocess.CompletedProcess]:
    if INSTALLED:
        pytest.skip("MINFER_TEST_INSTALLED=1: the installed variant is under test, not a build")
    out = tmp_path_factory.mktemp(f"minfer-{device}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINFER_", "TORCHWHEEL_"))}
    env["TORCHWHEEL_CACHE_DIR"] = str(out / "cache")
    command = [sys.executable, "-m", "torchwheel", "build", "minfer", "--device", device, "--out", str(out)]
    if device == "cuda":
        command += ["--arch-list", GPU_ARCHS]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr
    return device, out, result


# MINFER_TEST_INSTALLED=1: test the installed variant wheel's files instead of a fresh build
# (the GPU machine's run of a wheel built elsewhere, docs/benchmarks.md).
INSTALLED = os.environ.get("MINFER_TEST_INSTALLED") == "1"


@pytest.fixture(scope="module", params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def minfer_prebuilt(request: pytest.FixtureRequest, device: str) -> Iterator[str]:
    """minfer in this process, reading prebuilt files only (the device's fresh build, or the
    installed variant with MINFER_TEST_INSTALLED=1): a JIT attempt fails. Returns the device."""
    import minfer
    from minfer import ops

    with pytest.MonkeyPatch.context() as patch:
        if not INSTALLED:
            _, out, _ = request.getfixturevalue("device_build")
            patch.setenv("MINFER_AOT_PATH", str(out / "data" / "aot"))
        patch.setenv("MINFER_DISABLE_JIT", "1")
        for cached in ("settings", "_manifests"):
            ops._loader.__dict__.pop(cached, None)
        assert ops._loader.settings.disable_jit  # read once, kept for the module's tests
    yield device
    assert all(spec.origin == "prebuilt" for spec in minfer.loaded_specs().values())


def test_the_wrapper_subninjas_each_of_the_15_specs(device_build) -> None:
    device, out, result = device_build
    wrapper = (out / "build" / "build.ninja").read_text().splitlines()
    subninjas = sorted(line for line in wrapper if line.startswith("subninja "))
    assert len(subninjas) == 15
    assert "subninja " + str(out / "build" / f"rmsnorm_bf16_{device}" / "build.ninja") in subninjas
    # 15 specs x (kernel + binding + link), all in the one run.
    assert "[45/45]" in result.stdout


def test_the_manifest_records_what_each_file_was_built_for(device_build) -> None:
    device, out, _ = device_build
    manifest = json.loads((out / "data" / "aot" / "manifest.json").read_text())
    assert manifest["schema"] == 1 and manifest["project"] == "minfer"
    entry = manifest["specs"][f"silu_and_mul_fp16_{device}"]
    assert entry["file"] == f"silu_and_mul_fp16_{device}/silu_and_mul_fp16_{device}.so"
    assert entry["torch_version"] == torch.__version__
    assert entry["cxx11_abi"] == torch._C._GLIBCXX_USE_CXX11_ABI
    assert entry["device"] == device
    if device == "cpu":
        assert entry["cuda_version"] is None and entry["arch_list"] == []
    else:
        assert entry["cuda_version"] == torch.version.cuda and entry["arch_list"] == [GPU_ARCHS]
    assert str(out) not in json.dumps(manifest)  # no build path recorded


def close(got: torch.Tensor, want: torch.Tensor) -> None:
    rtol, atol = TOLERANCE[want.dtype]
    torch.testing.assert_close(got, want, rtol=rtol, atol=atol)


def rand(shape: tuple[int, ...] | int, dtype: torch.dtype, device: str) -> torch.Tensor:
    return torch.randn(shape).to(device=device, dtype=dtype)


# Decode-sized and odd rows too: a warp per row (7), rows kept in registers (4096, 8192), the
# one-element and two-pass paths (4099).
SHAPES = [(0, 8), (1, 1), (3, 7), (4, 4099), (64, 7), (1, 4096), (64, 4096), (17, 8192), (64, 4099)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_rmsnorm_matches_the_reference(minfer_prebuilt, dtype, shape) -> None:
    x, w = rand(shape, dtype, minfer_prebuilt), rand(shape[-1], dtype, minfer_prebuilt)
    close(minfer.rmsnorm(x, w, 1e-5), reference.rmsnorm(x, w, 1e-5))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_fused_add_rmsnorm_updates_input_and_residual(minfer_prebuilt, dtype, shape) -> None:
    device = minfer_prebuilt
    x, r, w = rand(shape, dtype, device), rand(shape, dtype, device), rand(shape[-1], dtype, device)
    want_x, want_r = reference.fused_add_rmsnorm(x, r, w)
    minfer.fused_add_rmsnorm(x, r, w)
    close(x, want_x)
    close(r, want_r)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op", ["silu_and_mul", "gelu_tanh_and_mul"])
@pytest.mark.parametrize(
    "shape", [(0, 4), (1, 2), (2, 3, 14), (5, 2 * 4099), (64, 14), (1, 2 * 4096), (64, 2 * 4099)], ids=str
)
def test_gated_activations_match_the_reference(minfer_prebuilt, dtype, op, shape) -> None:
    x = 3 * rand(shape, dtype, minfer_prebuilt)
    got = getattr(minfer, op)(x)
    assert got.shape == (*shape[:-1], shape[-1] // 2)
    close(got, getattr(reference, op)(x))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize(
    ("tokens", "heads", "kv_heads", "head_dim"),
    [(0, 2, 1, 8), (1, 1, 1, 2), (9, 8, 2, 128), (1, 32, 8, 128), (64, 8, 2, 64), (5, 3, 1, 96), (33, 4, 1, 256)],
)
def test_apply_rope_rotates_q_and_k_in_place(minfer_prebuilt, dtype, tokens, heads, kv_heads, head_dim) -> None:
    device = minfer_prebuilt
    q, k = rand((tokens, heads, head_dim), dtype, device), rand((tokens, kv_heads, head_dim), dtype, device)
    positions = torch.randint(0, 4096, (tokens,)).to(device)
    want_q, want_k = reference.apply_rope(q, k, positions, 1e4)
    got_q, got_k = minfer.apply_rope(q, k, positions, 1e4)
    assert got_q is q and got_k is k
    close(q, want_q)
    close(k, want_k)


def opcheck_cases(dtype: torch.dtype, device: str) -> dict[str, tuple]:
    x, w = rand((3, 16), dtype, device), rand(16, dtype, device)
    return {
        "rmsnorm": (torch.empty_like(x), x, w, 1e-6),
        "fused_add_rmsnorm": (x.clone(), rand((3, 16), dtype, device), w, 1e-6),
        "silu_and_mul": (rand((3, 8), dtype, device), x),
        "gelu_tanh_and_mul": (rand((3, 8), dtype, device), x),
        "apply_rope": (
            rand((4, 2, 8), dtype, device),
            rand((4, 1, 8), dtype, device),
            torch.arange(4, device=device),
            1e4,
        ),
    }


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("op", ["rmsnorm", "fused_add_rmsnorm", "silu_and_mul", "gelu_tanh_and_mul", "apply_rope"])
def test_every_op_passes_opcheck(minfer_prebuilt, op, dtype) -> None:
    from minfer import ops

    args = opcheck_cases(dtype, minfer_prebuilt)[op]
    torch.library.opcheck(ops._op(op, args[1]), args)


def test_ops_run_under_torch_compile_fullgraph(minfer_prebuilt) -> None:
    def block(x: torch.Tensor, residual: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        minfer.fused_add_rmsnorm(x, residual, w)
        return minfer.silu_and_mul(minfer.rmsnorm(x, w))

    compiled = torch.compile(block, backend="aot_eager", fullgraph=True)
    device = minfer_prebuilt
    x, r, w = (
        rand((4, 32), torch.float32, device),
        rand((4, 32), torch.float32, device),
        rand(32, torch.float32, device),
    )
    want_x, _ = reference.fused_add_rmsnorm(x, r, w)
    want = reference.silu_and_mul(reference.rmsnorm(want_x, w))
    close(compiled(x.clone(), r.clone(), w), want)


def test_torch_compile_fullgraph_loads_the_op_of_a_first_call_it_traces(device_build) -> None:
    # A fresh process, so that no op is loaded before the compiled function's first call.
    device, out, _ = device_build
    code = f"""
import torch, minfer
from minfer import reference
def block(x, w):
    return minfer.silu_and_mul(minfer.rmsnorm(x, w))
compiled = torch.compile(block, backend="aot_eager", fullgraph=True)
x, w = torch.randn(4, 32, device="{device}"), torch.randn(32, device="{device}")
torch.testing.assert_close(compiled(x, w), reference.silu_and_mul(reference.rmsnorm(x, w)), rtol=1e-4, atol=1e-4)
print(sorted(minfer.loaded_specs()))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINFER_", "TORCHWHEEL_"))}
    env.update(MINFER_AOT_PATH=str(out / "data" / "aot"), MINFER_DISABLE_JIT="1")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [f"['rmsnorm_fp32_{device}',", f"'silu_and_mul_fp32_{device}']"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda m: m.rmsnorm(torch.randn(2, 8), torch.randn(7)),
            r"minfer.rmsnorm: weight has shape \(7,\), expected \(8,\)",
        ),
        (
            lambda m: m.rmsnorm(torch.randn(2, 8).half(), torch.randn(8)),
            r"weight has dtype torch.float32 but input has torch.float16; cast one",
        ),
        (
            lambda m: m.rmsnorm(torch.randn(8, 2).t(), torch.randn(8)),
            r"input is not contiguous; pass input.contiguous\(\)",
        ),
        (
            lambda m: m.rmsnorm(torch.randn(2, 8).double(), torch.randn(8).double()),
            r"input has dtype torch.float64; use float16, bfloat16 or float32",
        ),
        (
            # A CPU input with a weight on another device of index -1 (the meta device): refused too.
            lambda m: m.rmsnorm(torch.randn(2, 8), torch.empty(8, device="meta")),
            r"minfer.rmsnorm: weight is on meta; minfer runs on CPU and CUDA",
        ),
        (lambda m: m.silu_and_mul(torch.randn(2, 7)), r"minfer.silu_and_mul: input's last dim must be even"),
        (
            lambda m: m.fused_add_rmsnorm(torch.randn(2, 8), torch.randn(3, 8), torch.randn(8)),
            r"residual has shape \(3, 8\), expected \(2, 8\)",
        ),
        (
            lambda m: m.apply_rope(torch.randn(2, 1, 8), torch.randn(2, 1, 8), torch.arange(2).int()),
            r"positions must be int64 of shape \(2,\)",
        ),
        (
            lambda m: m.apply_rope(torch.randn(2, 1, 7), torch.randn(2, 1, 7), torch.arange(2)),
            r"head_dim must be even, got 7",
        ),
    ],
)
def test_bad_arguments_get_one_clear_line(call, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        call(minfer)
    assert "\n" not in str(caught.value)
