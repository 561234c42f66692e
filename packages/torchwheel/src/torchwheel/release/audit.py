"""The ABI audit: may these `.so` files ship for this torch, and under which manylinux tag?

Per file it checks four things:
1. symbol versions (GLIBC, GLIBCXX, CXXABI, ...) against auditwheel's own manylinux policy data;
   the tag is auditwheel's symbol-version analysis itself, so the two never disagree;
2. the C++11 ABI: the manifest's flag, what the mangled symbols show, and torch's must agree;
3. every undefined symbol resolves against the target torch's libraries or the system's;
4. `DT_NEEDED` libraries stay within an allow-list, and RPATH/RUNPATH never name a path of the
   build machine.
Faults 2-4 always fail. Needing a newer glibc than the target policy is a warning that moves the
tag, and a fault under `strict`. Build-only: it imports pyelftools and auditwheel, so the run-time
modules (spec, manifest, loader, lock) never import it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import struct
import subprocess
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from functools import lru_cache
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from auditwheel.architecture import Architecture
from auditwheel.elfutils import elf_find_versioned_symbols
from auditwheel.error import AuditwheelError
from auditwheel.lddtree import DynamicExecutable, ldd, load_ld_paths
from auditwheel.libc import Libc
from auditwheel.policy import Policy, WheelPolicies
from elftools.common.exceptions import ELFError
from elftools.construct import ConstructError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection, GNUVerSymSection
from elftools.elf.hash import ELFHashSection, GNUHashSection
from elftools.elf.sections import SymbolTableSection
from packaging.tags import parse_tag

from torchwheel.errors import AuditError, SettingsError, ToolchainError
from torchwheel.files import NotRegularFile, file_kind, open_regular
from torchwheel.runtime.manifest import MANIFEST_NAME, ManifestEntry, read_manifest
from torchwheel.runtime.torch_install import TorchInstall
from torchwheel.spec import TorchAbi

# Torch's own libraries that an extension links against; the CUDA pair exists only in CUDA builds.
TORCH_LIBRARIES = ("libc10.so", "libtorch_cpu.so", "libtorch.so", "libc10_cuda.so", "libtorch_cuda.so")
# The C and C++ runtime that every manylinux system has. Narrower than auditwheel's whitelist on
# purpose: a kernel wheel has no business loading zlib, X11 or GL from the user's system.
SYSTEM_LIBRARIES = frozenset(
    {
        "libc.so.6",
        "libm.so.6",
        "libstdc++.so.6",
        "libgcc_s.so.1",
        "libpthread.so.0",
        "libdl.so.2",
        "librt.so.1",
    }
)
# How many symbols a one-line fault or warning names before "and N more".
_SHOWN = 5
_VERSION_PREFIXES = ("GLIBC", "GLIBCXX", "CXXABI")
# Demangled evidence of each C++11 ABI. The new one puts std::string and std::list in
# std::__cxx11 (or tags a function [abi:cxx11]); the old one has std::string (mangled `Ss`),
# std::list and the string streams directly in std.
_NEW_ABI = re.compile(r"__cxx11|\[abi:cxx11\]")
_OLD_ABI = re.compile(r"\bstd::w?string\b|\bstd::(?:basic_string|list|basic_stringbuf|basic_[io]?stringstream)<")
_MAJOR_MINOR = re.compile(r"^\d+\.\d+$")
# The Python C API's symbols: an extension module's, not a torch library's (PyModule_Create2,
# PyInit_..., _Py_NoneStruct, PyExc_...).
_PYTHON_C_API = re.compile(r"_?Py[A-Z_]")
# torch's C++ namespaces, which a stable-ABI build must not call into, and the C shim's functions
# (torch/csrc/inductor/aoti_torch/c/shim.h, torch/csrc/stable/c/shim.h), which it calls instead.
_TORCH_CXX_NAMESPACES = ("c10::", "at::", "torch::", "caffe2::")
_SHIM = re.compile(r"(aoti_torch_|torch_)[a-z0-9_]+$")
# What pyelftools and auditwheel raise on a corrupted file (truncated, byte-flipped: offsets past
# the end, counts that overrun a table, names that are not strings, ...), as tests/test_fuzz.py
# finds them. Each becomes one AuditError naming the file; a bug of ours elsewhere still shows.
_CORRUPT = (
    ELFError,  # and ELFParseError
    ConstructError,
    AuditwheelError,
    struct.error,
    OSError,  # a seek to a negative offset; a DT_NEEDED name that is a directory
    ValueError,  # and UnicodeDecodeError; an offset too large to seek to
    IndexError,
    KeyError,
    AssertionError,  # pyelftools asserts on the types of linked sections
    TypeError,
    AttributeError,
    OverflowError,
    ZeroDivisionError,  # a table whose entry size is 0
    RecursionError,
)
_VERNEED_ENTRY = 16  # bytes of an Elf_Verneed and of an Elf_Vernaux, in ELF32 and ELF64 alike


@dataclass(frozen=True)
class VersionedSymbol:
    """An undefined symbol bound to a library's symbol version, e.g. __libc_single_threaded@GLIBC_2.32."""

    name: str | None  # demangled; None for a version that no symbol carries (GLIBC_ABI_DT_RELR)
    version: str
    library: str

    def __str__(self) -> str:
        return f"{self.name}@{self.version}" if self.name else f"{self.version} ({self.library})"


