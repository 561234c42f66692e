"""`torchwheel init`: a `[tool.torchwheel]` table written from what a project's `setup.py` gives
`setup()`: its `CppExtension`/`CUDAExtension` modules as specs, and a default matrix.

`setup.py` is run as pip would run it (it is the project's own code, in its own directory), in a
subprocess whose `setup()` only records its arguments: nothing is built. What has no place in a
spec (libraries to link by name, extra objects, a custom `cmdclass`) is printed, not dropped in
silence. The table is appended to `pyproject.toml` (made if missing); nothing else is changed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchwheel.config import PYPROJECT
from torchwheel.errors import SettingsError
from torchwheel.files import read_toml

# Runs in the project's directory: replaces setup() with a recorder, then runs setup.py.
_RECORDER = r"""
import json, runpy, sys
import setuptools

def record(**kwargs):
    extensions = []
    for ext in kwargs.get("ext_modules") or []:
        compile_args = ext.extra_compile_args
        extensions.append({
            "name": ext.name,
            "sources": list(ext.sources),
            "include_dirs": list(ext.include_dirs),
            "define_macros": [[k, v] for k, v in ext.define_macros],
            "cxx_args": list(compile_args.get("cxx", []) if isinstance(compile_args, dict) else compile_args),
            "nvcc_args": list(compile_args.get("nvcc", []) if isinstance(compile_args, dict) else []),
            "link_args": list(ext.extra_link_args),
            "libraries": list(ext.libraries),
            "library_dirs": list(ext.library_dirs),
            "extra_objects": list(ext.extra_objects),
        })
    commands = sorted(k for k, v in (kwargs.get("cmdclass") or {}).items() if v.__name__ != "BuildExtension")
    print("TORCHWHEEL-INIT " + json.dumps({
        "name": kwargs.get("name"), "version": kwargs.get("version"), "extensions": extensions, "cmdclass": commands,
    }))
    raise SystemExit(0)

setuptools.setup = record
# Without a toolkit (or with a CPU-only torch) torch leaves CUDA_HOME unset and CUDAExtension()
# raises before setup() is reached. Translating needs no toolkit, and the toolkit dirs that
# CUDAExtension adds are dropped anyway (_provided), so a placeholder stands in for it.
try:
    import torch.utils.cpp_extension as cpp_extension
    if cpp_extension.CUDA_HOME is None:
        cpp_extension.CUDA_HOME = "/cuda-home-placeholder"
except ImportError:
    pass
sys.argv = ["setup.py", "--name"]
runpy.run_path("setup.py", run_name="__main__")
"""

# The cells this torchwheel release knows how to build: the torch versions of this machine's
# offline wheels and the toolkit at /usr/local/cuda (ci/matrix.toml carries the full matrix).
DEFAULT_MATRIX = """\
[tool.torchwheel.matrix.torch]
"2.13" = "2.13.0"
"2.14" = "2.14.1"

[tool.torchwheel.matrix.accelerators.cpu]

