"""Conda packages end to end: `torchwheel conda` packages minfer's cpu and cu130 cells and a small
full-ABI project's cells, their index.json/paths.json are what the matrix and the audit say, they
are byte-identical from two git clones at two paths, a local channel indexed by `torchwheel conda
index` is solved by py-rattler's real solver with virtual packages, and the solved environment,
installed by py-rattler, runs every op prebuilt.

minfer's packages are those of the two clones that the variant-wheel tests build (`minfer_clones`
in tests/conftest.py: cu130 narrowed to two arch families): `torchwheel conda` runs in each clone's
build dir after `torchwheel wheel`, so it packages the cells' audited wheel bytes and compiles
nothing. The real pytorch, python and cuda-version packages cannot be fetched here: the channel
holds stand-ins for them (metadata only, each saying so in its summary). torchwheel's and minfer's
packages are the real ones; so are the tiny project's (conftest's), whose full-ABI specs make a
cell per torch series, which minfer's stable-ABI cells never are.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import CONDA_EPOCH, HAS_NVCC, REPO, TORCH214, MinferClone, isolated_env, write_tiny_project

rattler = pytest.importorskip("rattler", reason="py-rattler is not installed: `nox -s tests` installs it")
rattler_build = pytest.importorskip("rattler_build", reason="py-rattler-build is not installed")
from rattler import BuildString, Channel, GenericVirtualPackage, PackageName, Version  # noqa: E402
from rattler.exceptions import SolverError  # noqa: E402
from rattler.package_streaming import extract  # noqa: E402

# minfer's cells build against torch 2.14.1 (ci/matrix.toml), the cu130 cells with nvcc.
pytestmark = pytest.mark.slow


def needs_builds() -> None:
    if not (TORCH214 and HAS_NVCC):
        pytest.skip("needs nvcc and the torch 2.14.1 environment: `nox -s tests` makes it")


EPOCH = CONDA_EPOCH
TINY_MATRIX = """\
[project]
name = "tiny"
abis = ["full"]

[torch]
"2.13" = "2.13.0"
"2.14" = "2.14.1"

[accelerators.cpu]

[accelerators.cu130]
cuda = "13.0"
arch_list = "9.0"
min_torch = "2.14"
"""


def torchwheel(*args: str | Path, env: dict[str, str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "torchwheel", *map(str, args)]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def unpack(package: Path, into: Path) -> Path:
    extract(package, into)
    return into


def info(package: Path, tmp: Path, name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((unpack(package, tmp / package.stem) / "info" / name).read_text())
    return data


@dataclass(frozen=True)
class Built:
    channel: Path
    build_dir: Path
    output: str

    def package(self, subdir: str, pattern: str) -> Path:
        (found,) = (self.channel / subdir).glob(pattern)
        return found


@pytest.fixture(scope="module")
def clones(minfer_clones: tuple[MinferClone, MinferClone]) -> tuple[MinferClone, MinferClone]:
    """The two clones, each with a channel of minfer's cell packages and the noarch packages of
    torchwheel and minfer."""
    needs_builds()
    return minfer_clones


@pytest.fixture(scope="module")
def minfer_clone(clones: tuple[MinferClone, MinferClone]) -> MinferClone:
    return clones[0]


@pytest.fixture(scope="module")
def minfer_cpu(minfer_clone: MinferClone) -> Built:
    """minfer's cpu cell, packaged by `torchwheel conda` (with what it printed)."""
    return Built(minfer_clone.channel, minfer_clone.build_dir, minfer_clone.output("conda-cpu"))


