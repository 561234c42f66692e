"""`torchwheel cache list|prune|clear`: what the JIT cache holds, and evicting it.

An entry's "last used" time is its directory's mtime, which the loader bumps (hourly at most)
on every load from the cache. An entry whose build lock is held is never touched: the lock is
taken without waiting, and an entry is removed only while it is held (renamed aside first, so
that a reader never sees half of it). Locks are per host, so where hosts share a cache dir,
prune from one host at a time, at quiet times.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import stat
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from torchwheel.errors import SettingsError
from torchwheel.runtime.jit_cache import (
    BUILD_PREFIX,
    KEY_PATTERN,
    TRASH_PREFIX,
    PartialBuild,
    discard,
    is_entry,
    lock_name,
)
from torchwheel.runtime.lock import try_lock, usable_lock_dir
from torchwheel.runtime.trust import private_dir_problem
from torchwheel.runtime.verify import MEMO_DIR_NAME
from torchwheel.spec import NAME_PATTERN

LOCKS_DIR_NAME = ".locks"  # settings.py's last lock dir candidate, inside the cache dir
_MARKER = re.compile(r"[0-9a-f]+(?:-[0-9a-f]+){5}")  # runtime/verify.py's marker names

_AGE = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass(frozen=True)
class CacheEntry:
    spec: str
    key: str
    path: Path
    size: int  # bytes, of every file in it
    last_used: float  # epoch seconds: the entry dir's mtime


@dataclass(frozen=True)
class CacheLocation:
    """One cache dir (several projects may share it) and the lock dir of its builds."""

    cache_dir: Path
    lock_dirs: tuple[Path, ...]  # as Settings.lock_dirs: the builds' lock dir is the first usable one
    projects: tuple[str, ...]
    variable: str  # the setting that moves the cache dir, for messages
    lock_variable: str | None  # the setting that named the lock dir; None for the default list


@dataclass(frozen=True)
class Contents:
    entries: tuple[CacheEntry, ...]
    partials: tuple[PartialBuild, ...]  # builds in progress or killed
    leftovers: tuple[Path, ...]  # `.trash-*` dirs of an interrupted removal, unparsable `.build-*`
    memo: tuple[Path, ...]  # verification markers
    foreign: tuple[Path, ...] = ()  # what torchwheel did not make: clear and prune refuse the dir


@dataclass(frozen=True)
class Eviction:
    removed: tuple[CacheEntry, ...]
    in_use: tuple[CacheEntry, ...]  # chosen, but their lock was held
    debris: int  # dead partial builds and leftovers removed
    markers: int  # verification markers removed


def parse_age(text: str, field: str = "--older-than") -> float:
    """'30d', '12h', '90m', '45s', '2w' -> seconds."""
    match = _AGE.fullmatch(text.strip().lower())
    if not match:
        raise SettingsError(f"{field} {text!r} is not an age; write a number and a unit, e.g. 30d, 12h or 90m")
    age = float(match.group(1)) * _AGE_UNITS[match.group(2)]
    if not age < 1e12:  # about 30,000 years; also inf
        raise SettingsError(f"{field} {text[:20]!r} is longer than any cache lives; write e.g. 30d")
    return age


def parse_size(text: str, field: str = "--max-size") -> int:
    """'2G', '500M', '1.5GiB', '4096' -> bytes (binary units)."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise SettingsError(f"{field} {text!r} is not a size; write a number and a unit, e.g. 2G, 500M or 1.5GiB")
    size = float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()]
    if not size < 1 << 62:  # also nan and inf: a number of hundreds of digits reads as inf
        raise SettingsError(f"{field} {text[:20]!r}... is larger than any disk; write e.g. 2G or 500M")
    return int(size)


def format_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def format_age(seconds: float) -> str:
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            return f"{seconds / length:.0f}{unit}"
    return f"{max(seconds, 0):.0f}s"


def check_location(location: CacheLocation) -> bool:
    """Whether the cache dir exists; raise when it is not ours alone (we would delete in it)."""
    if problem := private_dir_problem(location.cache_dir, "cache dir", location.variable):
        raise SettingsError(problem)
    return location.cache_dir.is_dir()


