"""The ABI audit, on real binaries: a clean minfer build, and units built broken on purpose with
the compiler directly, checked against the real torch libraries of this and another torch."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import build_env
from torchwheel.cli import main
from torchwheel.release.audit import SearchPath, VersionedSymbol, audit_paths, torch_policy
from torchwheel.runtime.torch_install import TorchInstall

FIXTURES = Path(__file__).parent / "audit_fixtures"
CXX = os.environ.get("CXX", "c++")
CLEAN_SO = "rmsnorm_fp32_cpu/rmsnorm_fp32_cpu.so"
_glibc = os.confstr("CS_GNU_LIBC_VERSION").split()[-1]  # e.g. "2.36"
GLIBC = tuple(int(p) for p in _glibc.split("."))


def build_minfer(python: str, out: Path, *args: str, **env: str) -> Path:
    """`torchwheel build minfer ...` as a user runs it; returns the prebuilt dir (data/aot)."""
    result = subprocess.run(
        [python, "-m", "torchwheel", "build", "minfer", "--out", str(out), *args],
        env=build_env(out, **env),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out / "data" / "aot"


def compile_so(out: Path, source: str, *flags: str, torch: TorchInstall | None = None) -> Path:
    """One fixture unit straight through the compiler: how a deliberately broken binary is made."""
    torch_flags: list[str] = []
    if torch is not None:
        torch_flags = [*(f"-I{d}" for d in torch.include_dirs), f"-L{torch.library_dir}", "-lc10", "-ltorch_cpu"]
    command = [CXX, "-shared", "-fPIC", "-O1", "-std=c++20", *flags, str(FIXTURES / source), *torch_flags]
    result = subprocess.run([*command, "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return out


def write_wheel(path: Path, files: dict[str, bytes]) -> Path:
    """A minimal valid wheel holding `files`, tagged as the file name says."""
    name, version = path.name.split("-")[:2]
    info = f"{name}-{version}.dist-info"
    tag = path.stem.split("-", 2)[2]
    files = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: {tag}\n".encode(),
    }

    def digest(data: bytes) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

    record = "".join(f"{n},sha256={digest(d)},{len(d)}\n" for n, d in files.items()) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as wheel:
        for member, data in files.items():
            wheel.writestr(member, data)
        wheel.writestr(f"{info}/RECORD", record)
    return path


def audit_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["audit", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def torch213() -> TorchInstall:
    target = TorchInstall.running()
    if target.series != "2.13":
        pytest.skip(f"these tests run under torch 2.13; this is {target.version}")
    return target


@pytest.fixture(scope="module")
def clean_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One minfer CPU spec, built for the running torch by `torchwheel build`: a clean binary."""
    return build_minfer(
        sys.executable, tmp_path_factory.mktemp("clean"), "--device", "cpu", "--spec", "rmsnorm_fp32_cpu"
    )


# --- a clean build ------------------------------------------------------------------------------


def test_a_clean_build_passes(clean_build: Path, torch213: TorchInstall) -> None:
    report = audit_paths([clean_build], torch213)
    assert report.passed
    [file] = report.files
    assert file.path == f"{clean_build}/{CLEAN_SO}"
    assert (file.missing_symbols, file.disallowed_needed, file.bad_search_paths) == ((), (), ())
    assert file.abi.consistent
    assert (file.abi.built_with, file.abi.symbols, file.abi.torch) == (True, True, torch213.cxx11_abi)
    assert {"libc10.so", "libtorch_cpu.so"} <= set(file.needed)


def test_the_json_of_a_clean_build_is_stable_and_names_only_the_paths_given(clean_build: Path) -> None:
    command = [sys.executable, "-m", "torchwheel", "audit", "data/aot", "--json"]
    runs = [subprocess.run(command, cwd=clean_build.parent.parent, capture_output=True, text=True) for _ in "12"]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    data = json.loads(runs[0].stdout)
    assert [f["path"] for f in data["files"]] == [f"data/aot/{CLEAN_SO}"]
    assert data["passed"] is True
    assert str(clean_build) not in runs[0].stdout
    assert str(TorchInstall.running().prefix) not in runs[0].stdout
    assert list(data) == sorted(data)