def tiny_cells(root: Path, channel: Path, cells: dict[str, str]) -> str:
    """The tiny project (with a version, as an installed project has) written under `root` and
    its `cells` (id -> interpreter) packaged into `channel`."""
    project = write_tiny_project(root)
    module = project / "tiny_project.py"
    module.write_text(module.read_text().replace("make_specs)", 'make_specs, version="0.1.0")'))
    (project / "matrix.toml").write_text(TINY_MATRIX)
    env = isolated_env(root, project) | {"SOURCE_DATE_EPOCH": EPOCH}
    output = ""
    for cell, python in cells.items():
        output += ok(
            torchwheel(
                "conda", "--cell", cell, "--python", python, "--project", "tiny_project:PROJECT",
                "--matrix", project / "matrix.toml", "--build-dir", root / "cells", "--out", channel,
                env=env, cwd=project,
            )
        )  # fmt: skip
    return output


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The tiny project's torch 2.14 cells: cpu, and cu130 (its CPU specs, built with nvcc's
    toolkit present: the cpu cell's objects, a ninja no-op)."""
    needs_builds()
    tmp = tmp_path_factory.mktemp("tiny")
    cells = {"cpu-torch214": str(TORCH214), "cu130-torch214": str(TORCH214)}
    output = tiny_cells(tmp / "project", tmp / "channel", cells)
    return Built(tmp / "channel", tmp / "project" / "cells", output)


# --- what each package holds ---------------------------------------------------------------------


def test_a_cell_package_depends_on_the_library_the_stable_minimum_and_the_audited_glibc(
    minfer_cpu: Built, tmp_path: Path
) -> None:
    """The glibc is the newest symbol version that the cell's audit reported (its warning lines
    name each symbol beyond torch's policy: dlsym@GLIBC_2.34 for minfer built here)."""
    index = info(minfer_cpu.package("linux-64", "minfer-prebuilt-0.1.0-cpu_0.conda"), tmp_path, "index.json")
    warnings = [line for line in minfer_cpu.output.splitlines() if "audit warning: needs a newer system" in line]
    glibc = max(tuple(map(int, v)) for line in warnings for v in re.findall(r"@GLIBC_(\d+)\.(\d+)", line))
    assert index == {
        "arch": "x86_64",
        "build": "cpu_0",
        "build_number": 0,
        "depends": ["minfer ==0.1.0", "pytorch >=2.11", f"__glibc >={glibc[0]}.{glibc[1]}"],
        "name": "minfer-prebuilt",
        "platform": "linux",
        "subdir": "linux-64",
        "timestamp": int(EPOCH) * 1000,
        "version": "0.1.0",
    }


def test_a_cell_package_holds_exactly_the_manifests_files_under_its_share_dir(
    minfer_cpu: Built, tmp_path: Path
) -> None:
    package = minfer_cpu.package("linux-64", "minfer-prebuilt-0.1.0-cpu_0.conda")
    paths = info(package, tmp_path, "paths.json")["paths"]
    assert isinstance(paths, list)
    root = "share/minfer-prebuilt/minfer.cpu.prebuilt"
    manifest = json.loads((tmp_path / package.stem / root / "manifest.json").read_text())
    expected = {f"{root}/manifest.json"} | {f"{root}/{e['file']}" for e in manifest["specs"].values()}
    assert {p["_path"] for p in paths} == expected
    assert len(manifest["specs"]) == 15  # minfer's CPU specs, as the cell's wheel has them
    by_path = {p["_path"]: p["sha256"] for p in paths}
    assert all(by_path[f"{root}/{e['file']}"] == e["sha256"] for e in manifest["specs"].values())


def test_a_cell_package_holds_the_bytes_of_the_cells_audited_wheel(minfer_cpu: Built, tmp_path: Path) -> None:
    (wheel,) = (minfer_cpu.build_dir / "conda" / "cpu" / "wheels").glob("*.whl")
    unpacked = unpack(minfer_cpu.package("linux-64", "minfer-prebuilt-0.1.0-cpu_0.conda"), tmp_path / "pkg")
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if not n.split("/")[0].endswith(".dist-info")]
        for name in names:
            assert (unpacked / "share" / "minfer-prebuilt" / name).read_bytes() == archive.read(name), name