def _tree_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # removed meanwhile
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def scan(cache_dir: Path) -> Contents:
    """What the cache dir holds, never following a symlink. Anything torchwheel did not make
    (a file, a link, a dir not shaped as a spec, an entry without our `entry.json`) is `foreign`:
    with any, `clear` and `prune` refuse to touch the dir (it is not ours alone)."""
    entries: list[CacheEntry] = []
    partials: list[PartialBuild] = []
    leftovers: list[Path] = []
    memo: list[Path] = []
    foreign: list[Path] = []
    for item in _children(cache_dir):
        if item.name == MEMO_DIR_NAME and _real_dir(item):
            for marker in _children(item):
                (memo if _MARKER.fullmatch(marker.name) and _real_file(marker) else foreign).append(marker)
        elif item.name == LOCKS_DIR_NAME and _real_dir(item):
            continue  # the last-resort lock dir (runtime/lock.py); its files are locks, never deleted
        elif NAME_PATTERN.fullmatch(item.name) and _real_dir(item):
            for path in _children(item):
                _sort(item.name, path, entries, partials, leftovers, foreign)
        else:
            foreign.append(item)
    return Contents(tuple(entries), tuple(partials), tuple(leftovers), tuple(memo), tuple(foreign))


def _sort(
    spec: str,
    path: Path,
    entries: list[CacheEntry],
    partials: list[PartialBuild],
    leftovers: list[Path],
    foreign: list[Path],
) -> None:
    if not _real_dir(path):
        foreign.append(path)
    elif path.name.startswith(BUILD_PREFIX) and (partial := PartialBuild.parse(path)) is not None:
        partials.append(partial)
    elif path.name.startswith(TRASH_PREFIX) and KEY_PATTERN.match(path.name[len(TRASH_PREFIX) :]):
        leftovers.append(path)
    elif is_entry(path, spec):
        entries.append(CacheEntry(spec, path.name, path, _tree_size(path), os.lstat(path).st_mtime))
    else:
        foreign.append(path)


def _children(directory: Path) -> list[Path]:
    try:
        return sorted(Path(e.path) for e in os.scandir(directory))
    except OSError as error:
        raise SettingsError(f"cache dir {directory} cannot be read ({error.strerror}); check its permissions") from None


def _real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _real_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def refuse_foreign(location: CacheLocation, contents: Contents) -> None:
    """Deleting in a dir that holds what torchwheel did not make could delete someone's data."""
    if not contents.foreign:
        return
    first = contents.foreign[0]
    more = f" and {len(contents.foreign) - 1} more" if len(contents.foreign) > 1 else ""
    raise SettingsError(
        f"cache dir {location.cache_dir} holds {first}{more}, which torchwheel did not make, so it deletes "
        f"nothing there; move those away, or set {location.variable} to a directory of torchwheel's own"
    )


def choose(
    entries: Sequence[CacheEntry], *, older_than: float | None, max_size: int | None, now: float
) -> list[CacheEntry]:
    """The entries to evict: those unused for `older_than` seconds, then the least recently used
    until the rest fit in `max_size` bytes."""
    chosen = [e for e in entries if older_than is not None and now - e.last_used > older_than]
    if max_size is not None:
        kept = sorted((e for e in entries if e not in chosen), key=lambda e: e.last_used)
        total = sum(e.size for e in kept)
        while kept and total > max_size:
            oldest = kept.pop(0)
            chosen.append(oldest)
            total -= oldest.size
    return chosen


def evict(
    location: CacheLocation,
    chosen: Sequence[CacheEntry],
    contents: Contents,
    *,
    markers_older_than: float | None,
    now: float,
    dry_run: bool = False,
) -> Eviction:
    removed, in_use = [], []
    lock_dir = location.lock_dirs[0]
    if chosen and not dry_run:
        lock_dir = usable_lock_dir(location.lock_dirs, location.lock_variable, _note)
    for entry in chosen:
        if dry_run:
            removed.append(entry)
            continue
        with try_lock(lock_dir / lock_name(entry.spec, entry.key)) as taken:
            if not taken:
                in_use.append(entry)
                continue
            discard(entry.path)
            removed.append(entry)
    debris = [p.path for p in contents.partials if p.is_dead()] + list(contents.leftovers)
    markers = [m for m in contents.memo if markers_older_than is not None and now - _mtime(m) > markers_older_than]
    if not dry_run:
        for path in debris:
            shutil.rmtree(path, ignore_errors=True)
        for marker in markers:
            marker.unlink(missing_ok=True)
    return Eviction(tuple(removed), tuple(in_use), len(debris), len(markers))


