"""Malformed input, one test each: a spec, an arch list, an environment value, a command-line
value, a corrupt manifest. Each gives one line on stderr that names the field, the value and the
fix, a non-zero exit, and no change on disk (the sandbox's every file, mode and owner)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import isolated_env, tree_state, write_tiny_project

CUDA_HOME = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda"))

# One spec of each broken kind, chosen by BAD_KIND; the files it names exist unless the kind
# is about a missing one.
BAD_SPECS = """
import os
from pathlib import Path
from torchwheel import JitSpec, Project

SRC = Path(__file__).parent / "src"
NOT_A_PROJECT = "just a string"


def make_specs():
    kind = os.environ["BAD_KIND"]
    good = dict(name="ok", sources=[SRC / "kernel.cpp"], include_dirs=[SRC / "include"], root=SRC)
    if kind == "name":
        return [JitSpec(**{**good, "name": "Rms-Norm"})]
    if kind == "device":
        return [JitSpec(**{**good, "device": "tpu"})]
    if kind == "no_sources":
        return [JitSpec(**{**good, "sources": []})]
    if kind == "cu_in_cpu":
        return [JitSpec(**{**good, "sources": [SRC / "kernel.cu"]})]
    if kind == "suffix":
        return [JitSpec(**{**good, "sources": [SRC / "notes.txt"]})]
    if kind == "missing_source":
        return [JitSpec(**{**good, "sources": [SRC / "gone.cpp"]})]
    if kind == "missing_include":
        return [JitSpec(**{**good, "include_dirs": [SRC / "nowhere"]})]
    if kind == "outside_root":
        return [JitSpec(**{**good, "root": SRC / "include"})]
    if kind == "duplicate":
        return [JitSpec(**good), JitSpec(**good)]
    raise AssertionError(kind)


PROJECT = Project("bad", "BAD", make_specs)
"""

CUDA_PROJECT = """
from pathlib import Path
from torchwheel import JitSpec, Project