@dataclass(frozen=True)
class PolicyCheck:
    """Check 1: the symbol versions a file needs, and the manylinux policies that allow them."""

    glibc: str | None  # highest version needed of each, e.g. "GLIBC_2.32"
    glibcxx: str | None
    cxxabi: str | None
    meets: str  # the lowest (most compatible) policy that allows every version it needs
    target: str
    exceeding: tuple[VersionedSymbol, ...]  # what the target policy lacks


@dataclass(frozen=True)
class AbiCheck:
    """Check 2: `_GLIBCXX_USE_CXX11_ABI` as recorded, as the symbols show it, and torch's."""

    torch: bool
    built_with: bool | None  # the manifest's flag; None where no manifest names the file
    symbols: bool | None  # None where no std::string/std::list symbol shows either ABI
    evidence: tuple[str, ...]  # demangled symbols that contradict torch's ABI

    @property
    def consistent(self) -> bool:
        return self.built_with in (None, self.torch) and not self.evidence


@dataclass(frozen=True)
class BuiltAs:
    """What a file was built as, where a manifest says it (else the audit assumes full ABI)."""

    cxx11_abi: bool | None
    torch_abi: TorchAbi = "full"
    min_torch: str | None = None  # a stable build's minimum torch, major.minor

    @classmethod
    def of(cls, entry: ManifestEntry) -> BuiltAs:
        return cls(entry.cxx11_abi, entry.torch_abi, entry.min_torch)


@dataclass(frozen=True)
class SearchPath:
    """Check 4: an RPATH or RUNPATH entry."""

    tag: str  # "RPATH" or "RUNPATH"
    entry: str


@dataclass(frozen=True)
class FileReport:
    path: str  # as the user gave it, joined with the file's place inside a directory or wheel
    policy: PolicyCheck
    abi: AbiCheck
    missing_symbols: tuple[str, ...]  # check 3, demangled
    needed: tuple[str, ...]
    disallowed_needed: tuple[str, ...]  # check 4
    bad_search_paths: tuple[SearchPath, ...]  # check 4
    faults: tuple[str, ...]  # one line each; any fault fails the file
    warnings: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.faults


@dataclass(frozen=True)
class AuditReport:
    torch_version: str
    torch_cxx11_abi: bool
    torch_cuda_version: str | None
    policy: str  # the target policy
    strict: bool
    platform_tag: str  # what every file really meets; the wheel's platform tag
    files: tuple[FileReport, ...]

    @property
    def passed(self) -> bool:
        return all(f.passed for f in self.files)

    def to_json(self) -> str:
        """Stable: sorted keys, no time, no path but those the user passed and the files name."""
        data = asdict(self)
        data["passed"] = self.passed
        for file, entry in zip(self.files, data["files"], strict=True):
            entry["passed"] = file.passed
            entry["abi"]["consistent"] = file.abi.consistent
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def format(self) -> str:
        """The report for people: one block per file, then the verdict."""
        cuda = f", CUDA {self.torch_cuda_version}" if self.torch_cuda_version else ""
        lines = [
            f"audit against torch {self.torch_version}{cuda} (C++11 ABI {int(self.torch_cxx11_abi)}), "
            f"policy {self.policy}{' (strict)' if self.strict else ''}"
        ]
        for file in self.files:
            check = file.policy
            needs = ", ".join(v for v in (check.glibc, check.glibcxx, check.cxxabi) if v) or "no versions"
            lines.append(f"{'ok  ' if file.passed else 'FAIL'} {file.path}")
            lines.append(f"     needs {needs}: meets {check.meets}")
            lines += [f"     fault: {fault}" for fault in file.faults]
            lines += [f"     warning: {warning}" for warning in file.warnings]
        failed = sum(not f.passed for f in self.files)
        total = f"{len(self.files)} file{'s' if len(self.files) > 1 else ''}"
        verdict = f"{failed} of {total} failed" if failed else f"{total} passed"
        lines.append(f"{verdict}; platform tag {self.platform_tag}")
        return "\n".join(lines)


