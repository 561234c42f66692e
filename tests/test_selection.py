"""A prebuilt binary is used only where it matches the running torch, ABI, CUDA and GPU."""

import hashlib
from pathlib import Path

import pytest

from conftest import torch_at
from torchwheel.runtime.manifest import Manifest, ManifestEntry
from torchwheel.runtime.selection import RuntimeEnv, candidates_for, rejection_reason
from torchwheel.runtime.verify import Verifier

CUDA_RUNTIME = RuntimeEnv(torch_at("2.14.1+cu130", "13.0"), ((9, 0),))


def entry(**changes: object) -> ManifestEntry:
    fields = dict(
        name="rmsnorm_fp16_cuda",
        file="rmsnorm_fp16_cuda/rmsnorm_fp16_cuda.so",
        sha256="0" * 64,
        device="cuda",
        torch_version="2.14.1+cu130",
        cxx11_abi=True,
        cuda_version="13.0",
        arch_list=("8.0", "9.0a"),
    )
    fields.update(changes)
    return ManifestEntry(**fields)  # type: ignore[arg-type]


def test_a_matching_binary_is_accepted() -> None:
    assert rejection_reason(entry(), CUDA_RUNTIME) is None


def test_another_patch_release_of_torch_is_accepted() -> None:
    assert rejection_reason(entry(torch_version="2.14.0"), CUDA_RUNTIME) is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"torch_version": "2.13.0"}, "built for torch 2.13, running torch is 2.14.1+cu130"),
        ({"cxx11_abi": False}, "built with _GLIBCXX_USE_CXX11_ABI=0, running torch uses 1"),
        ({"cuda_version": "12.8"}, "built for CUDA 12.8, running torch uses CUDA 13.0"),
        ({"cuda_version": "13.2"}, "built for CUDA 13.2, newer than running torch's CUDA 13.0"),
        ({"arch_list": ("8.0", "10.0")}, "has no code for this GPU (sm_90); built for 8.0;10.0"),
        ({"arch_list": ("8.0+PTX",)}, "has only PTX for this GPU (sm_90)"),
    ],
)
def test_a_mismatch_is_rejected_with_its_reason(changes: dict, reason: str) -> None:
    assert reason in (rejection_reason(entry(**changes), CUDA_RUNTIME) or "")


def test_a_cuda_binary_is_rejected_by_a_cpu_only_torch() -> None:
    runtime = RuntimeEnv(torch_at("2.14.1+cpu", None), ())
    assert rejection_reason(entry(), runtime) == "built for CUDA, running torch has no CUDA"


def test_every_manifest_holding_the_spec_is_a_candidate() -> None:
    good = Manifest("minfer", {"rmsnorm_fp16_cuda": entry()}, Path("/a"))
    old = Manifest("minfer", {"rmsnorm_fp16_cuda": entry(torch_version="2.13.0")}, Path("/b"))
    other = Manifest("minfer", {}, Path("/c"))
    found = candidates_for("rmsnorm_fp16_cuda", [old, good, other], CUDA_RUNTIME)
    assert [c.rejection is None for c in found] == [False, True]
    assert found[0].describe().startswith("/b/rmsnorm_fp16_cuda/rmsnorm_fp16_cuda.so: built for torch 2.13")


def test_a_malformed_cuda_version_is_a_reason_not_a_crash() -> None:
    assert rejection_reason(entry(cuda_version="thirteen"), CUDA_RUNTIME) == (
        "manifest cuda_version 'thirteen' is malformed"
    )


def test_a_file_outside_the_manifests_dir_is_refused_as_damaged() -> None:
    manifest = Manifest("minfer", {"rmsnorm_fp16_cuda": entry(file="../../evil.so")}, Path("/a"))
    (found,) = candidates_for("rmsnorm_fp16_cuda", [manifest], CUDA_RUNTIME)
    assert found.damaged
    assert found.rejection == "manifest file '../../evil.so' is not a path inside the manifest's directory"


def test_the_first_candidate_whose_file_passes_its_sha256_is_chosen(tmp_path: Path) -> None:
    library = tmp_path / "good" / "rmsnorm_fp16_cuda" / "rmsnorm_fp16_cuda.so"
    library.parent.mkdir(parents=True)
    library.write_bytes(b"binary")
    digest = hashlib.sha256(b"binary").hexdigest()
    bad = Manifest("minfer", {"rmsnorm_fp16_cuda": entry(sha256="1" * 64)}, tmp_path / "good")
    good = Manifest("minfer", {"rmsnorm_fp16_cuda": entry(sha256=digest)}, tmp_path / "good")
    found = candidates_for("rmsnorm_fp16_cuda", [bad, good], CUDA_RUNTIME, verifier=Verifier(None))
    assert [c.damaged for c in found] == [True, False]
    assert found[0].rejection.startswith("fails its sha256 check (6 bytes hash to ")
    assert found[1].rejection is None