SRC = Path(__file__).parent / "src"
PROJECT = Project("cu", "CU", lambda: [JitSpec(name="k", sources=[SRC / "kernel.cu"], device="cuda", root=SRC)])
"""


@dataclass(frozen=True)
class Case:
    argv: list[str]  # after `python -m`; "{box}" is the sandbox dir
    expect: tuple[str, ...]  # in the one line: the field, the value, the fix
    env: dict[str, str] = field(default_factory=dict)
    prepare: str | None = None  # a sandbox change made before the snapshot
    needs_nvcc: bool = False


def build(project: str, *extra: str) -> list[str]:
    return ["torchwheel", "build", project, "--out", "{box}/out", *extra]


def spec(kind: str, *expect: str) -> Case:
    return Case(build("bad_specs:PROJECT"), expect, {"BAD_KIND": kind})


def arch(value: str, *expect: str, needs_nvcc: bool = False) -> Case:
    env = {"CUDA_HOME": str(CUDA_HOME)} if needs_nvcc else {}
    return Case(build("cuda_project:PROJECT", "--arch-list", value), expect, env, needs_nvcc=needs_nvcc)


def setting(env: dict[str, str], *expect: str) -> Case:
    return Case(["torchwheel", "cache", "list", "tiny_project:PROJECT"], expect, env)


def manifest(kind: str, *expect: str) -> Case:
    return Case(["torchwheel", "doctor", "tiny_project:PROJECT"], expect, {"TINY_AOT_PATH": "{box}/aot"}, kind)


UNDERSTOOD = "write it as 9.0, 9.0a, 10.0f, 12.0+PTX, sm_90a or compute_90"
CASES = {
    # specs
    "spec-name": spec("name", "JitSpec name", "'Rms-Norm'", "use only lowercase letters, digits and '_'"),
    "spec-device": spec("device", "device", "'tpu'", "use one of ('cpu', 'cuda')"),
    "spec-no-sources": spec("no_sources", "JitSpec 'ok'", "has no sources", "give at least one .cpp or .cu"),
    "spec-cu-in-cpu": spec("cu_in_cpu", "source kernel.cu", "'.cu'", "set device='cuda'"),
    "spec-suffix": spec("suffix", "source notes.txt", "'.txt'", "rename it"),
    "spec-missing-source": spec("missing_source", "source", "gone.cpp does not exist", "fix the path or add"),
    "spec-missing-include": spec("missing_include", "include dir", "nowhere does not exist", "fix the path"),
    "spec-outside-root": spec("outside_root", "source", "is outside root", "move it under the root"),
    "spec-duplicate": spec("duplicate", "JitSpec name", "'ok' appears twice", "give each spec its own name"),
    "project-unknown": Case(build("nosuch"), ("project", "'nosuch' is not installed", "pass module:attribute")),
    "project-unimportable": Case(
        build("nosuch_module:PROJECT"), ("project", "'nosuch_module:PROJECT'", "check the module:attribute")
    ),
    "project-not-a-project": Case(
        build("bad_specs:NOT_A_PROJECT"), ("'bad_specs:NOT_A_PROJECT'", "is a str", "not a torchwheel Project")
    ),
    "spec-glob-matches-nothing": Case(
        build("tiny_project:PROJECT", "--spec", "nomatch*"), ("--spec", "nomatch*", "check --device and --spec")
    ),
    # arch lists
    "arch-bare-number": arch("9", "CUDA arch", "'9' in --arch-list", UNDERSTOOD),
    "arch-sm-without-underscore": arch("sm90", "CUDA arch", "'sm90' in --arch-list", UNDERSTOOD),
    "arch-unknown-suffix": arch("9.0b", "CUDA arch", "'9.0b'", UNDERSTOOD),
    "arch-word": arch("8.0;ninety", "CUDA arch", "'ninety'", UNDERSTOOD),
    "arch-empty": arch(" ; ", "CUDA arch list", "' ; ' in --arch-list is empty", "name at least one target"),
    "arch-a-before-hopper": arch("8.0a", "CUDA arch", "'8.0a'", "the 'a' suffix starts at 9.0; write 8.0"),
    "arch-f-before-blackwell": arch("9.0f", "CUDA arch", "'9.0f'", "the 'f' suffix starts at 10.0; write 9.0"),
    "arch-dropped-by-cuda13": arch(
        "5.2;9.0",
        "CUDA arch 5.2 in --arch-list is not offered by nvcc 13.",
        "the last toolkit with it is CUDA 12.9: set CUDA_HOME to such a toolkit or drop 5.2",
        needs_nvcc=True,
    ),
    "arch-renamed-by-cuda13": arch(
        "10.1", "CUDA arch 10.1 in --arch-list", "CUDA 13.0 renamed it 11.0: write 11.0", needs_nvcc=True
    ),
    "arch-unknown-to-every-toolkit": arch(
        "13.0", "CUDA arch 13.0 in --arch-list", "no CUDA release torchwheel knows of has it", needs_nvcc=True
    ),
    "arch-list-missing": Case(
        build("cuda_project:PROJECT"), ("no CUDA arch list", "pass --arch-list", "TORCH_CUDA_ARCH_LIST")
    ),
    # environment values
    "env-arch-list": Case(
        build("cuda_project:PROJECT"),
        ("'9.0b' in TORCHWHEEL_CUDA_ARCH_LIST", UNDERSTOOD),
        {"TORCHWHEEL_CUDA_ARCH_LIST": "9.0b"},
    ),
    "env-torch-arch-list": Case(
        build("cuda_project:PROJECT"),
        ("'ninety' in TORCH_CUDA_ARCH_LIST", UNDERSTOOD),
        {"TORCH_CUDA_ARCH_LIST": "ninety"},
    ),
    "env-boolean": setting({"TINY_DISABLE_JIT": "maybe"}, "TINY_DISABLE_JIT", "'maybe'", "use 1 or 0"),
    "env-accept-ptx": setting({"TORCHWHEEL_ACCEPT_PTX": "perhaps"}, "TORCHWHEEL_ACCEPT_PTX", "'perhaps'", "use 1 or 0"),
    "env-max-jobs-zero": setting({"MAX_JOBS": "0"}, "MAX_JOBS", "'0'", "use e.g. MAX_JOBS=4"),
    "env-max-jobs-word": setting({"MAX_JOBS": "four"}, "MAX_JOBS", "'four'", "use e.g. MAX_JOBS=4"),
    "env-disable-and-force": setting(
        {"TINY_DISABLE_JIT": "1", "TINY_FORCE_JIT": "1"}, "TINY_DISABLE_JIT and TINY_FORCE_JIT", "unset one"
    ),
    "env-empty-cache-dir": setting({"TINY_CACHE_DIR": ""}, "TINY_CACHE_DIR", "set but empty", "give a directory"),
    "env-cxx-missing": Case(
        build("tiny_project:PROJECT"),
        ("compiler", "'no-such-c++'", "set CXX to one that exists"),
        {"CXX": "no-such-c++"},
    ),
    "env-cuda-home-missing": Case(
        build("cuda_project:PROJECT", "--arch-list", "9.0"),
        ("CUDA_HOME={box}/nowhere", "set CUDA_HOME to a toolkit that has bin/nvcc"),
        {"CUDA_HOME": "{box}/nowhere"},
    ),
    "env-cache-dir-of-another-user": Case(
        ["torchwheel", "cache", "clear", "tiny_project:PROJECT"],
        ("cache dir {box}/foreign", "belongs to uid 65534", "set TINY_CACHE_DIR to a directory of your own"),
        {"TINY_CACHE_DIR": "{box}/foreign"},
        "foreign_cache",
    ),
    "env-cache-dir-writable-by-all": Case(
        ["torchwheel", "cache", "prune", "tiny_project:PROJECT", "--older-than", "1d"],
        ("cache dir {box}/shared", "writable by other users (mode 777)", "run chmod 700"),
        {"TINY_CACHE_DIR": "{box}/shared"},
        "shared_cache",
    ),
    "env-lock-dir-is-a-file": Case(
        ["torchwheel", "doctor", "tiny_project:PROJECT"],
        ("lock dir {box}/lockfile", "is not a directory", "set TINY_LOCK_DIR to a directory of your own"),
        {"TINY_LOCK_DIR": "{box}/lockfile"},
        "lock_file",
    ),
    "env-minfer-doctor": Case(
        ["minfer", "doctor"], ("MINFER_DISABLE_JIT", "'maybe'", "use 1 or 0"), {"MINFER_DISABLE_JIT": "maybe"}
    ),
    # cache command values
    "cache-age": Case(
        ["torchwheel", "cache", "prune", "tiny_project:PROJECT", "--older-than", "30x"],
        ("--older-than", "'30x'", "e.g. 30d, 12h or 90m"),
    ),
    "cache-size": Case(
        ["torchwheel", "cache", "prune", "tiny_project:PROJECT", "--max-size", "2Q"],
        ("--max-size", "'2Q'", "e.g. 2G, 500M or 1.5GiB"),
    ),
    "cache-prune-without-limit": Case(
        ["torchwheel", "cache", "prune", "tiny_project:PROJECT"], ("cache prune", "needs --older-than", "--max-size")
    ),
    "cache-unknown-project": Case(["torchwheel", "cache", "list", "nosuch"], ("project", "'nosuch'", "install it")),
    # corrupt manifests, as `doctor` reports them
    "manifest-not-json": manifest("not_json", "manifest {box}/aot/manifest.json", "unreadable", "reinstall"),
    "manifest-schema": manifest("schema", "manifest {box}/aot/manifest.json", "schema 2", "install matching versions"),
    "manifest-missing-field": manifest(
        "no_sha", "manifest {box}/aot/manifest.json", "lacks field 'sha256'", "reinstall"
    ),
    "manifest-bad-digest": manifest(
        "bad_sha", "{box}/aot/scale_a/scale_a.so", "recorded sha256 'xyz' is not a sha256 digest", "reinstall it"
    ),
    "manifest-file-outside": manifest(
        "outside", "manifest file '../../escape.so'", "not a path inside the manifest's directory", "reinstall it"
    ),
}


def good_entry() -> dict[str, object]:
    import torch

    return {
        "file": "scale_a/scale_a.so",
        "sha256": "0" * 64,
        "device": "cpu",
        "torch_version": torch.__version__,
        "cxx11_abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI),
        "cuda_version": None,
        "arch_list": [],
    }


def prepare(kind: str | None, box: Path) -> None:
    if kind is None:
        return
    if kind == "foreign_cache":
        (box / "foreign").mkdir(mode=0o700)
        os.chown(box / "foreign", 65534, 65534)
    elif kind == "shared_cache":
        (box / "shared").mkdir()
        (box / "shared").chmod(0o777)
    elif kind == "lock_file":
        (box / "lockfile").write_text("")
    else:
        entry = good_entry()
        data: object = {"schema": 1, "project": "tiny", "specs": {"scale_a": entry}}
        if kind == "not_json":
            data = None
        elif kind == "schema":
            data = {"schema": 2, "project": "tiny", "specs": {}}
        elif kind == "no_sha":
            del entry["sha256"]
        elif kind == "bad_sha":
            entry["sha256"] = "xyz"
        elif kind == "outside":
            entry["file"] = "../../escape.so"
        (box / "aot").mkdir()
        text = "{not json" if data is None else json.dumps(data)
        (box / "aot" / "manifest.json").write_text(text)


@pytest.fixture
def box(tmp_path: Path) -> Path:
    """A sandbox: the tiny project, the broken-spec and CUDA projects, and a working dir."""
    write_tiny_project(tmp_path / "project")
    src = tmp_path / "project" / "src"
    (src / "kernel.cu").write_text("__global__ void k() {}\n")
    (src / "notes.txt").write_text("not a source\n")
    (tmp_path / "project" / "bad_specs.py").write_text(BAD_SPECS)
    (tmp_path / "project" / "cuda_project.py").write_text(CUDA_PROJECT)
    (tmp_path / "work").mkdir()
    return tmp_path


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_line_naming_field_value_and_fix_and_changes_nothing(name: str, box: Path) -> None:
    case = CASES[name]
    if case.needs_nvcc and not (CUDA_HOME / "bin" / "nvcc").exists():
        pytest.skip("no nvcc: the toolkit check needs one")
    prepare(case.prepare, box)
    env = {**isolated_env(box, box / "project"), **{k: v.format(box=box) for k, v in case.env.items()}}
    if "CUDA_HOME" not in case.env:
        env.pop("CUDA_HOME", None)
    for variable in ("TORCH_CUDA_ARCH_LIST", "MAX_JOBS", "CXX"):
        if variable not in case.env:
            env.pop(variable, None)
    before = tree_state(box)
    result = subprocess.run(
        [sys.executable, "-m", *(arg.format(box=box) for arg in case.argv)],
        env=env,
        cwd=box / "work",
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0, result.stdout + result.stderr
    assert len(lines) == 1, result.stderr
    for text in case.expect:
        assert text.format(box=box) in lines[0]
    assert tree_state(box) == before


def test_there_are_at_least_25_cases() -> None:
    assert len(CASES) >= 25