def audit_paths(
    paths: Sequence[Path],
    target: TorchInstall,
    policy: str | None = None,
    strict: bool = False,
    minimum: TorchInstall | None = None,
) -> AuditReport:
    """Audit every `.so` in `paths` (files, directories searched recursively, or wheels) against
    the target torch and a manylinux policy (default: the one torch's own wheel is tagged with).
    `minimum`: the oldest torch a stable-ABI file claims to load into, where it is at hand."""
    if not paths:
        raise AuditError("nothing to audit; pass a .so file, a build directory or a wheel")
    with ExitStack() as stack:
        found = [item for path in paths for item in _shared_objects(path, stack)]
        return audit_files(found, target, policy, strict, minimum)


def audit_files(
    found: Sequence[tuple[str, Path, BuiltAs | None]],
    target: TorchInstall,
    policy: str | None,
    strict: bool,
    minimum: TorchInstall | None = None,
) -> AuditReport:
    """Audit (display name, file, what it was built as) triples: what the release driver calls
    on fresh build outputs, before anything is published."""
    with _Resolver(target) as resolver, ExitStack() as stack:
        oldest = stack.enter_context(_Resolver(minimum)) if minimum is not None else None
        files = []
        meets = []
        for display, so, built in found:
            report, met = _audit_file(display, so, built, target, (resolver, oldest), policy, strict)
            files.append(report)
            meets.append(met)
    tag = min(meets).name  # the least compatible file decides; policies order by priority
    return AuditReport(
        torch_version=target.version,
        torch_cxx11_abi=target.cxx11_abi,
        torch_cuda_version=target.cuda_version,
        policy=files[0].policy.target,
        strict=strict,
        platform_tag=tag,
        files=tuple(files),
    )


def require_torch_version(target: TorchInstall, wanted: str) -> None:
    """Fail in one line unless the target torch is `wanted` (major.minor)."""
    if not _MAJOR_MINOR.match(wanted):
        raise SettingsError(f"--torch-version {wanted!r} is not major.minor; pass e.g. --torch-version 2.13")
    if target.series != wanted:
        raise SettingsError(
            f"--torch-version {wanted} asks for torch {wanted}, but the target torch is {target.version}; "
            f"run the audit with the python of an environment with torch {wanted}, or pass --python PATH"
        )


def torch_policy(target: TorchInstall, arch: str = "x86_64") -> str:
    """The manylinux policy of the target torch's own wheel, from its `*.dist-info/WHEEL`: a
    release never needs a newer system than torch does."""
    site = target.prefix.parent
    candidates = [site / f"torch-{target.version}.dist-info"] + sorted(site.glob("torch-*.dist-info"))
    wheel = next((d / "WHEEL" for d in candidates if (d / "WHEEL").is_file()), None)
    if wheel is None:
        raise SettingsError(
            f"torch {target.version} has no WHEEL file beside it (built from source?), so its manylinux "
            "policy is unknown; pass --policy, e.g. --policy manylinux_2_28_x86_64"
        )
    platforms = {
        tag.platform
        for line in wheel.read_text().splitlines()
        if line.startswith("Tag:")
        for tag in parse_tag(line.partition(":")[2].strip())
    }
    policies = _policies(arch)
    known = [p for p in policies if p.priority > 0 and {p.name, *p.aliases} & platforms]
    if not known:
        raise SettingsError(
            f"torch {target.version}'s wheel is tagged {' '.join(sorted(platforms))}, which names no "
            f"manylinux policy for {arch}; pass --policy, e.g. --policy manylinux_2_28_{arch}"
        )
    return str(max(known).name)  # a wheel tagged for several policies runs on the oldest of them


# --- finding the files ------------------------------------------------------------------------


def _shared_objects(path: Path, stack: ExitStack) -> Iterator[tuple[str, Path, BuiltAs | None]]:
    """(display name, file on disk, the manifest's C++11 ABI flag) for each `.so` under `path`.

    Judged by `stat` before anything is opened: a FIFO or a device (or a link to one) where a
    file should be is refused in one line, never read (a FIFO would block the read forever).
    """
    mode = _mode(path, "audit path")
    if stat.S_ISDIR(mode):
        yield from _under(path, path, str(path))
    elif not stat.S_ISREG(mode):
        raise AuditError(
            f"audit path {_named(path)} is {file_kind(mode)}, not a regular file; "
            "pass a .so file, a build directory or a wheel"
        )
    elif path.suffix == ".whl":
        unpacked = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="torchwheel-audit-")))
        _unpack_wheel(path, unpacked)
        yield from _under(unpacked, unpacked, str(path))
    else:
        # A lone .so may sit in a prebuilt dir: <dir>/manifest.json, <dir>/<name>/<name>.so.
        yield str(path), path, _built_as(path, path.parent.parent)


def _mode(path: Path, what: str) -> int:
    """The file type and mode bits of `path`, following symlinks; one line if it has none."""
    try:
        return os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            raise AuditError(f"{what} {_named(path)} is a dangling symlink; fix the link or remove it") from None
        raise AuditError(f"{what} {path} does not exist; pass a .so file, a build directory or a wheel") from None
    except (OSError, ValueError) as error:  # EACCES, ENAMETOOLONG, ELOOP; ValueError: a NUL byte
        why = error.strerror if isinstance(error, OSError) else str(error)
        raise AuditError(f"{what} {path} cannot be examined ({why}); pass a path you can read") from None


