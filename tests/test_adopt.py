"""A library adopts torchwheel as a new user would: an extension project in the usual shape
(a binding unit with torch headers that registers its ops, a CUDA unit that adds CUDA kernels to
them, an `ops.py` that registers fakes at import, its own pytest tests) adds a `[tool.torchwheel]`
table and one call in its `__init__.py`, and nothing else: no packaging code.

The project is built by its own backend (setuptools, and hatchling), its cpu variant wheel by
`torchwheel wheel`, and installed by pip into a fresh venv. Its own tests then run there: from the
variant wheel with JIT disabled (nothing compiles), beside an editable install, and through JIT
once the variant is uninstalled."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import isolated_env

# The project is built as wheels, variant wheels and venvs, JIT-built and compiled for CUDA:
# minutes on 2 cores, so the edit loop (-m "not slow") leaves it to CI.
pytestmark = pytest.mark.slow

BINDING = """\
#include <ATen/ATen.h>
#include <torch/library.h>

namespace {
at::Tensor scale_cpu(const at::Tensor& x, double factor) { return x * factor; }
}  // namespace

TORCH_LIBRARY(tinyext, m) { m.def("scale(Tensor x, float factor) -> Tensor"); }
TORCH_LIBRARY_IMPL(tinyext, CPU, m) { m.impl("scale", &scale_cpu); }
"""

CUDA_UNIT = """\
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

namespace {
__global__ void scale_kernel(const float* x, float* y, float factor, int64_t n) {
  int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < n) y[i] = x[i] * factor;
}

at::Tensor scale_cuda(const at::Tensor& x, double factor) {
  TORCH_CHECK(x.scalar_type() == at::kFloat && x.is_contiguous(), "tinyext.scale: float32, contiguous");
  auto y = at::empty_like(x);
  int64_t n = x.numel();
  int threads = 256;
  auto blocks = static_cast<unsigned>((n + threads - 1) / threads);
  if (n > 0) {
    scale_kernel<<<blocks, threads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        x.data_ptr<float>(), y.data_ptr<float>(), static_cast<float>(factor), n);
  }
  return y;
}
}  // namespace

// The op is defined by the CPU spec; this one only adds its CUDA kernel (hence after = [...]).
TORCH_LIBRARY_IMPL(tinyext, CUDA, m) { m.impl("scale", &scale_cuda); }
"""

OPS = """\
import torch


@torch.library.register_fake("tinyext::scale")
def _scale_fake(x, factor):
    return torch.empty_like(x)


def scale(x: torch.Tensor, factor: float) -> torch.Tensor:
    return torch.ops.tinyext.scale(x, factor)
"""

# The one call: everything else in the package is the library's own.
INIT = """\
import torchwheel

loader = torchwheel.load_package(__name__)

from .ops import scale  # noqa: E402  (its fakes need the ops loaded)
"""

PROJECT_TESTS = """\
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import tinyext