def test_packaging_a_cell_that_torchwheel_wheel_built_compiles_nothing(minfer_clone: MinferClone) -> None:
    """`torchwheel conda` ran after `torchwheel wheel` in the same build dir, for each cell: ninja
    ran no step (its log has no entry that it had after the last wheel)."""
    after_wheels = set(minfer_clone.ninja_log(f"wheel-{minfer_clone.cells[-1]}"))
    assert sum(".so" in line for line in after_wheels) >= 15 * len(minfer_clone.cells)  # every spec was built
    for cell in minfer_clone.cells:
        assert [line for line in minfer_clone.ninja_log(f"conda-{cell}") if line not in after_wheels] == [], cell


def test_the_library_noarch_package_carries_its_sources_and_the_pth_to_the_prebuilt_dir(
    minfer_cpu: Built, tmp_path: Path
) -> None:
    package = minfer_cpu.package("noarch", "minfer-0.1.0-pyh_0.conda")
    index = info(package, tmp_path, "index.json")
    assert (index["noarch"], index["subdir"]) == ("python", "noarch")
    assert index["depends"] == ["python >=3.11", "pytorch >=2.4", "torchwheel ==0.1.0"]
    site = tmp_path / package.stem / "site-packages"
    assert (site / "minfer-prebuilt.pth").read_text() == "../../../share/minfer-prebuilt\n"
    assert (site / "minfer" / "csrc" / "cuda" / "rmsnorm.cu").is_file()  # JIT works from the package alone
    assert not list(site.rglob("*.pyc"))
    assert not (site / "minfer-0.1.0.dist-info" / "direct_url.json").exists()  # pip's record of this install


def test_torchwheels_noarch_package_has_its_command(minfer_cpu: Built, tmp_path: Path) -> None:
    package = minfer_cpu.package("noarch", "torchwheel-0.1.0-pyh_0.conda")
    index = info(package, tmp_path, "index.json")
    assert index["depends"] == ["python >=3.11", "ninja >=1.11", "packaging >=23"]
    script = (tmp_path / package.stem / "python-scripts" / "torchwheel").read_text()
    assert "from torchwheel.cli import main" in script


def test_a_cuda_cells_build_has_the_offset_and_the_cuda_pins(minfer_clone: MinferClone, tmp_path: Path) -> None:
    package = minfer_clone.channel / "linux-64" / "minfer-prebuilt-0.1.0-cu130_200.conda"
    index = info(package, tmp_path, "index.json")
    assert index["build_number"] == 200
    depends = index["depends"]
    assert isinstance(depends, list)
    assert depends[:2] == ["minfer ==0.1.0", "pytorch >=2.11"]
    assert depends[3:] == ["cuda-version >=13.0,<14", "__cuda >=13"]


def test_a_full_abi_cpu_cell_pins_its_torch_series_at_build_number_0(tiny: Built, tmp_path: Path) -> None:
    index = info(tiny.package("linux-64", "tiny-prebuilt-0.1.0-cpu_torch214_0.conda"), tmp_path, "index.json")
    assert (index["build_number"], index["depends"][1]) == (0, "pytorch 2.14.*")  # type: ignore[index]


def test_progress_is_one_line_per_cell_package(tiny: Built) -> None:
    lines = [line for line in tiny.output.splitlines() if ".conda (" in line and line.startswith("cell ")]
    assert [line.split(":")[0] for line in lines] == [
        "cell 1/1 cpu-torch214",
        "cell 1/1 cu130-torch214",
    ]


def test_packages_are_byte_identical_from_two_clones_at_two_paths(clones: tuple[MinferClone, MinferClone]) -> None:
    """Every package of minfer's cells, and the noarch ones, from the second clone (another path,
    its own build) is the first clone's, byte for byte."""
    first, second = clones
    names = sorted(p.relative_to(second.channel) for p in second.channel.glob("*/*.conda"))
    assert names == sorted(p.relative_to(first.channel) for p in first.channel.glob("*/*.conda"))
    assert len([n for n in names if n.name.startswith("minfer-prebuilt-")]) == len(first.cells)
    for name in names:
        package, other = second.channel / name, first.channel / name
        assert hashlib.sha256(package.read_bytes()).digest() == hashlib.sha256(other.read_bytes()).digest(), name