def _named(path: Path) -> str:
    """`path`, with where it leads if it is a symlink: the link is what the user typed."""
    return f"{path} (-> {os.path.realpath(path)})" if os.path.islink(path) else str(path)


def _unpack_wheel(wheel: Path, into: Path) -> None:
    """Extract the `.so` files and manifests of `wheel` into `into`, or fail in one line."""
    try:
        with os.fdopen(open_regular(wheel), "rb") as stream, zipfile.ZipFile(stream) as archive:
            members = [i for i in archive.infolist() if i.filename.endswith((".so", f"/{MANIFEST_NAME}"))]
            # The sizes a zip declares bound what it extracts; a bomb is refused before it fills the disk.
            needed, free = sum(i.file_size for i in members), shutil.disk_usage(into).free
            if needed > free:
                raise AuditError(
                    f"{wheel} unpacks to {needed / 1e9:.1f} GB, and {into.parent} has {free / 1e9:.1f} GB free; "
                    "set TMPDIR to a roomier directory"
                )
            archive.extractall(into, members)
    except AuditError:
        raise
    except (*_CORRUPT, zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, RuntimeError, zlib.error) as error:
        raise AuditError(
            f"{wheel} is not a readable wheel ({_reason(error)}); pass a wheel file, a .so file or a directory"
        ) from None


def _under(root: Path, search: Path, display: str) -> Iterator[tuple[str, Path, BuiltAs | None]]:
    """Every `*.so` under `search`. One that is a FIFO, a device or a dangling link is refused in
    one line rather than skipped: an audit that passed over it would pass a tree it never read.
    A directory named `*.so` is no file to audit; its contents are searched like any other."""
    try:
        found = sorted(search.rglob("*.so"))
    except (OSError, ValueError) as error:
        raise AuditError(f"{display} cannot be searched ({_reason(error)}); pass a directory you can read") from None
    files = []
    for so in found:
        shown = str(PurePosixPath(display) / so.relative_to(root).as_posix())
        mode = _mode(so, "file")
        if stat.S_ISREG(mode):
            files.append((shown, so))
        elif not stat.S_ISDIR(mode):
            raise AuditError(
                f"{shown} is {file_kind(mode)}, not a regular file; remove it, or audit the built .so files by path"
            )
    if not files:
        raise AuditError(f"no .so file in {display}; pass a build directory or wheel that holds built .so files")
    for shown, so in files:
        yield shown, so, _built_as(so, root)


def _built_as(so: Path, top: Path) -> BuiltAs | None:
    """What a manifest.json between `so` and `top` records of `so`."""
    so, top = so.absolute(), top.absolute()
    for directory in so.parents:
        if directory != top and top not in directory.parents:
            return None
        if (directory / MANIFEST_NAME).is_file():
            manifest = read_manifest(directory)
            for entry in manifest.entries.values():
                if _same_file(manifest.path_of(entry), so):
                    return BuiltAs.of(entry)
        if directory == top:
            return None
    return None


def _same_file(recorded: Path, so: Path) -> bool:
    try:
        return os.path.realpath(recorded) == os.path.realpath(so)
    except ValueError:  # a manifest file name with a NUL byte names no file
        return False


# --- reading ELF --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Undefined:
    name: str
    version: str | None  # None: unversioned, so the loader takes it from any library in scope
    library: str | None


@dataclass(frozen=True)
class _Elf:
    needed: tuple[str, ...]
    search_paths: tuple[SearchPath, ...]
    versions: Mapping[str, frozenset[str]]  # library -> versions needed, as auditwheel reads them
    undefined: tuple[_Undefined, ...]  # non-weak
    defined: tuple[str, ...]


def _read_elf(path: Path, display: str) -> _Elf:
    """What the checks need of the file; AuditError (one line) for anything that is not a whole,
    readable shared library."""
    try:
        stream = os.fdopen(open_regular(path), "rb")
    except NotRegularFile as error:  # replaced since it was found
        raise AuditError(f"{display} {error.strerror}; pass a .so file, a build directory or a wheel") from None
    except OSError as error:
        raise AuditError(f"{display} cannot be read ({error.strerror}); pass a file you can read") from None
    with stream:
        elf = _open_elf(stream, display)
        try:
            return _elf_facts(elf, display, os.fstat(stream.fileno()).st_size)
        except _CORRUPT as error:
            raise AuditError(_unreadable(display, error)) from None