def _note(line: str) -> None:
    print(f"torchwheel cache: {line}", file=sys.stderr)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def describe(location: CacheLocation, contents: Contents, now: float) -> list[str]:
    total = sum(e.size for e in contents.entries)
    lines = [
        f"{location.cache_dir} ({', '.join(location.projects)}): {len(contents.entries)} entries, {format_size(total)}"
    ]
    width = max((len(e.spec) for e in contents.entries), default=0)
    for entry in sorted(contents.entries, key=lambda e: (e.spec, -e.last_used)):
        lines.append(
            f"  {entry.spec:<{width}}  {entry.key[:12]}  {format_size(entry.size):>10}  "
            f"used {format_age(now - entry.last_used)} ago"
        )
    for partial in contents.partials:
        state = "dead" if partial.is_dead() else "running"
        lines.append(f"  partial build {partial.path.name} (pid {partial.pid} on {partial.host}, {state})")
    for leftover in contents.leftovers:
        lines.append(f"  leftover {leftover.relative_to(location.cache_dir)}")
    if contents.memo:
        lines.append(f"  {len(contents.memo)} verification markers in {MEMO_DIR_NAME}/")
    for item in contents.foreign:
        lines.append(f"  not torchwheel's: {item} (clear and prune refuse this dir while it is here)")
    return lines


def locations_for(references: Sequence[str]) -> list[CacheLocation]:
    """The cache dirs of the named projects (every installed one when none is named)."""
    from torchwheel.project import default_projects, load_project

    names = list(references) or default_projects()
    if not names:
        raise SettingsError("no torchwheel project is installed; name one (entry point name or module:attribute)")
    found: dict[Path, CacheLocation] = {}
    for name in names:
        project = load_project(name)
        settings = project.settings()
        key = Path(os.path.realpath(settings.cache_dir))
        if key in found:  # TORCHWHEEL_CACHE_DIR can point every project at one dir
            old = found[key]
            found[key] = dataclasses.replace(old, projects=(*old.projects, project.name))
        else:
            found[key] = CacheLocation(
                settings.cache_dir,
                settings.lock_dirs,
                (project.name,),
                settings.variable("CACHE_DIR"),
                settings.origin("lock_dir"),
            )
    return list(found.values())


def run_cache_command(
    action: str,
    locations: Sequence[CacheLocation],
    *,
    older_than: str | None = None,
    max_size: str | None = None,
    dry_run: bool = False,
) -> int:
    """The `torchwheel cache` subcommands; every argument is checked before anything is touched."""
    age = parse_age(older_than) if older_than is not None else None
    size = parse_size(max_size) if max_size is not None else None
    if action == "prune" and age is None and size is None:
        raise SettingsError("cache prune needs --older-than (e.g. 30d) or --max-size (e.g. 2G), or both")
    present = [location for location in locations if check_location(location)]
    now = time.time()
    for location in locations:
        if location not in present:
            print(f"{location.cache_dir} ({', '.join(location.projects)}): empty (not created yet)")
    # Every dir is scanned and judged before anything is removed from any of them.
    scanned = [(location, scan(location.cache_dir)) for location in present]
    if action != "list":
        for location, contents in scanned:
            refuse_foreign(location, contents)
    for location, contents in scanned:
        if action == "list":
            print("\n".join(describe(location, contents, now)))
            continue
        markers_age: float | None
        if action == "clear":
            chosen, markers_age = list(contents.entries), -1.0
        else:
            chosen, markers_age = choose(contents.entries, older_than=age, max_size=size, now=now), age
        result = evict(location, chosen, contents, markers_older_than=markers_age, now=now, dry_run=dry_run)
        freed = sum(e.size for e in result.removed)
        left = sum(e.size for e in contents.entries) - freed
        verb = "would remove" if dry_run else "removed"
        print(
            f"{location.cache_dir}: {verb} {len(result.removed)} entries ({format_size(freed)}), "
            f"{result.debris} partial builds, {result.markers} verification markers; "
            f"{len(contents.entries) - len(result.removed)} entries ({format_size(left)}) left"
        )
        for entry in result.in_use:
            print(f"  kept {entry.spec} {entry.key[:12]}: its build lock is held (in use)")
    return 0
