"""The tiers hold at run time: a prebuilt load imports only the run-time tier and the
declarations, and a JIT cache hit never imports the ninja writer (docs/architecture.md).

The import rule itself is checked statically by `lint-imports` (nox -s lint); these tests check
what a real process imports, which a lazy import inside a function could otherwise change.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import isolated_env, run_python, write_tiny_project

# Exactly what `Loader(...).load()` of a prebuilt binary imports of torchwheel. A new module here
# is a decision: add it only if it belongs on every user's import path.
PREBUILT_LOAD_MODULES = [
    "torchwheel",
    "torchwheel.arch",
    "torchwheel.errors",
    "torchwheel.files",
    "torchwheel.project",
    "torchwheel.runtime",
    "torchwheel.runtime.gpus",
    "torchwheel.runtime.loader",
    "torchwheel.runtime.manifest",
    "torchwheel.runtime.prebuilt_dirs",
    "torchwheel.runtime.selection",
    "torchwheel.runtime.torch_install",
    "torchwheel.runtime.trust",
    "torchwheel.runtime.verify",
    "torchwheel.settings",
    "torchwheel.spec",
    "torchwheel.versions",
]
BUILD_TOOLS = ("torchwheel.compile", "torchwheel.release", "torchwheel.cli", "ninja", "elftools", "auditwheel")

LOAD_AND_LIST = """
import json, sys
from torchwheel import Loader
from tiny_project import PROJECT
loaded = Loader(PROJECT).load(sys.argv[1])
print(json.dumps({"origin": loaded.origin, "modules": sorted(sys.modules)}))
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The tiny project with scale_a prebuilt (and scale_b not), and an env that finds it."""
    root = tmp_path_factory.mktemp("tiers")
    env = isolated_env(root, write_tiny_project(root / "project"))
    out = root / "out"
    command = [
        sys.executable,
        "-m",
        "torchwheel",
        "build",
        "tiny_project:PROJECT",
        "--spec",
        "scale_a",
        "--out",
        str(out),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return {**env, "TINY_AOT_PATH": str(out / "data" / "aot")}


def load_and_list(env: dict[str, str], spec: str) -> tuple[str, list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_LIST, spec], env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr
    facts = json.loads(result.stdout.splitlines()[-1])
    return facts["origin"], facts["modules"]


def test_a_prebuilt_load_imports_only_the_run_time_tier_and_the_declarations(tiny: dict[str, str]) -> None:
    origin, modules = load_and_list({**tiny, "TINY_DISABLE_JIT": "1"}, "scale_a")
    assert origin == "prebuilt"
    assert [m for m in modules if m.split(".")[0] == "torchwheel"] == PREBUILT_LOAD_MODULES
    assert [m for m in modules if m.startswith(BUILD_TOOLS)] == []


def test_a_jit_cache_hit_does_not_import_the_ninja_writer(tiny: dict[str, str], tmp_path: Path) -> None:
    env = {**tiny, "TORCHWHEEL_CACHE_DIR": str(tmp_path / "cache")}
    run_python("from torchwheel import Loader; from tiny_project import PROJECT; Loader(PROJECT).load('scale_b')", env)
    origin, modules = load_and_list(env, "scale_b")
    assert origin == "jit-cache"
    assert "torchwheel.compile.jit" in modules  # the key needs the compile tier's flags and toolchain
    assert [m for m in modules if m.startswith(("ninja", "torchwheel.compile.ninja", "torchwheel.release"))] == []


def test_the_readme_lists_every_module_of_the_package() -> None:
    root = Path(__file__).resolve().parents[1]
    package = root / "packages" / "torchwheel" / "src" / "torchwheel"
    modules = {
        str(p.relative_to(package)) for p in package.rglob("*.py") if p.name != "__init__.py" or p.parent != package
    }
    modules -= {f"{tier}/__init__.py" for tier in ("runtime", "compile", "release")}  # docstrings only
    readme = (root / "README.md").read_text()
    section = readme.split("## torchwheel's modules", 1)[1].split("\n## ", 1)[0]
    listed = {
        name
        for row in section.splitlines()
        if row.startswith("| `")
        for name in re.findall(r"`([\w/]+\.py)`", row.split("|")[1])
    }
    assert listed == modules