def _elf_facts(elf: ELFFile, display: str, size: int) -> _Elf:
    if elf["e_type"] != "ET_DYN":
        raise AuditError(f"{display} is an ELF file but not a shared library ({elf['e_type']}); pass a linked .so")
    dynamic = elf.get_section_by_name(".dynamic")
    if not isinstance(dynamic, DynamicSection):
        raise AuditError(_unreadable(display, "no .dynamic section"))
    _check_extents(elf, display, size)
    needed, search = _dynamic_entries(dynamic)
    versions: dict[str, set[str]] = {}
    for library, version in elf_find_versioned_symbols(elf):
        versions.setdefault(library, set()).add(version)
    undefined, defined = _symbols(elf)
    return _Elf(
        needed=needed,
        search_paths=search,
        versions={k: frozenset(v) for k, v in versions.items()},
        undefined=undefined,
        defined=defined,
    )


def _check_extents(elf: ELFFile, display: str, size: int) -> None:
    """Every section lies inside the file, and the version-needed chain has no more entries than
    its section holds. pyelftools trusts the chain's counts and `next` offsets, so a corrupted
    count (up to 2**32) with a `next` of 0 reads the same entry for hours; this walk stops once it
    has read more entries than fit."""
    for section in elf.iter_sections():
        end = section["sh_offset"] + section["sh_size"]
        if section["sh_type"] != "SHT_NOBITS" and end > size:
            raise AuditError(
                _unreadable(display, f"section {section.name!r} ends at byte {end}, past the end at {size}")
            )
        if isinstance(section, GNUVerNeedSection):
            budget = section["sh_size"] // _VERNEED_ENTRY
            for _, auxiliaries in section.iter_versions():
                budget -= 1 + sum(1 for _ in islice(auxiliaries, budget + 1))
                if budget < 0:
                    raise AuditError(_unreadable(display, f"section {section.name!r} has more entries than fit in it"))


def _unreadable(display: str, error: BaseException | str) -> str:
    return f"{display} is not a readable shared library ({_reason(error)}); rebuild it"


def _reason(error: BaseException | str) -> str:
    """One short line: the error's class and message (pyelftools' can hold newlines and dumps)."""
    if isinstance(error, str):
        return error
    text = " ".join(str(error).split())
    text = text if len(text) <= 120 else f"{text[:117]}..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _dynamic_entries(dynamic: DynamicSection) -> tuple[tuple[str, ...], tuple[SearchPath, ...]]:
    """DT_NEEDED libraries, and the RPATH/RUNPATH entries in order."""
    needed: list[str] = []
    search: list[SearchPath] = []
    # pyelftools sets `needed`, `rpath` and `runpath` on a tag by its kind, so they are untyped.
    for tag in dynamic.iter_tags():
        kind = tag.entry.d_tag
        if kind == "DT_NEEDED":
            needed.append(tag.needed)  # type: ignore[attr-defined]
        elif kind in ("DT_RPATH", "DT_RUNPATH"):
            text = tag.rpath if kind == "DT_RPATH" else tag.runpath  # type: ignore[attr-defined]
            search += [SearchPath(kind[3:], entry) for entry in text.split(":")]
    return tuple(needed), tuple(search)


def _version_names(elf: ELFFile) -> dict[int, tuple[str, str]]:
    """Version index (vna_other) -> (library, version), to name the symbols of each version."""
    by_index: dict[int, tuple[str, str]] = {}
    verneed = elf.get_section_by_name(".gnu.version_r")
    if isinstance(verneed, GNUVerNeedSection):
        for need, auxiliaries in verneed.iter_versions():
            for aux in auxiliaries:
                by_index[aux["vna_other"]] = (str(need.name), aux.name)
    return by_index


def _symbols(elf: ELFFile) -> tuple[tuple[_Undefined, ...], tuple[str, ...]]:
    """The non-weak undefined symbols with their versions, and the defined names."""
    by_index = _version_names(elf)
    versym = elf.get_section_by_name(".gnu.version")
    dynsym = elf.get_section_by_name(".dynsym")
    undefined: list[_Undefined] = []
    defined: list[str] = []
    for index, symbol in enumerate(dynsym.iter_symbols() if isinstance(dynsym, SymbolTableSection) else ()):
        bind = symbol["st_info"]["bind"]
        if index == 0 or bind == "STB_LOCAL" or not symbol.name:
            continue
        if symbol["st_shndx"] != "SHN_UNDEF":
            defined.append(symbol.name)
        elif bind != "STB_WEAK":  # a weak one may stay unresolved at run time by design
            ndx = versym.get_symbol(index)["ndx"] if isinstance(versym, GNUVerSymSection) else "VER_NDX_GLOBAL"
            library, version = by_index.get(ndx & 0x7FFF, (None, None)) if isinstance(ndx, int) else (None, None)
            undefined.append(_Undefined(symbol.name, version, library))
    return tuple(undefined), tuple(defined)