def test_the_default_policy_is_the_tag_of_torchs_own_wheel(torch213: TorchInstall) -> None:
    assert torch_policy(torch213) == "manylinux_2_28_x86_64"  # torch 2.13.0's wheel tag


@pytest.mark.skipif(GLIBC < (2, 32), reason=f"glibc {_glibc} here: binaries built here need no GLIBC_2.32")
def test_a_build_on_this_glibc_names_the_symbols_beyond_manylinux_2_28_and_the_policy_it_meets(
    clean_build: Path, torch213: TorchInstall
) -> None:
    report = audit_paths([clean_build], torch213, policy="manylinux_2_28_x86_64")
    [file] = report.files
    # gcc 12's libstdc++ headers test __libc_single_threaded (glibc 2.32) before atomic refcounts.
    assert VersionedSymbol("__libc_single_threaded", "GLIBC_2.32", "libc.so.6") in file.policy.exceeding
    assert file.policy.glibc == "GLIBC_2.32"
    # auditwheel has no 2_32 or 2_33 policy: the first that allows GLIBC_2.32 is manylinux_2_34.
    assert file.policy.meets == report.platform_tag == "manylinux_2_34_x86_64"
    assert report.passed
    assert (
        "needs a newer system than manylinux_2_28_x86_64: __libc_single_threaded@GLIBC_2.32; "
        "it meets manylinux_2_34_x86_64"
    ) in file.warnings