def test_scale_multiplies():
    assert torch.equal(tinyext.scale(torch.arange(4.0), 2.5), torch.arange(4.0) * 2.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_scale_runs_its_cuda_kernel():
    x = torch.arange(4.0, device="cuda")
    assert torch.equal(tinyext.scale(x, 2.5).cpu(), torch.arange(4.0) * 2.5)


def test_scale_has_a_fake_for_compile():
    with FakeTensorMode():
        out = tinyext.scale(torch.empty(3, 5), 2.0)
    assert out.shape == (3, 5)
"""

TABLE = """\
[tool.torchwheel]

[[tool.torchwheel.spec]]
name = "tinyext_cpu"
torch_sources = ["csrc/*.cpp"]

[[tool.torchwheel.spec]]
name = "tinyext_cuda"
device = "cuda"
torch_sources = ["csrc/cuda/*.cu"]
after = ["tinyext_cpu"]

[tool.torchwheel.matrix.torch]
"2.13" = "2.13.0"
"2.14" = "2.14.1"

[tool.torchwheel.matrix.accelerators.cpu]

[tool.torchwheel.matrix.accelerators.cu130]
cuda = "13.0"
arch_list = "9.0"
"""

BACKENDS = {
    "setuptools": """\
[build-system]
requires = ["setuptools>=68", "torchwheel"]
build-backend = "setuptools.build_meta"

[tool.setuptools]
packages = ["tinyext"]
""",
    "hatchling": """\
[build-system]
requires = ["hatchling", "torchwheel"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["tinyext"]

[tool.hatch.build.targets.wheel.hooks.torchwheel]
""",
}

METADATA = """\
[project]
name = "tinyext"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["torch"]
"""


def write_project(root: Path, backend: str) -> Path:
    files = {
        "pyproject.toml": BACKENDS[backend] + "\n" + METADATA + "\n" + TABLE,
        "csrc/scale.cpp": BINDING,
        "csrc/cuda/scale_cuda.cu": CUDA_UNIT,
        "tinyext/__init__.py": INIT,
        "tinyext/ops.py": OPS,
        "tests/test_scale.py": PROJECT_TESTS,
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, command))} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@dataclass(frozen=True)
class Venv:
    """A fresh venv. It borrows torch (and pytest) from the test environment through one .pth
    line, after its own site-packages: copying a 200 MB torch per test session would be most of
    this module's time, and what is under test is what pip installs into the venv itself."""

    root: Path
    env: dict[str, str]

    @property
    def python(self) -> str:
        return str(self.root / "bin" / "python")

    def pip(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run([self.python, "-m", "pip", "--disable-pip-version-check", *args], self.root, self.env)

    def site_packages(self) -> Path:
        return next((self.root / "lib").glob("python3*/site-packages"))

    def project_tests(self, tests: Path, **env: str) -> subprocess.CompletedProcess[str]:
        """The project's own tests, run from a dir of their own so that nothing imports the checkout."""
        where = self.root.parent / "project-tests"
        shutil.rmtree(where, ignore_errors=True)
        shutil.copytree(tests, where)
        command = [self.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(where)]
        return subprocess.run(command, cwd=where, env={**self.env, **env}, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("adopt")


@pytest.fixture(scope="module")
def env(work: Path) -> dict[str, str]:
    return {**isolated_env(work), "PIP_NO_INDEX": "1"}


@pytest.fixture(scope="module")
def project(work: Path) -> Path:
    return write_project(work / "tinyext", "setuptools")


@pytest.fixture(scope="module")
def own_wheels(work: Path, project: Path, env: dict[str, str]) -> dict[str, Path]:
    """tinyext's own wheel, built by each backend with torchwheel's hook (no build isolation:
    these machines have no index that serves torchwheel)."""
    wheels = {}
    for backend in BACKENDS:
        source = project if backend == "setuptools" else write_project(work / f"tinyext-{backend}", backend)
        out = work / f"wheels-{backend}"
        command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out)]
        run([*command, str(source)], work, env)
        (wheels[backend],) = out.glob("tinyext-*.whl")
    return wheels


@pytest.fixture(scope="module")
def variant_wheel(work: Path, project: Path, env: dict[str, str]) -> Path:
    """`torchwheel wheel --cell cpu-torch213` in the project's directory, as its author runs it."""
    out = work / "variants"
    command = [sys.executable, "-m", "torchwheel", "wheel", "--cell", "cpu-torch213", "--python", sys.executable]
    run([*command, "--out", str(out), "--build-dir", str(work / "cells")], project, env, timeout=1500)
    (wheel,) = out.glob("tinyext_cpu_torch213-*.whl")
    return wheel


@pytest.fixture(scope="module")
def venv(work: Path, env: dict[str, str]) -> Venv:
    root = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(root)], work, env)
    created = Venv(root, {**env, "VIRTUAL_ENV": str(root)})
    (created.site_packages() / "borrowed-torch.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return created


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_its_own_wheel_carries_the_table_and_the_sources_for_jit(own_wheels: dict[str, Path], backend: str) -> None:
    names = set(zipfile.ZipFile(own_wheels[backend]).namelist())
    assert {
        "tinyext/_torchwheel/project.json",
        "tinyext/_torchwheel/src/csrc/scale.cpp",
        "tinyext/_torchwheel/src/csrc/cuda/scale_cuda.cu",
    } <= names


def test_its_tests_pass_from_the_variant_wheel_with_jit_disabled_and_nothing_compiled(
    venv: Venv, own_wheels: dict[str, Path], variant_wheel: Path, project: Path, work: Path
) -> None:
    venv.pip("install", "-q", "--no-deps", str(own_wheels["setuptools"]), str(variant_wheel))
    result = venv.project_tests(project / "tests", TINYEXT_DISABLE_JIT="1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed, 1 skipped" in result.stdout  # the CUDA test skips without a GPU
    assert not list((work / "cache").rglob("*.so"))  # nothing compiled (verification markers may be there)


def test_uninstalling_the_variant_leaves_nothing_behind(venv: Venv, variant_wheel: Path) -> None:
    site = venv.site_packages()
    assert (site / "tinyext.cpu-torch213.prebuilt" / "manifest.json").is_file()
    venv.pip("uninstall", "-q", "-y", "tinyext-cpu-torch213")
    assert not [p.name for p in site.iterdir() if p.name.startswith("tinyext.") or "cpu_torch213" in p.name]


def test_without_the_variant_its_tests_pass_through_jit(venv: Venv, project: Path, work: Path) -> None:
    assert not (venv.site_packages() / "tinyext.cpu-torch213.prebuilt").exists()
    result = venv.project_tests(project / "tests")
    assert result.returncode == 0, result.stdout + result.stderr
    assert any((work / "cache").rglob("tinyext_cpu.so"))


def test_with_jit_disabled_and_no_variant_the_import_says_what_to_install(venv: Venv, env: dict[str, str]) -> None:
    result = subprocess.run(
        [venv.python, "-c", "import tinyext"],
        cwd=venv.root,
        env={**venv.env, "TINYEXT_DISABLE_JIT": "1", "TORCHWHEEL_CACHE_DIR": str(venv.root / "empty-cache")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "tinyext_cpu" in last and "JIT is disabled" in last


def test_its_tests_pass_editable_beside_the_variant_wheel(
    venv: Venv, project: Path, variant_wheel: Path, env: dict[str, str]
) -> None:
    """The variant's files live in a top-level dir of their own, so an editable install's
    package is the one imported (no namespace package shadows it) and finds them."""
    venv.pip("uninstall", "-q", "-y", "tinyext")
    run([sys.executable, "-m", "pip", "--python", venv.python, "install", "-q", "--no-deps", "--no-build-isolation",
         "-e", str(project)], project, venv.env)  # fmt: skip
    venv.pip("install", "-q", "--no-deps", str(variant_wheel))
    code = "import tinyext; print(tinyext.__file__); print(tinyext.loader.loaded()['tinyext_cpu'].origin)"
    shown = run([venv.python, "-c", code], venv.root, {**venv.env, "TINYEXT_DISABLE_JIT": "1"}).stdout.split()
    assert shown == [str(project / "tinyext" / "__init__.py"), "prebuilt"]
    result = venv.project_tests(project / "tests", TINYEXT_DISABLE_JIT="1")
    assert result.returncode == 0, result.stdout + result.stderr


def test_doctor_in_the_project_builds_nothing_and_gives_a_verdict_per_spec(project: Path, env: dict[str, str]) -> None:
    cache = project.parent / "doctor-cache"
    result = subprocess.run(
        [sys.executable, "-m", "torchwheel", "doctor"],
        cwd=project,
        env={**env, "TORCHWHEEL_CACHE_DIR": str(cache)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "tinyext_cpu" in result.stdout and "tinyext_cuda" in result.stdout, result.stdout + result.stderr
    assert not cache.exists() or not any(cache.rglob("*.so"))


@pytest.mark.cuda_build
def test_its_cuda_spec_compiles_for_cu130_torch214(
    project: Path, work: Path, env: dict[str, str], torch214_python: str
) -> None:
    out = work / "variants-cu130"
    command = [sys.executable, "-m", "torchwheel", "wheel", "--cell", "cu130-torch214", "--python", torch214_python]
    result = run([*command, "--out", str(out), "--build-dir", str(work / "cells")], project, env, timeout=1500)
    (wheel,) = out.glob("tinyext_cu130_torch214-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "tinyext.cu130-torch214.prebuilt/tinyext_cuda/tinyext_cuda.so" in names, result.stdout


def test_the_table_is_all_the_packaging_it_has(project: Path) -> None:
    """No setup.py, no build hook of its own, no torchwheel import but the one call."""
    written = [p.relative_to(project) for p in project.rglob("*.py")]
    python_files = sorted(str(p) for p in written if p.parts[0] not in ("tests", "build"))  # build/: setuptools
    assert python_files == ["tinyext/__init__.py", "tinyext/ops.py"]
    init = (project / "tinyext" / "__init__.py").read_text().splitlines()
    assert [line for line in init if "torchwheel" in line] == [
        "import torchwheel",
        "loader = torchwheel.load_package(__name__)",
    ]


PYTHON_STUB = """\
#include <Python.h>
#include <torch/library.h>

PyMODINIT_FUNC PyInit__C(void) {
  static PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C"};
  return PyModule_Create(&module);
}
"""


def test_a_binding_unit_with_python_h_fails_in_one_line_saying_to_drop_it(tmp_path: Path, env: dict[str, str]) -> None:
    write_project(tmp_path, "setuptools")
    (tmp_path / "csrc" / "scale.cpp").write_text(PYTHON_STUB + BINDING)
    command = [sys.executable, "-m", "torchwheel", "build", "--device", "cpu", "--out", str(tmp_path / "out")]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 3  # a build failure
    last = result.stderr.strip().splitlines()[-1]
    assert "Python.h" in last and "drop Python.h and the PyInit_ stub" in last and "build dir" in last


def test_the_audit_explains_python_c_api_symbols(tmp_path: Path, env: dict[str, str]) -> None:
    """A library built elsewhere against Python: the audit says what to drop, not which torch to use."""
    source = tmp_path / "stub.cpp"
    source.write_text(
        'extern "C" void* PyModule_Create2(void*, int);\nextern "C" void* f() { return PyModule_Create2(0, 3); }\n'
    )
    library = tmp_path / "stub.so"
    run(["g++", "-shared", "-fPIC", "-o", str(library), str(source)], tmp_path, env)
    result = subprocess.run(
        [sys.executable, "-m", "torchwheel", "audit", str(library)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1  # faults found
    assert "uses the Python C API (PyModule_Create2)" in result.stdout + result.stderr
    assert "drop Python.h" in result.stdout + result.stderr


SETUP_PY = """\
from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

setup(
    name="tinyext",
    version="0.1.0",
    packages=["tinyext"],
    ext_modules=[
        CppExtension("tinyext._C", ["csrc/scale.cpp"], extra_compile_args={"cxx": ["-O3"]}),
        CUDAExtension("tinyext._cuda", ["csrc/cuda/scale_cuda.cu"], define_macros=[("TINY_CUDA", "1")]),
    ],
    cmdclass={"build_ext": BuildExtension},
)
"""


@pytest.fixture(scope="module")
def setup_py_project(work: Path) -> Path:
    """The project as it was before torchwheel: a setup.py, and a pyproject.toml with only its
    build requirements."""
    root = write_project(work / "from-setup-py", "setuptools")
    (root / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools", "torch"]\n')
    (root / "setup.py").write_text(SETUP_PY)
    return root


@pytest.fixture(scope="module")
def initialised(setup_py_project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "torchwheel", "init"], setup_py_project, env, timeout=300)


def test_init_writes_specs_from_the_extensions_of_setup_py(setup_py_project: Path, initialised: object) -> None:
    from torchwheel.config import read_pyproject

    config = read_pyproject(setup_py_project / "pyproject.toml")
    specs = {s.name: s for s in config.make_specs()}
    assert sorted(specs) == ["tinyext_c", "tinyext_cuda"]
    assert specs["tinyext_c"].torch_sources == (setup_py_project / "csrc" / "scale.cpp",)
    assert specs["tinyext_c"].extra_cflags == ("-O3",)
    assert specs["tinyext_cuda"].device == "cuda"
    assert "-DTINY_CUDA=1" in specs["tinyext_cuda"].extra_cuda_cflags
    assert (config.name, config.version) == ("tinyext", "0.1.0")


def test_init_changes_nothing_but_pyproject_and_says_what_it_left(
    setup_py_project: Path, initialised: subprocess.CompletedProcess[str]
) -> None:
    assert (setup_py_project / "setup.py").read_text() == SETUP_PY
    assert (
        (setup_py_project / "pyproject.toml")
        .read_text()
        .startswith('[build-system]\nrequires = ["setuptools", "torch"]\n')
    )
    assert "not translated: setup.py still builds ext_modules" in initialised.stdout
    assert "library" not in initialised.stdout  # torch's own libraries and dirs are no loss


def test_right_after_init_the_matrix_lists_and_the_cpu_wheel_builds(
    setup_py_project: Path, initialised: object, env: dict[str, str], work: Path
) -> None:
    listed = run([sys.executable, "-m", "torchwheel", "matrix", "list"], setup_py_project, env).stdout
    assert "cpu-torch213" in listed and "tinyext-cu130-torch214" in listed
    out = work / "init-variants"
    command = [sys.executable, "-m", "torchwheel", "wheel", "--cell", "cpu-torch213", "--python", sys.executable]
    run([*command, "--out", str(out), "--build-dir", str(work / "cells")], setup_py_project, env, timeout=1500)
    (wheel,) = out.glob("tinyext_cpu_torch213-0.1.0-*.whl")
    assert "tinyext.cpu-torch213.prebuilt/tinyext_c/tinyext_c.so" in zipfile.ZipFile(wheel).namelist()


def test_init_refuses_a_project_that_has_a_table_already(tmp_path: Path, env: dict[str, str]) -> None:
    write_project(tmp_path, "setuptools")
    (tmp_path / "setup.py").write_text(SETUP_PY)
    before = (tmp_path / "pyproject.toml").read_text()
    command = [sys.executable, "-m", "torchwheel", "init"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "has a [tool.torchwheel] table already" in result.stderr
    assert (tmp_path / "pyproject.toml").read_text() == before