def _open_elf(stream: BinaryIO, display: str) -> ELFFile:
    if stream.read(4) != b"\x7fELF":
        raise AuditError(f"{display} is not an ELF file; pass a .so file, a build directory or a wheel")
    stream.seek(0)
    try:
        return ELFFile(stream)
    except _CORRUPT as error:
        raise AuditError(_unreadable(display, error)) from None


# --- the checks ---------------------------------------------------------------------------------


def _audit_file(
    display: str,
    so: Path,
    built: BuiltAs | None,
    target: TorchInstall,
    resolvers: tuple[_Resolver, _Resolver | None],
    policy: str | None,
    strict: bool,
) -> tuple[FileReport, Policy]:
    resolver, oldest = resolvers
    stable = built is not None and built.torch_abi == "stable"
    elf = _read_elf(so, display)  # first: it refuses what would send lddtree into a long loop
    tree = resolver.tree(so, display)
    try:
        arch = tree.platform.baseline_architecture.value
    except ValueError as error:
        raise AuditError(
            f"{display} is built for an unknown architecture ({error}); pass an x86_64 or aarch64 .so"
        ) from error
    names = demangle([u.name for u in elf.undefined] + list(elf.defined))
    target_policy = _target_policy(target, policy, arch)
    # auditwheel's own analysis (the one `auditwheel show` reports as sym_tag) gives the tag.
    met = _policies(arch).versioned_symbols_policy({k: set(v) for k, v in elf.versions.items()})
    policy_check = _policy_check(elf, names, met, target_policy)
    abi = _abi_check(elf, names, target.cxx11_abi, None if built is None else built.cxx11_abi)
    missing = tuple(sorted(names.get(u.name, u.name) for u in resolver.missing(elf, tree)))
    allowed = resolver.allowed_needed
    disallowed = tuple(n for n in elf.needed if n not in allowed and not n.startswith("ld-linux"))
    bad_paths = tuple(p for p in elf.search_paths if not p.entry.startswith(("$ORIGIN", "${ORIGIN}")))

    faults: list[str] = []
    warnings: list[str] = []
    if stable:
        assert built is not None and built.min_torch is not None
        faults += _stable_faults(elf, names, built.min_torch, oldest, warnings)
    # A stable build's C++11 ABI is its own: no libstdc++ type crosses the stable ABI.
    if not abi.consistent and not stable:
        shown = {True: "1", False: "0", None: "unknown"}
        faults.append(
            f"C++11 ABI mismatch: torch uses {int(abi.torch)}, the manifest says {shown[abi.built_with]}, "
            f"the symbols show {shown[abi.symbols]}"
            + (f" (e.g. {abi.evidence[0]})" if abi.evidence else "")
            + f"; rebuild with -D_GLIBCXX_USE_CXX11_ABI={int(abi.torch)}"
        )
    faults += _missing_faults(missing, target)
    if disallowed:
        faults.append(
            f"needs {', '.join(disallowed)}: not torch {target.version}'s libraries, its CUDA runtime or "
            "the C/C++ runtime; drop the dependency, or audit against the torch it was built for"
        )
    for path in bad_paths:
        faults.append(
            f"{path.tag} entry {path.entry!r} points into the build machine; use $ORIGIN-relative entries or none"
        )
    if met.priority == 0:
        faults.append(
            f"meets no manylinux policy (needs {_some(str(s) for s in policy_check.exceeding)}); "
            "build in a manylinux image"
        )
    elif policy_check.exceeding:
        symbols = _some(str(s) for s in policy_check.exceeding)
        line = f"needs a newer system than {target_policy.name}: {symbols}; it meets {met.name}"
        if strict:
            faults.append(f"{line}; build in a {target_policy.name} image")
        else:
            warnings.append(line)
    report = FileReport(
        path=display,
        policy=policy_check,
        abi=abi,
        missing_symbols=missing,
        needed=elf.needed,
        disallowed_needed=disallowed,
        bad_search_paths=bad_paths,
        faults=tuple(faults),
        warnings=tuple(warnings),
    )
    return report, met


def _missing_faults(missing: Sequence[str], target: TorchInstall) -> list[str]:
    """Check 3: undefined symbols that nothing at run time defines."""
    faults = []
    python_api = [name for name in missing if _PYTHON_C_API.match(name)]
    if python_api:
        faults.append(
            f"uses the Python C API ({_some(python_api)}), which a library loaded by torch.ops.load_library "
            "cannot reach; drop Python.h and the PyInit_ stub, and register the ops with TORCH_LIBRARY"
        )
    if other := [name for name in missing if name not in python_api]:
        plural = "s" if len(other) > 1 else ""
        faults.append(
            f"{len(other)} undefined symbol{plural} that torch {target.version} and the system libraries "
            f"do not define: {_some(other)}; build against this torch"
        )
    return faults