@pytest.mark.skipif(GLIBC < (2, 32), reason=f"glibc {_glibc} here: binaries built here need no GLIBC_2.32")
def test_strict_fails_a_binary_that_needs_a_newer_glibc_than_the_policy(
    clean_build: Path, torch213: TorchInstall, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = audit_cli(capsys, str(clean_build), "--strict")
    assert code == 1
    assert "fault: needs a newer system than manylinux_2_28_x86_64: __libc_single_threaded@GLIBC_2.32" in out
    assert out.rstrip().endswith("1 of 1 file failed; platform tag manylinux_2_34_x86_64")


def test_the_platform_tag_agrees_with_auditwheel_show(
    clean_build: Path, torch213: TorchInstall, tmp_path: Path
) -> None:
    wheel = write_wheel(
        tmp_path / "tiny-0.1-py3-none-linux_x86_64.whl",
        {"tiny/__init__.py": b"", "tiny/rmsnorm.so": (clean_build / CLEAN_SO).read_bytes()},
    )
    shown = subprocess.run(
        [sys.executable, "-m", "auditwheel", "show", "--json", str(wheel)], capture_output=True, text=True
    )
    assert shown.returncode == 0, shown.stderr
    report = audit_paths([wheel], torch213)
    assert [f.path for f in report.files] == [f"{wheel}/tiny/rmsnorm.so"]
    assert report.platform_tag == json.loads(shown.stdout)["sym_tag"]


def test_a_manifest_that_records_another_abi_than_torchs_is_a_mismatch(
    clean_build: Path, torch213: TorchInstall, tmp_path: Path
) -> None:
    prebuilt = Path(shutil.copytree(clean_build, tmp_path / "aot"))
    manifest = json.loads((prebuilt / "manifest.json").read_text())
    # As a full-ABI build records it: a stable build's C++11 ABI is its own and not compared.
    manifest["specs"]["rmsnorm_fp32_cpu"].update(cxx11_abi=not torch213.cxx11_abi, torch_abi="full", min_torch=None)
    (prebuilt / "manifest.json").write_text(json.dumps(manifest))
    [file] = audit_paths([prebuilt / CLEAN_SO], torch213).files
    assert file.abi.built_with is (not torch213.cxx11_abi)
    assert not file.passed
    assert file.faults[0].startswith(
        f"C++11 ABI mismatch: torch uses {int(torch213.cxx11_abi)}, "
        f"the manifest says {int(not torch213.cxx11_abi)}, the symbols show {int(torch213.cxx11_abi)}"
    )


# --- binaries broken on purpose -----------------------------------------------------------------


@pytest.fixture(scope="module")
def built_for_214(torch214_python: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch214 = TorchInstall.probe(torch214_python)
    return compile_so(tmp_path_factory.mktemp("t214") / "new_op.so", "new_op.cpp", torch=torch214)


def test_a_binary_built_for_torch_214_lists_the_op_that_213_lacks(built_for_214: Path, torch213: TorchInstall) -> None:
    [file] = audit_paths([built_for_214], torch213).files
    assert file.missing_symbols == ("at::_ops::linalg_matrix_sqrth::call(at::Tensor const&)",)
    assert file.faults == (
        "1 undefined symbol that torch 2.13.0+cpu and the system libraries do not define: "
        "at::_ops::linalg_matrix_sqrth::call(at::Tensor const&); build against this torch",
    )


def test_the_same_binary_passes_against_the_torch_it_was_built_for(
    built_for_214: Path, torch214_python: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = audit_cli(capsys, str(built_for_214), "--python", torch214_python, "--torch-version", "2.14")
    assert (code, err) == (0, ""), out
    assert "audit against torch 2.14.1" in out


def test_a_binary_built_with_the_old_abi_for_a_new_abi_torch_is_an_abi_mismatch(
    torch213: TorchInstall, tmp_path: Path
) -> None:
    if not torch213.cxx11_abi:
        pytest.skip("this torch uses the old ABI itself")
    so = compile_so(tmp_path / "old_abi.so", "checked_scale.cpp", "-D_GLIBCXX_USE_CXX11_ABI=0", torch=torch213)
    [file] = audit_paths([so], torch213).files
    assert (file.abi.built_with, file.abi.symbols, file.abi.torch) == (None, False, True)
    assert any("torchCheckFail" in symbol for symbol in file.abi.evidence)
    assert file.faults[0].startswith("C++11 ABI mismatch: torch uses 1, the manifest says unknown, the symbols show 0")
    assert file.faults[0].endswith("rebuild with -D_GLIBCXX_USE_CXX11_ABI=1")


def test_the_same_unit_built_with_torchs_abi_is_consistent(torch213: TorchInstall, tmp_path: Path) -> None:
    abi = f"-D_GLIBCXX_USE_CXX11_ABI={int(torch213.cxx11_abi)}"
    so = compile_so(tmp_path / "torch_abi.so", "checked_scale.cpp", abi, torch=torch213)
    [file] = audit_paths([so], torch213).files
    assert file.abi.consistent
    assert file.abi.symbols is torch213.cxx11_abi
    assert file.missing_symbols == ()


def test_libstdcxx_weak_instantiations_are_not_read_as_the_files_abi(torch213: TorchInstall, tmp_path: Path) -> None:
    abi = f"-D_GLIBCXX_USE_CXX11_ABI={int(torch213.cxx11_abi)}"
    so = compile_so(tmp_path / "weak.so", "libstdcxx_weak.cpp", abi, f"-I{FIXTURES}", torch=torch213)
    [file] = audit_paths([so], torch213).files
    assert file.abi.consistent and file.abi.symbols is torch213.cxx11_abi
    assert file.faults == ()


def test_a_needed_library_outside_the_allow_list_is_a_fault(torch213: TorchInstall, tmp_path: Path) -> None:
    so = compile_so(tmp_path / "with_zlib.so", "plain.cpp", "-Wl,--no-as-needed", "-l:libz.so.1")
    [file] = audit_paths([so], torch213).files
    assert file.disallowed_needed == ("libz.so.1",)
    assert file.faults == (
        "needs libz.so.1: not torch 2.13.0+cpu's libraries, its CUDA runtime or the C/C++ runtime; "
        "drop the dependency, or audit against the torch it was built for",
    )


def test_a_runpath_into_the_build_dir_is_a_fault(torch213: TorchInstall, tmp_path: Path) -> None:
    build_dir = tmp_path / "build"
    so = compile_so(tmp_path / "rpath.so", "plain.cpp", "-Wl,--enable-new-dtags", f"-Wl,-rpath,{build_dir}")
    [file] = audit_paths([so], torch213).files
    assert file.bad_search_paths == (SearchPath("RUNPATH", str(build_dir)),)
    assert file.faults == (
        f"RUNPATH entry '{build_dir}' points into the build machine; use $ORIGIN-relative entries or none",
    )


def test_an_origin_relative_runpath_passes(torch213: TorchInstall, tmp_path: Path) -> None:
    so = compile_so(tmp_path / "origin.so", "plain.cpp", "-Wl,-rpath,$ORIGIN/../lib")
    report = audit_paths([so], torch213)
    assert report.passed
    assert report.files[0].bad_search_paths == ()


# --- CUDA ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cuda_build(minfer_cuda_build: Path) -> Path:
    """One CUDA spec of the session's minfer CUDA build (tests/conftest.py)."""
    return minfer_cuda_build / "data" / "aot" / "rmsnorm_fp32_cuda" / "rmsnorm_fp32_cuda.so"


@pytest.mark.cuda_build
@pytest.mark.slow  # minfer's CUDA build (tests/conftest.py)
def test_a_cuda_build_passes_against_the_cuda_torch_it_was_built_for(cuda_build: Path, torch214_python: str) -> None:
    report = audit_paths([cuda_build], TorchInstall.probe(torch214_python))
    assert report.passed, report.format()
    assert {"libtorch_cuda.so", "libcudart.so.13"} <= set(report.files[0].needed)


@pytest.mark.cuda_build
@pytest.mark.slow  # minfer's CUDA build (tests/conftest.py)
def test_a_cuda_build_fails_against_a_cpu_torch(cuda_build: Path, torch213: TorchInstall) -> None:
    [file] = audit_paths([cuda_build], torch213).files
    # minfer's bindings use the stable ABI: the CUDA stream comes from libtorch_cuda's C shim.
    assert set(file.disallowed_needed) == {"libtorch_cuda.so", "libcudart.so.13"}
    assert "aoti_torch_get_current_cuda_stream" in file.missing_symbols


# --- what a user gets wrong: one line each ------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["no/such.so"],
            "audit path no/such.so does not exist; pass a .so file, a build directory or a wheel",
        ),
        (
            ["{tmp}/notes.so"],
            "{tmp}/notes.so is not an ELF file; pass a .so file, a build directory or a wheel",
        ),
        (
            ["{tmp}/origin.so", "--policy", "manylinux_2_99_x86_64"],
            # then the range of policies that this auditwheel knows, and an example
            "unknown policy 'manylinux_2_99_x86_64' for x86_64 files; pass one of auditwheel's, ",
        ),
        (
            ["{tmp}/origin.so", "--torch-version", "2.x"],
            "--torch-version '2.x' is not major.minor; pass e.g. --torch-version 2.13",
        ),
        (
            ["{tmp}/origin.so", "--torch-version", "2.14"],
            "--torch-version 2.14 asks for torch 2.14, but the target torch is 2.13.0+cpu; run the audit "
            "with the python of an environment with torch 2.14, or pass --python PATH",
        ),
        (
            ["{tmp}/empty"],
            "no .so file in {tmp}/empty; pass a build directory or wheel that holds built .so files",
        ),
    ],
    ids=["missing-path", "not-elf", "unknown-policy", "bad-torch-version", "other-torch-version", "no-so"],
)
def test_a_user_error_is_one_line_naming_the_value_and_the_fix(
    args: list[str], message: str, torch213: TorchInstall, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.so").write_text("not a binary\n")
    (tmp_path / "empty").mkdir()
    compile_so(tmp_path / "origin.so", "plain.cpp")
    code, out, err = audit_cli(capsys, *(a.format(tmp=tmp_path) for a in args))
    assert (code, out) == (2, "")  # a usage error, not faults found (1)
    assert err.startswith(f"torchwheel: error: {message.format(tmp=tmp_path)}")
    assert err.count("\n") == 1
