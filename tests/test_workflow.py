"""The generated CI workflow, run and read as GitHub would: its own `run:` steps for the cpu cell,
in order, in a clean clone; every CUDA cell's torch and toolkit; GitHub's schema and zizmor."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO
from torchwheel.release.matrix import load_matrix

ruamel_yaml = pytest.importorskip("ruamel.yaml", reason="ruamel.yaml comes with check-jsonschema (nox -s tests)")

WORKFLOW = REPO / "ci" / "workflows" / "wheels.yml"
BIN = Path(sys.executable).parent  # where the test session's check-jsonschema, zizmor and sccache are


def read_workflow(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = ruamel_yaml.YAML(typ="safe").load(path.read_text())
    return data


def run(*command: str | Path, **kwargs: Any) -> str:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=900, **kwargs)
    assert result.returncode == 0, f"{command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result.stdout


# --- a GitHub runner's reading of the job, as far as this workflow uses it --------------------


def expand(value: str, matrix: dict[str, str], ref: str) -> str:
    """${{ ... }} in a value: the expression forms the template uses, and no other (a new form
    fails here, so this reading is extended with the template rather than drifting from it)."""

    def one(found: re.Match[str]) -> str:
        return str(evaluate(found.group(1).strip(), matrix, ref))

    return re.sub(r"\$\{\{(.*?)\}\}", one, value)


def evaluate(expression: str, matrix: dict[str, str], ref: str) -> str | bool:
    if found := re.fullmatch(r"matrix\.(\w+)", expression):
        return matrix[found.group(1)]
    if found := re.fullmatch(r"matrix\.(\w+) (==|!=) '([^']*)'", expression):
        return (matrix[found.group(1)] == found.group(3)) == (found.group(2) == "==")
    if found := re.fullmatch(r"!startsWith\(github\.ref, '([^']*)'\)", expression):
        return not ref.startswith(found.group(1))
    if found := re.fullmatch(r"(.+?) && '([^']*)' \|\| '([^']*)'", expression):
        return found.group(2) if evaluate(found.group(1), matrix, ref) else found.group(3)
    raise AssertionError(f"the test's reading of the workflow does not know the expression {expression!r}")


def condition(step: dict[str, Any], matrix: dict[str, str], ref: str) -> bool:
    text = str(step.get("if", "true")).strip()
    if text == "true":
        return True
    inner = text[3:-2].strip() if text.startswith("${{") else text
    return bool(evaluate(inner, matrix, ref))


def job_env(job: dict[str, Any], matrix: dict[str, str], ref: str) -> dict[str, str]:
    return {k: expand(str(v), matrix, ref) for k, v in job.get("env", {}).items()}


def cell_entry(workflow: dict[str, Any], cell: str) -> dict[str, str]:
    entries: list[dict[str, str]] = workflow["jobs"]["variant"]["strategy"]["matrix"]["include"]
    (entry,) = [e for e in entries if e["id"] == cell]
    return entry


def named_step(job: dict[str, Any], name: str) -> dict[str, Any]:
    (step,) = [s for s in job["steps"] if s.get("name") == name]
    return step


def clean_pip_env(base: dict[str, str]) -> dict[str, str]:
    """`base` without this machine's pip settings (its find-links and extra indexes would serve a
    torch whatever index a step names): pip then sees only the indexes a command gives it."""
    env = {k: v for k, v in base.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def dry_run(python: Path | str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """What `pip install ARGS` would install, without installing or downloading it."""
    command = [str(python), "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed", "-q"]
    report: dict[str, Any] = json.loads(run(*command, "--report", "-", *args, env=env))
    return report


def simple_index(root: Path, project: str, url: str) -> str:
    """A one-file package index in the simple layout (a mirror, as torch_index may name one)."""
    (root / project).mkdir(parents=True)
    (root / project / "index.html").write_text(
        f'<html><body><a href="{url}">{url.rsplit("/", 1)[-1]}</a></body></html>'
    )
    return root.as_uri()


@dataclass(frozen=True)
class Mirrors:
    """Indexes for torch 2.13.0 (CPU) and 2.14.1 (CUDA 13.0), each holding the wheel that this
    machine's pip reaches (from local disk), standing in for torch's cpu and cu130 indexes."""

    cpu: str
    cu130: str


@pytest.fixture(scope="module")
def mirrors(tmp_path_factory: pytest.TempPathFactory) -> Mirrors:
    root = tmp_path_factory.mktemp("mirrors")
    urls = {}
    for name, requirement in (("cpu", "torch==2.13.0"), ("cu130", "torch==2.14.1")):
        (item,) = dry_run(sys.executable, [requirement], dict(os.environ))["install"]
        if not item["download_info"]["url"].startswith("file:"):
            pytest.skip(f"{requirement} is not on local disk here; the test downloads no torch")
        urls[name] = simple_index(root / name, "torch", item["download_info"]["url"])
    return Mirrors(**urls)


@dataclass(frozen=True)
class Clone:
    path: Path
    workflow: dict[str, Any]


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory, mirrors: Mirrors) -> Clone:
    """A clean clone of this working tree (its tracked and unignored files: no build output, no
    venv), whose matrix names the mirrors as torch_index and builds its cpu cell against torch
    2.13 (the CPU torch this machine has), with the workflow regenerated from it and committed."""
    origin = tmp_path_factory.mktemp("origin")
    listed = run("git", "-C", REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (origin / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, origin / name)
    matrix = origin / "ci" / "matrix.toml"
    text = matrix.read_text()
    text = text.replace("[accelerators.cpu]\n", f'[accelerators.cpu]\ntorch_index = "{mirrors.cpu}"\n')
    text = text.replace("[accelerators.cu130]\n", f'[accelerators.cu130]\ntorch_index = "{mirrors.cu130}"\n')
    matrix.write_text(text + '\n[[exclude]]\naccel = "cpu"\ntorch = "2.14"\nreason = "this machine\'s CPU torch"\n')
    env = {**os.environ, "PYTHONPATH": str(origin / "packages" / "torchwheel" / "src")}
    generated = run(sys.executable, "-m", "torchwheel", "matrix", "workflow", cwd=origin, env=env)
    (origin / "ci" / "workflows" / "wheels.yml").write_text(generated)
    git = ("git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false")
    run(*git, "init", "-q", origin)
    run(*git, "-C", origin, "add", "-A")
    run(
        *git,
        "-C",
        origin,
        "commit",
        "-q",
        "-m",
        "snapshot",
        env={**os.environ, "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"},
    )
    path = tmp_path_factory.mktemp("clone") / "repo"
    run("git", "clone", "-q", origin, path)
    return Clone(path, read_workflow(path / "ci" / "workflows" / "wheels.yml"))


@dataclass(frozen=True)
class StepRun:
    name: str
    output: str
    seconds: float = 0.0


@dataclass(frozen=True)
class JobRun:
    steps: tuple[StepRun, ...]
    artifacts: dict[str, tuple[Path, ...]]
    runner_temp: Path


def run_job(clone: Clone, cell: str, work: Path, ref: str = "refs/heads/main") -> Iterator[StepRun]:
    """The `variant` job's steps for one cell, in order, as a runner runs them: bash -e per
    `run:`, the job's env, GITHUB_ENV and GITHUB_PATH carried to later steps. `uses:` steps are
    the runner's: checkout is the clone itself, sccache-action puts the test session's sccache on
    PATH (with a local cache: GitHub's is not here), upload-artifact is checked in the caller."""
    job = clone.workflow["jobs"]["variant"]
    matrix = cell_entry(clone.workflow, cell)
    runner_temp = work / "runner-temp"
    runner_temp.mkdir()
    # The image's python3.11 is a bare interpreter: a fresh venv stands in for it.
    venv.create(work / "image-python", with_pip=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MINFER_", "TORCHWHEEL_", "SCCACHE_", "CUDA_"))}
    env["PATH"] = f"{work / 'image-python' / 'bin'}{os.pathsep}{env['PATH']}"
    github_env, github_path = work / "github-env", work / "github-path"
    env.update(job_env(job, matrix, ref), RUNNER_TEMP=str(runner_temp), GITHUB_REF=ref)
    env.update(GITHUB_ENV=str(github_env), GITHUB_PATH=str(github_path))
    for number, step in enumerate(job["steps"]):
        if not condition(step, matrix, ref):
            continue
        uses = str(step.get("uses", ""))
        if uses.startswith("mozilla-actions/sccache-action@"):
            env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
            env.update(SCCACHE_GHA_ENABLED="false", SCCACHE_DIR=str(work / "sccache"))
            env["SCCACHE_SERVER_PORT"] = str(4300 + os.getpid() % 1000)  # not another session's server
        if "run" not in step:
            yield StepRun(uses, "")
            continue
        step_env = {**env, **{k: expand(str(v), matrix, ref) for k, v in step.get("env", {}).items()}}
        started = time.monotonic()
        result = subprocess.run(
            ["bash", "-e", "-c", step["run"]], cwd=clone.path, env=step_env, capture_output=True, text=True, timeout=900
        )
        name = step.get("name", f"step {number}")
        assert result.returncode == 0, f"step {name!r} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        for line in github_env.read_text().splitlines() if github_env.exists() else ():
            key, _, value = line.partition("=")
            env[key] = value
        for line in github_path.read_text().splitlines() if github_path.exists() else ():
            env["PATH"] = f"{line}{os.pathsep}{env['PATH']}"
        yield StepRun(name, result.stdout + result.stderr, time.monotonic() - started)
    if shutil.which("sccache", path=env["PATH"]) and env.get("TORCHWHEEL_COMPILER_LAUNCHER") == "sccache":
        subprocess.run(["sccache", "--stop-server"], env=env, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def cpu_job(clone: Clone, tmp_path_factory: pytest.TempPathFactory) -> JobRun:
    """The cpu cell's job, run once for the module."""
    work = tmp_path_factory.mktemp("cpu-job")
    job = clone.workflow["jobs"]["variant"]
    steps = tuple(run_job(clone, "cpu", work))
    artifacts = {}
    for step in job["steps"]:
        if str(step.get("uses", "")).startswith("actions/upload-artifact@"):
            name = expand(step["with"]["name"], cell_entry(clone.workflow, "cpu"), "refs/heads/main")
            found = tuple(sorted(p for p in clone.path.glob(step["with"]["path"]) if p.is_file())) or tuple(
                sorted(p for p in (clone.path / step["with"]["path"]).rglob("*") if p.is_file())
            )
            artifacts[name] = found
    return JobRun(steps, artifacts, work / "runner-temp")


@pytest.mark.slow  # the job builds all 15 of minfer's CPU specs
def test_the_cpu_cells_steps_in_a_clean_clone_give_the_variant_wheel(cpu_job: JobRun) -> None:
    (wheel,) = cpu_job.artifacts["wheels-cpu"]
    assert re.fullmatch(r"minfer_cpu-0\.1\.0-py3-none-manylinux_2_\d+_x86_64\.whl", wheel.name), wheel.name


@pytest.mark.slow  # the job builds all 15 of minfer's CPU specs
def test_the_cpu_cells_torch_is_the_cpu_build_from_its_index(cpu_job: JobRun) -> None:
    python = cpu_job.runner_temp / "cell" / "bin" / "python"
    version = run(python, "-c", "import torch; print(torch.__version__, torch.version.cuda)").split()
    assert version == ["2.13.0+cpu", "None"]


@pytest.mark.slow  # the job builds all 15 of minfer's CPU specs
def test_the_cpu_cells_smoke_test_loads_every_spec_from_the_wheel(cpu_job: JobRun) -> None:
    (smoke,) = [s for s in cpu_job.steps if s.name == "Smoke test"]
    verdicts = re.findall(r"^ {4}(\w+_cpu)\s+(\S+)", smoke.output, re.MULTILINE)
    assert len(verdicts) == 15, smoke.output
    assert {verdict for _, verdict in verdicts} == {"prebuilt"}, smoke.output


@pytest.mark.slow  # the job builds all 15 of minfer's CPU specs
def test_the_cpu_cells_conda_packages_come_from_the_same_build(cpu_job: JobRun) -> None:
    packages = [p.name for p in cpu_job.artifacts["conda-cpu"] if p.name.endswith(".conda")]
    assert any(name.startswith("minfer-prebuilt-") for name in packages), packages


def test_every_cuda_cells_torch_comes_from_torchs_index_of_its_cuda() -> None:
    workflow = read_workflow(WORKFLOW)
    job = workflow["jobs"]["variant"]
    script = named_step(job, "Torch")["run"]
    assert '--index-url "$TORCH_INDEX" "torch==$TORCH_VERSION"' in script
    for cell in load_matrix(REPO / "ci" / "matrix.toml").cells:
        env = job_env(job, cell_entry(workflow, cell.id), "refs/tags/v1")
        assert env["TORCH_VERSION"] == cell.torch_version
        expected = "cpu" if cell.cuda is None else "cu" + cell.cuda.replace(".", "")
        assert env["TORCH_INDEX"] == f"https://download.pytorch.org/whl/{expected}", cell.id


def test_a_cells_torch_index_serves_a_torch_of_its_cuda(clone: Clone) -> None:
    """The cu130 step's own pip arguments, against its index alone (the mirror): the torch it
    would install requires CUDA 13.0's libraries, and the cpu index's torch no CUDA at all."""
    job = clone.workflow["jobs"]["variant"]
    cudas = {}
    for cell in ("cpu", "cu130"):
        env = job_env(job, cell_entry(clone.workflow, cell), "refs/heads/main")
        args = ["--index-url", env["TORCH_INDEX"], f"torch=={env['TORCH_VERSION']}"]
        (item,) = dry_run(sys.executable, args, clean_pip_env(dict(os.environ)))["install"]
        cudas[cell] = torch_cuda(item["metadata"].get("requires_dist", []))
    assert cudas == {"cpu": None, "cu130": "13.0"}


def torch_cuda(requires: list[str]) -> str | None:
    """The CUDA a torch wheel is built for, from the CUDA libraries it requires: `cuda-toolkit[...]
    ==13.0.3` (torch 2.14 on) or `nvidia-cuda-runtime-cu12==12.8.90` (before)."""
    pattern = re.compile(r"(?:cuda-toolkit(?:\[[^\]]*\])?|nvidia-cuda-runtime(?:-cu\d+)?)\s*==\s*(\d+\.\d+)")
    found = {m.group(1) for r in requires if (m := pattern.match(r))}
    assert len(found) <= 1, requires
    return found.pop() if found else None


def test_every_cuda_cells_toolkit_is_the_one_its_cuda_has() -> None:
    workflow = read_workflow(WORKFLOW)
    facts = {
        cell.id: (entry["cuda_source"], entry["cuda_packages"].split())
        for cell in load_matrix(REPO / "ci" / "matrix.toml").cells
        if cell.cuda is not None and (entry := cell_entry(workflow, cell.id))
    }
    assert facts == {
        # PyPI's nvidia-cuda-nvcc-cu12 has ptxas but no nvcc: CUDA 12 comes from NVIDIA's RPMs.
        "cu128": ("nvidia-rhel8", ["cuda-nvcc-12-8", "cuda-cudart-devel-12-8", "cuda-cccl-12-8"]),
        "cu130": (
            "pypi",
            ["nvidia-cuda-nvcc==13.0.*", "nvidia-cuda-runtime==13.0.*", "nvidia-cuda-cccl==13.0.*",
             "nvidia-cuda-crt==13.0.*", "nvidia-nvvm==13.0.*"],
        ),
    }  # fmt: skip


def test_the_pypi_toolkit_step_sets_cuda_home_to_a_toolkit_that_compiles_and_links(
    clone: Clone, tmp_path: Path
) -> None:
    """The cu130 cell's toolkit step as written, from this machine's index (NVIDIA's wheels are
    on local disk here): CUDA_HOME is set, its nvcc is 13.0, and a unit using the runtime links."""
    if not cell_entry(clone.workflow, "cu130")["cuda_packages"]:
        pytest.fail("the cu130 cell installs no toolkit")
    job = clone.workflow["jobs"]["variant"]
    steps = {"actions/checkout", "mozilla-actions/sccache-action", "CUDA toolkit from PyPI"}
    trimmed = {**job, "steps": [s for s in job["steps"] if str(s.get("uses", s.get("name"))).split("@")[0] in steps]}
    workflow = {**clone.workflow, "jobs": {"variant": trimmed}}
    list(run_job(Clone(clone.path, workflow), "cu130", tmp_path))
    (home,) = [line[len("CUDA_HOME=") :] for line in (tmp_path / "github-env").read_text().splitlines()]
    assert Path(home).is_relative_to(tmp_path / "runner-temp")
    (tmp_path / "unit.cu").write_text(
        "#include <cuda_runtime.h>\n__global__ void k(float* x) { x[0] = 1.0f; }\n"
        "int main() { return cudaGetDeviceCount(nullptr) == cudaSuccess ? 0 : 1; }\n"
    )
    nvcc = Path(home) / "bin" / "nvcc"
    assert "release 13.0," in run(nvcc, "--version")
    run(nvcc, "-arch=sm_90", tmp_path / "unit.cu", "-o", tmp_path / "unit", f"-L{home}/lib64", "-lcudart")
    assert (tmp_path / "unit").is_file()


def test_a_release_compiles_without_the_shared_cache() -> None:
    """A tag's build, the one that publishes, neither restores nor writes sccache's cache."""
    workflow = read_workflow(WORKFLOW)
    job, entry = workflow["jobs"]["variant"], cell_entry(workflow, "cpu")
    (sccache,) = [s for s in job["steps"] if str(s.get("uses", "")).startswith("mozilla-actions/sccache-action@")]
    assert job_env(job, entry, "refs/heads/main")["TORCHWHEEL_COMPILER_LAUNCHER"] == "sccache"
    assert condition(sccache, entry, "refs/heads/main")
    assert job_env(job, entry, "refs/tags/v0.1.0")["TORCHWHEEL_COMPILER_LAUNCHER"] == ""
    assert not condition(sccache, entry, "refs/tags/v0.1.0")


def test_only_the_upload_jobs_get_an_oidc_token_and_nothing_else() -> None:
    workflow = read_workflow(WORKFLOW)
    assert workflow["permissions"] == {}
    permissions = {name: job["permissions"] for name, job in workflow["jobs"].items()}
    assert permissions == {
        "variant": {"contents": "read"},
        "pypi": {"id-token": "write"},
        "conda": {"id-token": "write"},
    }
    assert "secrets." not in WORKFLOW.read_text()


def test_every_action_and_the_image_are_pinned_by_commit_or_digest() -> None:
    workflow = read_workflow(WORKFLOW)
    uses = [s["uses"] for job in workflow["jobs"].values() for s in job["steps"] if "uses" in s]
    assert uses and all(re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", u) for u in uses), uses
    assert re.fullmatch(
        r"quay\.io/pypa/manylinux_2_28_x86_64@sha256:[0-9a-f]{64}", workflow["jobs"]["variant"]["container"]
    )


def test_githubs_workflow_schema_accepts_the_workflow() -> None:
    tool = BIN / "check-jsonschema"
    if not tool.exists():
        pytest.skip("check-jsonschema is installed by `nox -s tests`")
    result = subprocess.run(
        [tool, "--builtin-schema", "vendor.github-workflows", WORKFLOW], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing_in_the_workflow() -> None:
    tool = BIN / "zizmor"
    if not tool.exists():
        pytest.skip("zizmor is installed by `nox -s tests`")
    result = subprocess.run([tool, "--offline", "--no-progress", WORKFLOW], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


def test_a_torch_of_another_cuda_for_a_cell_is_one_line_before_any_compile(
    tmp_path: Path, private_env: dict[str, str], torch214_python: str
) -> None:
    """torch 2.14.1 built with CUDA 13.0, for the cu128 cell: refused, naming the remedy."""
    out = tmp_path / "dist"
    command = [sys.executable, "-m", "torchwheel", "wheel", "--cell", "cu128", "--python", torch214_python]
    result = subprocess.run(
        [*command, "--out", str(out), "--build-dir", str(tmp_path / "build")],
        cwd=REPO, env=private_env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 4, result.stdout + result.stderr  # the environment is refused
    assert result.stderr == (
        f"torchwheel: error: cell cu128 needs a CUDA 12.8 build of torch 2.14.1, but {torch214_python} has "
        "2.14.1+cu130 (CUDA 13.0); install it with pip install --index-url https://download.pytorch.org/whl/cu128 "
        "torch==2.14.1, or pass --python with an interpreter that has it\n"
    )
    assert not out.exists() and not (tmp_path / "build").exists()


def test_the_venv_maker_installs_torch_from_the_cells_index(tmp_path: Path, private_env: dict[str, str]) -> None:
    """A cell whose index has no torch: pip looked there (and nowhere else), the error names it."""
    empty = tmp_path / "empty-index"
    empty.mkdir()
    matrix = tmp_path / "matrix.toml"
    matrix.write_text(
        '[project]\nname = "minfer"\nabis = ["stable"]\nmin_torch = "2.11"\n[torch]\n"2.13" = "2.13.0"\n'
        f'[accelerators.cpu]\ntorch_index = "{empty.as_uri()}"\n'
    )
    env = {**clean_pip_env(private_env), "PIP_INDEX_URL": (tmp_path / "not-this-one").as_uri()}
    command = [sys.executable, "-m", "torchwheel", "wheel", "--cell", "cpu", "--matrix", str(matrix)]
    result = subprocess.run(
        [*command, "--envs-dir", str(tmp_path / "envs"), "--out", str(tmp_path / "dist")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 4, result.stdout + result.stderr
    assert f"Looking in indexes: {empty.as_uri()}" in result.stdout + result.stderr
    assert "not-this-one" not in result.stdout + result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("torchwheel: error:")]
    assert (
        f"installing torch==2.13.0 from {empty.as_uri()} into {tmp_path / 'envs' / 'torch-2.13.0-cpu'} failed" in line
    )
    assert not (tmp_path / "dist").exists()