def _stable_faults(
    elf: _Elf, names: Mapping[str, str], min_torch: str, oldest: _Resolver | None, warnings: list[str]
) -> list[str]:
    """Check 5, for a stable-ABI file: it may leave undefined only C shim functions and system
    symbols. Any mangled c10::, at:: or torch:: symbol ties it to one torch's C++ API; a shim
    function that its minimum torch lacks fails to load there."""
    faults = []
    cxx_api = sorted(
        shown for u in elf.undefined if (shown := names.get(u.name, u.name)).startswith(_TORCH_CXX_NAMESPACES)
    )
    if cxx_api:
        faults.append(
            f"a stable-ABI build that uses torch's C++ API: {_some(cxx_api)}; include only torch/csrc/stable, "
            "torch/headeronly and the C shim, and call the shim instead"
        )
    shims = sorted(u.name for u in elf.undefined if u.version is None and _SHIM.match(u.name))
    if oldest is None:
        warnings.append(
            f"torch {min_torch} (its minimum) is not at hand: its {len(shims)} shim functions were checked "
            "against the build's torch only; pass --min-torch-python to check them against the minimum"
        )
    elif lacking := oldest.lacking(shims):
        faults.append(
            f"calls shim functions that torch {oldest.version} (the minimum it claims) does not export: "
            f"{_some(lacking)}; raise min_torch or avoid them"
        )
    return faults


def _policy_check(elf: _Elf, names: Mapping[str, str], met: Policy, target: Policy) -> PolicyCheck:
    highest: dict[str, tuple[tuple[int, ...], str]] = {}
    exceeding_versions: set[tuple[str, str]] = set()
    for library, versions in elf.versions.items():
        for version in versions:
            prefix, _, number = version.partition("_")
            # The same test as auditwheel's: only the prefixes that a policy limits count.
            if prefix in target.symbol_versions and number not in target.symbol_versions[prefix]:
                exceeding_versions.add((library, version))
            key = _numeric(number)
            if prefix in _VERSION_PREFIXES and key is not None and key > highest.get(prefix, ((), ""))[0]:
                highest[prefix] = (key, version)
    exceeding = {
        VersionedSymbol(names.get(u.name, u.name), u.version, u.library)
        for u in elf.undefined
        if u.library is not None and u.version is not None and (u.library, u.version) in exceeding_versions
    }
    named = {(s.library, s.version) for s in exceeding}
    exceeding |= {VersionedSymbol(None, v, lib) for lib, v in exceeding_versions - named}
    return PolicyCheck(
        glibc=highest.get("GLIBC", (None, None))[1],
        glibcxx=highest.get("GLIBCXX", (None, None))[1],
        cxxabi=highest.get("CXXABI", (None, None))[1],
        meets=met.name,
        target=target.name,
        exceeding=tuple(sorted(exceeding, key=lambda s: (s.library, s.version, s.name or ""))),
    )


# Mangled names in libstdc++'s own namespaces: std:: and its abbreviations (St, Sa, Sb, Ss, Si,
# So, Sd: the Itanium ABI's standard substitutions), __gnu_cxx:: and __cxxabiv1::, nested names
# possibly const/volatile/ref-qualified. Weak instantiations of its templates that a file defines
# say nothing of the file's ABI: gcc 13 instantiates old-ABI string members (`_ZNSs12_S_construct`)
# and comparisons on their iterators in new-ABI builds too (seen on the GPU machine,
# docs/benchmarks.md). What a file needs from outside (undefined symbols) still counts.
_LIBSTDCXX_MANGLED = re.compile(r"_Z(?:N[rVKRO]*)?(?:S[tabsiod]|9__gnu_cxx|10__cxxabiv1)")


def _abi_check(elf: _Elf, names: Mapping[str, str], torch: bool, built_with: bool | None) -> AbiCheck:
    """The ABI the file's symbols show: what it needs from outside, and what it defines of its own."""
    own = [d for d in elf.defined if not _LIBSTDCXX_MANGLED.match(d)]
    readable = {names.get(n, n) for n in [*(u.name for u in elf.undefined), *own]}
    new = sorted(d for d in readable if _NEW_ABI.search(d))
    old = sorted(d for d in readable if _OLD_ABI.search(d))
    if new and old:
        shown: bool | None = not torch  # mixed: the half that disagrees with torch is the finding
    elif new or old:
        shown = bool(new)
    else:
        shown = None
    contradicting = old if torch else new
    return AbiCheck(torch=torch, built_with=built_with, symbols=shown, evidence=tuple(contradicting[:_SHOWN]))