# --- a local channel, solved by py-rattler ---------------------------------------------------------


def stand_in(channel: Path, name: str, version: str, subdir: str, depends: tuple[str, ...] = ()) -> None:
    note = channel.parent / "stand-in.txt"
    note.write_text("a stand-in for tests: metadata only\n")
    rattler_build.assemble_package(
        name=name,
        version=version,
        target_platform=subdir,
        build_string="standin_0",
        output_dir=channel / subdir,
        files=[rattler_build.FileEntry.from_paths(note, f"share/stand-ins/{name}.txt")],
        summary=f"STAND-IN for the real {name} package, for torchwheel's tests: holds no {name}",
        depends=list(depends),
        noarch="generic" if subdir == "noarch" else None,
    )


@pytest.fixture(scope="module")
def channel(minfer_clone: MinferClone, tiny: Built, tmp_path_factory: pytest.TempPathFactory) -> Channel:
    """minfer's and the tiny project's real packages, with stand-ins for what they depend on."""
    root = tmp_path_factory.mktemp("solve") / "channel"
    for source in (minfer_clone.channel, tiny.channel):
        for package in source.glob("*/*.conda"):
            (root / package.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(package, root / package.parent.name / package.name)
    stand_in(root, "python", "3.11.7", "linux-64")
    for version in ("2.13.0", "2.14.1"):
        stand_in(root, "pytorch", version, "linux-64", ("python >=3.11",))
    for version in ("12.8", "13.0"):
        stand_in(root, "cuda-version", version, "noarch")
    stand_in(root, "packaging", "24.0", "noarch")
    stand_in(root, "ninja", "1.11.1", "noarch")
    stand_in(root, "tiny", "0.1.0", "noarch")  # the tiny project's library: it is no distribution
    ok(torchwheel("conda", "index", root, env=isolated_env(root.parent)))
    return Channel(str(root))


def host(**versions: str) -> list[GenericVirtualPackage]:
    return [GenericVirtualPackage(PackageName(f"__{n}"), Version(v), BuildString("0")) for n, v in versions.items()]


def solve(channel: Channel, specs: list[str], virtual: list[GenericVirtualPackage]) -> dict[str, str]:
    records = asyncio.run(rattler.solve([channel], specs, platforms=["linux-64", "noarch"], virtual_packages=virtual))
    return {r.name.normalized: str(r.build) for r in records}


def test_with_cuda_13_and_pytorch_2_14_the_solver_picks_the_cu130_build(channel: Channel) -> None:
    chosen = solve(channel, ["minfer-prebuilt", "pytorch 2.14.*"], host(glibc="2.36", cuda="13.0", linux="6.1"))
    assert chosen["minfer-prebuilt"] == "cu130_200"


def test_without_cuda_the_solver_picks_the_cpu_build(channel: Channel) -> None:
    chosen = solve(channel, ["minfer-prebuilt", "pytorch 2.14.*"], host(glibc="2.36", linux="6.1"))
    assert chosen["minfer-prebuilt"] == "cpu_0"


def test_pytorch_2_13_never_gets_a_build_for_torch_2_14_only(channel: Channel) -> None:
    """The tiny project, not minfer: minfer's cells are stable-ABI, each for every torch from 2.11
    on, so minfer has no build for torch 2.14 only. Every build of the tiny project (full ABI) is
    for torch 2.14 (cpu and cu130): with pytorch 2.13 asked for, the solver takes none and names
    the pin that stops it."""
    with pytest.raises(SolverError, match=r"pytorch 2\.14\.\*"):
        solve(channel, ["tiny-prebuilt", "pytorch 2.13.*"], host(glibc="2.36", cuda="13.0"))


def test_a_glibc_older_than_the_audited_minimum_gets_no_build_and_the_solver_says_why(channel: Channel) -> None:
    with pytest.raises(SolverError, match=r"__glibc >=2\.3\d"):
        solve(channel, ["minfer-prebuilt"], host(glibc="2.28", linux="6.1"))


def test_the_solved_environment_runs_every_op_prebuilt_with_jit_disabled(channel: Channel, tmp_path: Path) -> None:
    """py-rattler installs the solve into a prefix; the test venv's python (torch 2.13.0) runs
    scripts/smoke.py with that prefix's site-packages first on its path, as a conda python would."""
    records = asyncio.run(
        rattler.solve(
            [channel], ["minfer-prebuilt"], platforms=["linux-64", "noarch"], virtual_packages=host(glibc="2.36")
        )
    )
    prefix = tmp_path / "env"
    asyncio.run(rattler.install(records, prefix, cache_dir=tmp_path / "pkgs", show_progress=False))
    site = prefix / "lib" / "python3.11" / "site-packages"
    code = (
        "import runpy, site, sys; site.addsitedir(sys.argv[1]); import minfer, torchwheel; "
        "assert minfer.__file__.startswith(sys.argv[1]) and torchwheel.__file__.startswith(sys.argv[1]); "
        "sys.argv = [sys.argv[2], 'cpu']; runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    env = isolated_env(tmp_path) | {"PYTHONPATH": str(site), "MINFER_DISABLE_JIT": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(site), str(REPO / "scripts" / "smoke.py")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all ops match the torch reference" in result.stdout
    origins = [line.split()[1] for line in result.stdout.splitlines() if line.split()[:1] and "_cpu" in line.split()[0]]
    assert origins == ["prebuilt"] * 15
    assert not (tmp_path / "cache").exists() or not [p for p in (tmp_path / "cache").iterdir() if p.name[0] != "."]


# --- bad input: one line, a usage exit status, nothing written -------------------------------------


def refused(tmp_path: Path, *args: str | Path) -> str:
    result = torchwheel(*args, env=isolated_env(tmp_path))
    assert result.returncode == 2, f"{result.stdout}\n{result.stderr}"
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("torchwheel: error: ")
    return line


def test_an_unknown_cell_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out, cells = tmp_path / "channel", tmp_path / "cells"
    line = refused(tmp_path, "conda", "--cell", "cu999", "--python", sys.executable, "--out", out, "--build-dir", cells)
    assert "cell 'cu999' is not in the matrix; pick one of cpu, cu128, cu130" in line
    assert not out.exists() and not cells.exists()


def test_an_out_dir_that_cannot_be_written_is_refused_before_anything_compiles(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = refused(tmp_path, "conda", "--cell", "cpu", "--python", sys.executable, "--out", blocker / "channel")
    assert f"--out {blocker / 'channel'}: {blocker} is a regular file, not a directory" in line
    line = refused(tmp_path, "conda", "--cell", "cpu", "--python", sys.executable, "--out", "/proc/torchwheel-channel")
    assert "--out /proc/torchwheel-channel cannot be created" in line


def test_a_channel_dir_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "channel"
    path.write_text("not a channel")
    assert f"channel dir {path} is not a directory" in refused(tmp_path, "conda", "index", path)
    assert path.read_text() == "not a channel"


def test_a_corrupt_repodata_json_is_one_line_and_left_as_it_was(tmp_path: Path) -> None:
    noarch = tmp_path / "channel" / "noarch"
    noarch.mkdir(parents=True)
    (noarch / "repodata.json").write_bytes(b'{"packages": {')
    line = refused(tmp_path, "conda", "index", tmp_path / "channel")
    assert f"{noarch / 'repodata.json'} is not readable JSON" in line and "remove it" in line
    assert (noarch / "repodata.json").read_bytes() == b'{"packages": {'
    assert sorted(p.name for p in (tmp_path / "channel").rglob("*")) == ["noarch", "repodata.json"]