[tool.torchwheel.matrix.accelerators.cu130]
cuda = "13.0"
arch_list = "8.0;9.0;10.0;12.0+PTX"
"""


@dataclass(frozen=True)
class Translation:
    table: str  # TOML text to append
    untranslated: tuple[str, ...]  # one line each: what init could not carry over


def run_init(project_dir: Path) -> int:
    setup_py, pyproject = project_dir / "setup.py", project_dir / PYPROJECT
    if not setup_py.is_file():
        raise SettingsError(f"{setup_py} does not exist; run torchwheel init in a project with a setup.py")
    existing = read_toml(pyproject, "project file", "fix it first") if pyproject.exists() else {}
    if "torchwheel" in existing.get("tool", {}):
        raise SettingsError(f"{pyproject} has a [tool.torchwheel] table already; edit it (docs/config.md)")
    translation = translate(_recorded_setup(project_dir), project_dir, existing)
    with pyproject.open("a") as stream:
        stream.write(("\n" if pyproject.stat().st_size else "") + translation.table)
    print(f"wrote [tool.torchwheel] to {pyproject}")
    for line in translation.untranslated:
        print(f"not translated: {line}")
    return 0


def _recorded_setup(project_dir: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", _RECORDER], cwd=project_dir, capture_output=True, text=True, timeout=300
    )
    for line in result.stdout.splitlines():
        if line.startswith("TORCHWHEEL-INIT "):
            recorded: dict[str, Any] = json.loads(line.removeprefix("TORCHWHEEL-INIT "))
            return recorded
    last = (result.stderr.strip().splitlines() or ["no output"])[-1]
    raise SettingsError(f"running {project_dir / 'setup.py'} did not reach setup() ({last}); fix it and run again")


def translate(setup: dict[str, Any], project_dir: Path, pyproject: dict[str, Any]) -> Translation:
    lines = ["[tool.torchwheel]"]
    metadata = pyproject.get("project", {})
    if not metadata.get("name") and setup.get("name"):
        lines.append(f"name = {json.dumps(setup['name'])}")
    if not metadata.get("version") and setup.get("version"):
        lines.append(f"version = {json.dumps(str(setup['version']))}")
    untranslated = [f"cmdclass {name!r}: a build step of its own" for name in setup["cmdclass"]]
    if not setup["extensions"]:
        raise SettingsError(f"{project_dir / 'setup.py'} gives setup() no ext_modules; nothing to translate")
    for extension in setup["extensions"]:
        spec, left = _spec(extension, project_dir)
        lines += ["", *spec]
        untranslated += left
    untranslated.append("setup.py still builds ext_modules; drop them once torchwheel builds the specs")
    return Translation("\n".join(lines) + "\n\n" + DEFAULT_MATRIX, tuple(untranslated))


def _spec(extension: dict[str, Any], project_dir: Path) -> tuple[list[str], list[str]]:
    name = re.sub(r"[^a-z0-9]+", "_", extension["name"].lower()).strip("_")  # tinyext._c -> tinyext_c
    cuda = any(source.endswith(".cu") for source in extension["sources"]) or bool(extension["nvcc_args"])
    defines = [f"-D{k}" if v is None else f"-D{k}={v}" for k, v in extension["define_macros"]]
    # Every unit of a setup.py extension may include torch headers: all are binding units.
    # CppExtension and CUDAExtension add torch's and CUDA's own include dirs, library dirs and
    # libraries; torchwheel adds its own for the torch it builds against, so those go.
    includes = [d for d in extension["include_dirs"] if not _outside(d, project_dir)]
    fields: dict[str, list[str]] = {
        "torch_sources": extension["sources"],
        "include_dirs": [_relative(d, project_dir) for d in includes],
        "extra_cflags": defines + extension["cxx_args"],
        "extra_cuda_cflags": defines + extension["nvcc_args"] if cuda else [],
        "extra_ldflags": extension["link_args"],
    }
    lines = ["[[tool.torchwheel.spec]]", f"name = {json.dumps(name)}"]
    if cuda:
        lines.append('device = "cuda"')
    lines += [f"{key} = {json.dumps(values)}" for key, values in fields.items() if values]
    left = [f"{extension['name']}: include dir {d} (outside the project)" for d in extension["include_dirs"]
            if _outside(d, project_dir) and not _provided(d)]  # fmt: skip
    left += [f"{extension['name']}: library {lib}" for lib in extension["libraries"] if lib not in _PROVIDED_LIBRARIES]
    left += [f"{extension['name']}: library dir {d}" for d in extension["library_dirs"] if not _provided(d)]
    left += [f"{extension['name']}: extra object {o}" for o in extension["extra_objects"]]
    return lines, left


_PROVIDED_LIBRARIES = frozenset({"c10", "torch", "torch_cpu", "torch_python", "cudart", "c10_cuda", "torch_cuda"})


def _outside(path: str, project_dir: Path) -> bool:
    candidate = Path(path)
    return candidate.is_absolute() and not candidate.is_relative_to(project_dir)


def _provided(path: str) -> bool:
    """A dir of torch's install or of a CUDA toolkit, which every torchwheel build adds itself."""
    parts = Path(path).parts
    return "torch" in parts or any(part.startswith("cuda") for part in parts)


def _relative(path: str, project_dir: Path) -> str:
    candidate = Path(path)
    if candidate.is_absolute() and candidate.is_relative_to(project_dir):
        return candidate.relative_to(project_dir).as_posix()
    return path
