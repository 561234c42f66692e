"""Malformed inputs to the release commands (`matrix`, `audit`, `build`, `wheel`), each run through
the real `torchwheel` command: one line on stderr that names the value, the exit status of its
kind (errors.py), nothing written, no traceback and no hang (a FIFO or a device where a file
should be is refused, never read)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from conftest import REPO, isolated_env, tree_state
from torchwheel.errors import ExitCode

CXX = os.environ.get("CXX", "c++")
# Long enough for torch's import on a loaded 2-core box; a hang is what it catches.
LIMIT_S = 120


@dataclass(frozen=True)
class Cli:
    """The `torchwheel` command, run in a sandbox whose every file it must leave as it was."""

    box: Path

    def refuses(self, status: ExitCode, *args: str, named: tuple[str, ...], env: dict[str, str] | None = None) -> str:
        """Run `torchwheel ARGS`; check the one line, that it names each of `named`, the status
        and the sandbox; return the line."""
        before = tree_state(self.box)
        result = subprocess.run(
            [sys.executable, "-m", "torchwheel", *args],
            cwd=self.box / "work",
            env={**isolated_env(self.box), **(env or {})},
            capture_output=True,
            text=True,
            timeout=LIMIT_S,
        )
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("torchwheel: error: "), result.stderr
        for value in named:
            assert value in lines[0], f"{value!r} not named in: {lines[0]}"
        assert result.returncode == status, result.stderr
        assert result.stdout == ""
        assert tree_state(self.box) == before
        return lines[0]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    (tmp_path / "work").mkdir()
    return Cli(tmp_path)


# --- the matrix file ----------------------------------------------------------------------------

MATRIX = """\
[project]
name = "minfer"
max_wheel_mb = 100

[torch]
"2.13" = "2.13.0"

[accelerators.cpu]