class _Resolver:
    """Where an unversioned undefined symbol can come from at run time: the target torch's
    libraries, then the other libraries the file needs, as this system's loader would find them.
    A versioned symbol is bound to its library by the version, so check 1 and 4 cover it."""

    def __init__(self, target: TorchInstall) -> None:
        self.version = target.version
        self._torch_names = [n for n in TORCH_LIBRARIES if (target.library_dir / n).is_file()]
        self._torch_dir = target.library_dir
        cuda = f"libcudart.so.{target.cuda_version.split('.')[0]}" if target.cuda_version else None
        self.allowed_needed = SYSTEM_LIBRARIES | set(self._torch_names) | ({cuda} if cuda else set())
        self._ldpaths = {"conf": load_ld_paths(Libc.GLIBC)["conf"], "env": [], "interp": []}
        self._stack = ExitStack()
        self._opened: dict[Path, ELFFile] = {}

    def __enter__(self) -> _Resolver:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def tree(self, so: Path, display: str) -> DynamicExecutable:
        """The file's libraries as this system's loader finds them (auditwheel's lddtree). Called
        after `_read_elf` accepted the file; lddtree opens it again by name."""
        try:
            return ldd(so, ldpaths=self._ldpaths)
        except _CORRUPT as error:
            raise AuditError(_unreadable(display, error)) from None

    def missing(self, elf: _Elf, tree: DynamicExecutable) -> list[_Undefined]:
        wanted = [u for u in elf.undefined if u.version is None]
        if not wanted:
            return []
        # Torch's libraries always come from the target torch, never from where an RPATH points.
        libraries = [self._torch_dir / n for n in self._torch_names]
        for name in elf.needed:
            found = tree.libraries.get(name)
            if name not in TORCH_LIBRARIES and found is not None and found.realpath is not None:
                libraries.append(found.realpath)
        tables = [self._table(path) for path in libraries]
        return [u for u in wanted if not any(table(u.name) for table in tables)]

    def lacking(self, names: Sequence[str]) -> list[str]:
        """Which of `names` no library of this torch exports."""
        tables = [self._table(self._torch_dir / n) for n in self._torch_names]
        return [name for name in names if not any(table(name) for table in tables)]

    def _table(self, path: Path) -> Callable[[str], bool]:
        if path not in self._opened:
            self._opened[path] = ELFFile(self._stack.enter_context(path.open("rb")))
        elf = self._opened[path]
        table = elf.get_section_by_name(".gnu.hash") or elf.get_section_by_name(".hash")
        if isinstance(table, (GNUHashSection, ELFHashSection)):
            return lambda name: _exported(table.get_symbol(name))
        exported = _exports(path)
        return exported.__contains__


def _exported(symbol: object) -> bool:
    return (
        symbol is not None
        and symbol["st_shndx"] != "SHN_UNDEF"  # type: ignore[index]
        and symbol["st_info"]["bind"] != "STB_LOCAL"  # type: ignore[index]
    )


@lru_cache(maxsize=16)
def _exports(path: Path) -> frozenset[str]:
    """Every exported name of a library without a hash section (rare: a slow linear read)."""
    with path.open("rb") as stream:
        dynsym = ELFFile(stream).get_section_by_name(".dynsym")
        symbols = dynsym.iter_symbols() if isinstance(dynsym, SymbolTableSection) else ()
        return frozenset(s.name for s in symbols if _exported(s))


# --- small helpers ------------------------------------------------------------------------------


def demangle(names: Iterable[str]) -> dict[str, str]:
    """Mangled C++ name -> readable, by binutils' c++filt (or LLVM's), in one process."""
    mangled = sorted({n for n in names if n.startswith("_Z")})
    if not mangled:
        return {}
    tool = shutil.which("c++filt") or shutil.which("llvm-cxxfilt")
    if tool is None:
        raise ToolchainError("c++filt not found on PATH; install binutils (the audit demangles symbols with it)")
    try:
        result = subprocess.run(
            [tool], input="\n".join(mangled) + "\n", capture_output=True, text=True, errors="replace", timeout=300
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ToolchainError(f"{tool} could not demangle the symbols ({error}); check that binutils works") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ToolchainError(
            f"{tool} failed on {len(mangled)} symbol names (exit {result.returncode}: {last}); "
            "check the file with c++filt, or rebuild it"
        )
    readable = result.stdout.splitlines()
    if len(readable) != len(mangled):
        return {}
    return dict(zip(mangled, readable, strict=True))


@lru_cache(maxsize=8)
def _policies(arch: str) -> WheelPolicies:
    return WheelPolicies(libc=Libc.GLIBC, arch=Architecture(arch))


def _target_policy(target: TorchInstall, name: str | None, arch: str) -> Policy:
    policies = _policies(arch)
    name = name or torch_policy(target, arch)
    try:
        return policies.get_policy_by_name(name)
    except LookupError:
        known = [p.name for p in policies if p.priority > 0]
        raise SettingsError(
            f"unknown policy {name!r} for {arch} files; pass one of auditwheel's, "
            f"{known[-1]} ... {known[0]}, e.g. --policy manylinux_2_28_{arch}"
        ) from None


def _numeric(version: str) -> tuple[int, ...] | None:
    parts = version.split(".")
    return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else None


def _some(items: Iterable[str]) -> str:
    items = list(items)
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more
