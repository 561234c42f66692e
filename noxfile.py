"""Sessions: `nox -s build` (the main job), `nox -s tests`, `nox -s lint`, `nox -s types`.

Every environment a test needs is made here, from this file alone: the session's own venv with
torch 2.13.0 (CPU), a second venv with torch 2.14.1 (CUDA 13.0) for the CUDA builds, and a
second CUDA toolkit (nvcc 12.x from PyPI) for the cache-key tests. They are reused between runs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.options.sessions = ["lint", "types", "tests"]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
ENVS = ROOT / ".venvs"
PYTHON = "3.11"  # the version the offline torch wheels on these machines are built for
TORCH_CPU = "torch==2.13.0"
TORCH_CUDA = "torch==2.14.1"
OTHER_NVCC = "nvidia-cuda-nvcc==13.2.78"
PACKAGES = [str(ROOT / "packages" / "torchwheel"), str(ROOT / "packages" / "minfer")]


def _install_project(session: nox.Session, python: str | None = None) -> None:
    # Not editable: tests must see minfer as users do, with csrc/ copied into the package.
    args = ["-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", *PACKAGES]
    if python is None:
        session.run("python", *args)
    else:
        session.run(python, *args, external=True)


def _torch214_env(session: nox.Session) -> str:
    """A venv holding torch 2.14.1 (CUDA 13.0), made once and reused."""
    env = ENVS / "torch-2.14.1"  # the tests name it by TORCHWHEEL_TEST_TORCH214_PYTHON, not by this path
    python = str(env / "bin" / "python")
    if not (env / ".ready").exists():
        session.log(f"creating {env} with {TORCH_CUDA} (5 GB, from local disk where present)")
        session.run("python", "-m", "venv", "--clear", str(env))
        session.run(python, "-m", "pip", "install", "-q", TORCH_CUDA, "ninja", "packaging", external=True)
        (env / ".ready").touch()
    _install_project(session, python)
    return python


def _debian_tools(session: nox.Session) -> None:
    """Debian's redis-server (the shared sccache backend the launcher test and benchmark start on
    loopback) and ccache (the other launcher tests/test_launcher.py proves), installed once where
    missing: under nox those tests fail rather than skip, so a fresh machine must get them here."""
    missing = [tool for tool in ("redis-server", "ccache") if not shutil.which(tool)]
    if not missing:
        return
    session.log(f"installing {' '.join(missing)} (apt-get) for the compiler-launcher tests and benchmark")
    session.run("apt-get", "update", "-qq", external=True)
    session.run("apt-get", "install", "-y", "-qq", *missing, external=True)


def _other_cuda_home(session: nox.Session) -> str:
    """nvcc of another CUDA release (13.2), from PyPI's wheel: enough to ask it for its version."""
    target = ENVS / "cuda132"
    home = target / "nvidia" / "cu13"
    if not (home / "bin" / "nvcc").exists():
        session.run("python", "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), OTHER_NVCC)
    return str(home)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """All tests; CUDA builds included where nvcc exists, GPU tests skipped without a GPU."""
    session.install(
        "-q",
        TORCH_CPU,
        "pytest",
        "pytest-xdist",
        "numpy",
        "ninja",
        "packaging",
        "hatchling",
        "build",
        "pyelftools",
        "auditwheel",
        "pypiserver",
        "twine",
        "cibuildwheel",
        "hypothesis",
        "sccache",  # tests/test_launcher.py: the compiler launcher, on a loopback redis-server
        "py-rattler",  # tests/test_conda.py: the solver, the channel index, the installer
        "py-rattler-build",  # release/conda.py: assemble_package
        "check-jsonschema",  # tests/test_workflow.py: GitHub's workflow schema, as vendored there
        "zizmor",  # tests/test_workflow.py: the workflow's security audit, run --offline
    )
    _install_project(session)
    _debian_tools(session)
    env = {"TORCHWHEEL_TEST_REQUIRE_LAUNCHERS": "1"}  # tests/test_launcher.py: sccache and redis are here
    if Path("/usr/local/cuda/bin/nvcc").exists() or os.environ.get("CUDA_HOME"):
        env["TORCHWHEEL_TEST_TORCH214_PYTHON"] = _torch214_env(session)
        env["TORCHWHEEL_TEST_OTHER_CUDA_HOME"] = _other_cuda_home(session)
    # Two workers, one file each at a time (module fixtures are built once), taking files in the
    # order tests/conftest.py sorts them, longest first: --no-loadscope-reorder, or xdist would
    # reorder them by their number of tests. Much of a test is a subprocess waiting on imports, pip
    # or a lock, so CI's 2 cores are kept busy. --durations stays in CI's output, so a test that
    # grows slow is seen; extra arguments (e.g. -m "not slow", or -n 0 to debug) come after these.
    args = ["-n", "2", "--dist", "loadfile", "--no-loadscope-reorder", "--durations=25"]
    session.run("pytest", "tests", *args, *session.posargs, env=env)


@nox.session(python=PYTHON)
def build(session: nox.Session) -> None:
    """The main job on its built-in default: minfer's CPU specs for torch 2.13.0, then a smoke run."""
    session.install("-q", TORCH_CPU, "ninja", "packaging", "hatchling")
    _install_project(session)
    out = ROOT / "build" / "minfer-cpu-torch213"
    session.run("torchwheel", "build", "minfer", "--device", "cpu", "--out", str(out))
    session.run(
        "python",
        str(ROOT / "scripts" / "smoke.py"),
        env={"MINFER_AOT_PATH": str(out / "data" / "aot"), "MINFER_DISABLE_JIT": "1"},
    )


@nox.session(python=PYTHON)
def benchmarks(session: nox.Session) -> None:
    """The CPU benchmarks here, rewriting docs/benchmarks.md's generated sections and
    docs/plots/*.png (benchmarks/run_all.py; `-- --only sccache`, `-- --quick`)."""
    session.install("-q", TORCH_CPU, "ninja", "packaging", "hatchling", "matplotlib", "sccache")
    _install_project(session)
    _debian_tools(session)
    args = []
    if Path("/usr/local/cuda/bin/nvcc").exists() or os.environ.get("CUDA_HOME"):
        args = ["--torch214-python", _torch214_env(session)]
    session.run("python", str(ROOT / "benchmarks" / "run_all.py"), *args, *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (style, complexity) and import-linter (the tiers: docs/architecture.md)."""
    session.install("-q", "ruff", "import-linter")
    paths = ["packages", "tests", "benchmarks", "scripts", "noxfile.py"]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)
    # The source tree itself is analysed (it is what the contract is about), not an install of it.
    source = {"PYTHONPATH": str(ROOT / "packages" / "torchwheel" / "src")}
    session.run("lint-imports", str(ROOT / "pyproject.toml"), "--no-cache", env=source)


@nox.session(python=PYTHON)
def types(session: nox.Session) -> None:
    """mypy --strict on torchwheel and minfer (minfer's types come from torch itself)."""
    session.install(
        "-q", TORCH_CPU, "mypy", "packaging", "ninja", "pyelftools", "auditwheel", "py-rattler", "py-rattler-build"
    )
    session.run("mypy", "--config-file", str(ROOT / "pyproject.toml"))