[accelerators.cu130]
cuda = "13.0"
arch_list = "8.0;9.0"
"""


def matrix_file(box: Path, old: str, new: str) -> Path:
    """The base matrix with one line (or block) replaced: the malformed value under test."""
    assert old in MATRIX
    path = box / "matrix.toml"
    path.write_text(MATRIX.replace(old, new, 1))
    return path


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "true", "1e400"])
def test_a_max_wheel_mb_that_is_no_finite_number_is_a_usage_error(cli: Cli, value: str) -> None:
    path = matrix_file(cli.box, "max_wheel_mb = 100", f"max_wheel_mb = {value}")
    shown = "inf" if value == "1e400" else value  # TOML reads 1e400 as inf
    cli.refuses(ExitCode.USAGE, "matrix", "list", "--matrix", str(path), named=(f"max_wheel_mb = {shown}",))


@pytest.mark.parametrize("template", ["{name!z}", "{name:>>>}", "{0}", "{name.x}", "{name[0]}", "{", "{name} {accel}"])
def test_a_malformed_name_template_is_one_line_naming_it(cli: Cli, template: str) -> None:
    path = matrix_file(cli.box, 'name = "minfer"', f'name = "minfer"\ndistribution = "{template}"')
    cli.refuses(ExitCode.USAGE, "matrix", "list", "--matrix", str(path), named=(f"distribution = {template!r}",))


def test_a_template_that_names_two_cells_alike_is_refused(cli: Cli) -> None:
    path = matrix_file(cli.box, 'name = "minfer"', 'name = "minfer"\ndistribution = "{name}-{torch}"')
    cli.refuses(ExitCode.USAGE, "matrix", "list", "--matrix", str(path), named=("'minfer-213'", "put {accel}"))


TYPE_CASES = {
    "accelerator-is-an-integer": ("[accelerators.cpu]\n", "[accelerators]\ncpu = 5\n", "cpu = 5 is an integer"),
    "torch-version-is-an-integer": ('"2.13" = "2.13.0"', '"2.13" = 5', "'2.13' = 5 is an integer"),
    "arch-list-is-an-integer": ('arch_list = "8.0;9.0"', "arch_list = 7", "arch_list = 7 is an integer"),
    "cuda-is-a-float": ('cuda = "13.0"', "cuda = 13.0", "cuda = 13.0 is a float"),
    "max-torch-is-a-float": ('cuda = "13.0"', 'cuda = "13.0"\nmax_torch = 2.10', "max_torch = 2.1 is a float"),
    "exclude-entries-are-integers": ("[project]", "exclude = [1, 2]\n[project]", "number 1 = 1 is an integer"),
    "exclude-entry-is-a-string": ("[project]", 'exclude = ["cpu"]\n[project]', "number 1 = 'cpu' is a string"),
    "exclude-is-an-integer": ("[project]", "exclude = 3\n[project]", "exclude = 3 is an integer"),
    "exclude-accel-is-an-integer": (
        "[accelerators.cpu]",
        '[[exclude]]\naccel = 5\ntorch = "2.13"\n\n[accelerators.cpu]',
        "accel = 5 is an integer",
    ),
    "project-name-is-an-integer": ('name = "minfer"', "name = 3", "name = 3 is not a project name"),
    "project-is-a-string": ('[project]\nname = "minfer"\nmax_wheel_mb = 100\n', 'project = "minfer"\n', "project = "),
    "torch-is-an-array": ('[torch]\n"2.13" = "2.13.0"\n', 'torch = ["2.13"]\n', "torch = ['2.13'] is an array"),
    "misspelt-key": ('cuda = "13.0"', 'cuda = "13.0"\nmax-torch = "2.14"', "unknown key 'max-torch'"),
}


@pytest.mark.parametrize("case", list(TYPE_CASES))
def test_a_value_of_the_wrong_type_in_the_matrix_is_one_line_naming_it(cli: Cli, case: str) -> None:
    old, new, named = TYPE_CASES[case]
    if new.startswith(("project =", "torch =")):  # a top-level key must come before every table
        path = cli.box / "matrix.toml"
        path.write_text(new + MATRIX.replace(old, "", 1))
    else:
        path = matrix_file(cli.box, old, new)
    cli.refuses(ExitCode.USAGE, "matrix", "list", "--matrix", str(path), named=(named,))


def test_a_matrix_path_that_is_a_directory_is_one_line(cli: Cli) -> None:
    (cli.box / "ci").mkdir()
    cli.refuses(
        ExitCode.USAGE, "matrix", "list", "--matrix", str(cli.box / "ci"), named=(str(cli.box / "ci"), "directory")
    )


def test_a_binary_matrix_file_is_one_line(cli: Cli) -> None:
    (cli.box / "matrix.toml").write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe" + bytes(range(256)))
    cli.refuses(
        ExitCode.USAGE, "matrix", "ci", "--matrix", str(cli.box / "matrix.toml"), named=("matrix.toml", "not UTF-8")
    )


def test_a_matrix_path_that_is_a_fifo_is_refused_without_waiting(cli: Cli) -> None:
    os.mkfifo(cli.box / "matrix.toml")  # nothing ever writes to it: a read would block for ever
    cli.refuses(
        ExitCode.USAGE, "matrix", "list", "--matrix", str(cli.box / "matrix.toml"), named=("matrix.toml", "FIFO")
    )


# --- the audit's interpreter and paths ----------------------------------------------------------


@pytest.mark.parametrize(
    ("python", "named"),
    [
        ("/tmp", "is a directory, not an interpreter"),
        ("/nonexistent/bin/python", "does not exist"),
        ("/etc/passwd", "is not executable"),
        ("/dev/null", "is a character device"),
        ("no-such-python3", "is not on PATH"),
    ],
)
def test_an_audit_python_that_cannot_run_is_a_usage_error(cli: Cli, python: str, named: str) -> None:
    cli.refuses(ExitCode.USAGE, "audit", str(cli.box), "--python", python, named=(f"--python {python}", named))


def test_a_fifo_given_to_the_audit_is_refused_without_waiting(cli: Cli) -> None:
    os.mkfifo(cli.box / "x.so")
    cli.refuses(ExitCode.USAGE, "audit", str(cli.box / "x.so"), named=(f"{cli.box}/x.so is a FIFO",))


def test_dev_zero_given_to_the_audit_is_refused_without_reading_it(cli: Cli) -> None:
    cli.refuses(ExitCode.USAGE, "audit", "/dev/zero", named=("/dev/zero is a character device",))


def test_a_symlink_to_dev_zero_is_refused_naming_the_link_and_its_target(cli: Cli) -> None:
    (cli.box / "zero.so").symlink_to("/dev/zero")
    cli.refuses(ExitCode.USAGE, "audit", str(cli.box / "zero.so"), named=(f"{cli.box}/zero.so (-> /dev/zero)",))


def test_a_fifo_named_so_in_a_directory_is_refused_not_skipped(cli: Cli) -> None:
    (cli.box / "build" / "x").mkdir(parents=True)
    os.mkfifo(cli.box / "build" / "x" / "x.so")
    line = cli.refuses(ExitCode.USAGE, "audit", str(cli.box / "build"), named=(f"{cli.box}/build/x/x.so is a FIFO",))
    assert "remove it, or audit the built .so files by path" in line


def test_a_wheel_that_is_a_fifo_is_refused_without_waiting(cli: Cli) -> None:
    wheel = cli.box / "minfer_cpu-0.1.0-py3-none-manylinux_2_28_x86_64.whl"
    os.mkfifo(wheel)
    cli.refuses(ExitCode.USAGE, "audit", str(wheel), named=(f"{wheel} is a FIFO",))


def test_a_corrupt_wheel_is_one_line(cli: Cli) -> None:
    wheel = cli.box / "minfer_cpu-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    cli.refuses(ExitCode.USAGE, "audit", str(wheel), named=(f"{wheel} is not a readable wheel",))


# --- corrupted shared libraries -----------------------------------------------------------------

UNIT = """\
#include <string>
std::string greeting(int n) { return std::string(static_cast<std::size_t>(n), 'x') + " hello"; }
"""


@pytest.fixture(scope="module")
def shared_library(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A small real C++ shared library (libstdc++ symbol versions, a .gnu.version_r chain)."""
    where = tmp_path_factory.mktemp("unit")
    (where / "unit.cpp").write_text(UNIT)
    command = [CXX, "-shared", "-fPIC", "-O1", str(where / "unit.cpp"), "-o", str(where / "unit.so")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return (where / "unit.so").read_bytes()


def section_header(data: bytes, name: str) -> int:
    """The file offset of the named section's header (ELF64)."""
    elf = ELFFile(io.BytesIO(data))
    index = next(i for i, s in enumerate(elf.iter_sections()) if s.name == name)
    return int(elf["e_shoff"]) + index * int(elf["e_shentsize"])


def put(data: bytearray, offset: int, size: int, value: int) -> None:
    data[offset : offset + size] = value.to_bytes(size, "little")


def corrupt(data: bytes, kind: str) -> bytes:
    """`data` damaged one way; each broke the audit with a traceback (the exception named), or hung."""
    out = bytearray(data)
    if kind == "truncated":
        return bytes(out[: len(out) // 2])  # ELFParseError: section headers past the end
    if kind == "section-table-past-the-end":
        put(out, 0x28, 8, len(out) * 4)  # e_shoff
    elif kind == "tiny-section-header-size":
        put(out, 0x3A, 2, 8)  # e_shentsize: ELFError
    elif kind == "dynamic-linked-to-a-non-string-table":
        put(out, section_header(data, ".dynamic") + 0x28, 4, 0)  # sh_link: AssertionError
    elif kind == "symbol-entry-size-zero":
        put(out, section_header(data, ".dynsym") + 0x38, 8, 0)  # sh_entsize: ELFError
    elif kind == "names-beyond-any-offset":
        put(out, section_header(data, ".shstrtab") + 0x18, 8, 1 << 63)  # sh_offset: ValueError from seek
    elif kind == "endless-version-chain":
        header = section_header(data, ".gnu.version_r")
        put(out, header + 0x2C, 4, 0xFFFFFFFF)  # sh_info: 4 billion Verneed entries ...
        put(out, int.from_bytes(data[header + 0x18 : header + 0x20], "little") + 12, 4, 0)  # ... each vn_next 0
    else:
        raise AssertionError(kind)
    return bytes(out)


@pytest.mark.parametrize(
    "kind",
    [
        "truncated",
        "section-table-past-the-end",
        "tiny-section-header-size",
        "dynamic-linked-to-a-non-string-table",
        "symbol-entry-size-zero",
        "names-beyond-any-offset",
        "endless-version-chain",
    ],
)
def test_a_corrupted_shared_library_is_one_line_asking_for_a_rebuild(
    cli: Cli, shared_library: bytes, kind: str
) -> None:
    so = cli.box / "unit.so"
    so.write_bytes(corrupt(shared_library, kind))
    cli.refuses(ExitCode.USAGE, "audit", str(so), named=(f"{so} is not a readable shared library (", "); rebuild it"))


# --- output directories, checked before anything compiles ---------------------------------------

BUILD = ("build", "minfer", "--device", "cpu", "--spec", "rmsnorm_fp32_cpu")
# minfer's cpu cell builds against torch 2.14.1: an interpreter of another torch is refused first.
CELL_PYTHON = os.environ.get("TORCHWHEEL_TEST_TORCH214_PYTHON") or sys.executable
WHEEL = ("wheel", "--cell", "cpu", "--python", CELL_PYTHON, "--matrix", str(REPO / "ci" / "matrix.toml"))


@pytest.fixture
def a_file(cli: Cli) -> Path:
    (cli.box / "notes.txt").write_text("a regular file where a directory should be\n")
    return cli.box / "notes.txt"


@pytest.mark.parametrize("command", [BUILD, WHEEL], ids=["build", "wheel"])
def test_out_dev_null_is_refused_before_anything_compiles(cli: Cli, command: tuple[str, ...]) -> None:
    cli.refuses(ExitCode.USAGE, *command, "--out", "/dev/null", named=("--out /dev/null is a character device",))


@pytest.mark.parametrize("command", [BUILD, WHEEL], ids=["build", "wheel"])
def test_out_under_a_regular_file_is_refused_naming_the_file(cli: Cli, a_file: Path, command: tuple[str, ...]) -> None:
    out = a_file / "out"
    cli.refuses(ExitCode.USAGE, *command, "--out", str(out), named=(f"--out {out}: {a_file} is a regular file",))


@pytest.mark.parametrize("command", [BUILD, WHEEL], ids=["build", "wheel"])
def test_out_that_cannot_be_created_is_refused_before_anything_compiles(cli: Cli, command: tuple[str, ...]) -> None:
    out = "/proc/torchwheel-out"
    cli.refuses(ExitCode.USAGE, *command, "--out", out, named=(f"--out {out}",))
    assert not Path(out).exists()


def test_a_build_dir_under_a_regular_file_is_refused(cli: Cli, a_file: Path) -> None:
    build_dir = a_file / "cells"
    args = (*WHEEL, "--out", str(cli.box / "dist"), "--build-dir", str(build_dir))
    cli.refuses(ExitCode.USAGE, *args, named=(f"--build-dir {build_dir}: {a_file} is a regular file",))


@pytest.mark.parametrize("jobs", ["0", "-3"])
def test_a_jobs_count_below_one_is_refused(cli: Cli, jobs: str) -> None:
    cli.refuses(ExitCode.USAGE, *BUILD, "--out", str(cli.box / "out"), "--jobs", jobs, named=(f"--jobs {jobs}",))


# --- SOURCE_DATE_EPOCH --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("yesterday", "SOURCE_DATE_EPOCH='yesterday' is not a whole number"),
        ("-5", "SOURCE_DATE_EPOCH='-5' is not a whole number"),
        ("1e9", "SOURCE_DATE_EPOCH='1e9' is not a whole number"),
        ("١٢٣", "SOURCE_DATE_EPOCH='١٢٣' is not a whole number"),  # digits to str.isdigit, not to a zip
        ("9" * 400, "SOURCE_DATE_EPOCH=999999999999... (400 digits) is after 2107-12-31"),
        ("4354819199", "SOURCE_DATE_EPOCH=4354819199 is after 2107-12-31"),
    ],
    ids=["word", "negative", "float", "arabic-indic-digits", "400-digits", "one-second-past-zip"],
)
def test_a_bad_source_date_epoch_is_refused_before_anything_compiles(cli: Cli, value: str, named: str) -> None:
    args = (*WHEEL, "--out", str(cli.box / "dist"))
    cli.refuses(ExitCode.USAGE, *args, named=(named,), env={"SOURCE_DATE_EPOCH": value})


def test_the_last_time_a_zip_holds_is_a_valid_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    from torchwheel.release.wheel import source_date_epoch

    monkeypatch.setenv("SOURCE_DATE_EPOCH", " 4354819198 ")
    assert source_date_epoch() == 4354819198
