"""The JIT cache: one immutable entry per cache key, built under a lock, published by rename.

Layout: `<cache_dir>/<spec>/<key>/<spec>.so` beside `entry.json` (the library's sha256) and
`key.json` (what the key was made of, for people reading the cache). A build works in its own
temporary directory next to the entry (`.build-<key>-<host>-<pid>-*`) and renames the finished
entry into place, so a reader sees either nothing or a whole entry, and a killed build leaves
only a temporary directory that nothing ever loads (and the next build of that key, or
`torchwheel cache prune`, removes). Every entry is sha256-checked before it is loaded (once per
file: verify.py); a damaged one is moved aside and rebuilt.

Building an entry is the compile tier's work (`torchwheel.compile.jit`); this module only knows
the layout, so that a cache hit imports no build machinery.

Two hosts sharing a cache dir hold separate locks (locks stay on local disk), so both may build
one key at once: each in its own temporary directory; the second rename finds the first entry
in place and uses it.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from torchwheel.files import read_regular
from torchwheel.runtime.trust import trusted_dir_problem, trusted_file_problem
from torchwheel.runtime.verify import Verifier

ENTRY_FILE = "entry.json"
ENTRY_MAX_BYTES = 1 << 16
BUILD_PREFIX = ".build-"
TRASH_PREFIX = ".trash-"
USE_RESOLUTION_S = 3600  # an entry's mtime says when it was last used, to the hour
PARTIAL_MAX_AGE_S = 24 * 3600  # another host's partial build is taken as dead after a day


KEY_PATTERN = re.compile(r"[0-9a-f]{32}")  # compile/keys.py's cache_key: 32 hex digits
ENTRY_FORMAT = 1


def lock_name(name: str, key: str) -> str:
    """The lock file of one key's build, in the lock dir (runtime/lock.py's usable_lock_dir)."""
    return f"{name}-{key}.lock"


def entry_record(sha256: str, file: str) -> dict[str, object]:
    """What `entry.json` holds: the library's digest and name, and the mark of our format that
    `torchwheel cache` looks for before it deletes anything."""
    return {"format": ENTRY_FORMAT, "torchwheel": "jit-cache-entry", "sha256": sha256, "file": file}


def is_entry(path: Path, spec: str) -> bool:
    """Whether `path` proves to be one of our entries: a real dir named like a key, holding a
    regular `entry.json` that names `<spec>.so` and a sha256 digest."""
    try:
        if not KEY_PATTERN.fullmatch(path.name) or not stat.S_ISDIR(os.lstat(path).st_mode):
            return False
        record = json.loads(read_regular(path / ENTRY_FILE, ENTRY_MAX_BYTES))
    except (OSError, ValueError, RecursionError):
        return False
    return (
        isinstance(record, dict)
        and record.get("file") == f"{spec}.so"
        and isinstance(record.get("sha256"), str)
        and re.fullmatch(r"[0-9a-f]{64}", record["sha256"]) is not None
    )


@dataclass(frozen=True)
class PartialBuild:
    """A `.build-*` directory: a build in progress, or the remains of a killed one."""

    path: Path
    key: str
    host: str
    pid: int

    @classmethod
    def parse(cls, path: Path) -> PartialBuild | None:
        rest = path.name[len(BUILD_PREFIX) :] if path.name.startswith(BUILD_PREFIX) else ""
        key, _, rest = rest.partition("-")
        host, _, rest = rest.rpartition("-")  # the random tail: no '-' in tempfile's alphabet
        host, _, pid = host.rpartition("-")
        if not (KEY_PATTERN.fullmatch(key) and host and pid.isdigit()):
            return None
        return cls(path, key, host, int(pid))

    def is_dead(self) -> bool:
        """True when no process can still be writing into it."""
        if self.host == socket.gethostname():
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
            return False
        try:
            return time.time() - self.path.stat().st_mtime > PARTIAL_MAX_AGE_S
        except FileNotFoundError:
            return True


class JitCache:
    def __init__(self, cache_dir: Path, verifier: Verifier | None = None) -> None:
        self.cache_dir = cache_dir
        self.verifier = verifier or Verifier.for_cache(cache_dir)

    def entry_path(self, name: str, key: str) -> Path:
        return self.cache_dir / name / key / f"{name}.so"

    def check(self, name: str, key: str) -> tuple[Path | None, str | None]:
        """(the entry's verified .so, None), (None, None) when there is no entry, or (None, why
        the entry there must not be loaded)."""
        entry = self.cache_dir / name / key
        library = entry / f"{name}.so"
        if not os.path.lexists(entry):
            return None, None
        # Every directory from the entry up, and the file, must be beyond other users' reach.
        if problem := trusted_dir_problem(self.cache_dir, entry) or trusted_file_problem(entry, library.name):
            return None, f"cached entry refused: {problem}"
        try:
            recorded = json.loads(read_regular(entry / ENTRY_FILE, ENTRY_MAX_BYTES))
        except FileNotFoundError:
            return None, f"cached {library} has no {ENTRY_FILE} (made by an older torchwheel)"
        except (OSError, ValueError, RecursionError) as error:
            return None, f"cached {library} has an unreadable {ENTRY_FILE} ({error.__class__.__name__})"
        digest = recorded.get("sha256") if isinstance(recorded, dict) else None
        if problem := self.verifier.problem(library, str(digest)):
            return None, f"cached {library}: {problem}"
        return library, None

    def lookup(self, name: str, key: str) -> Path | None:
        return self.check(name, key)[0]

    def new_work_dir(self, name: str, key: str) -> Path:
        """A fresh private directory for one build of `key`, beside the entry it will become."""
        spec_dir = self.cache_dir / name
        return Path(tempfile.mkdtemp(prefix=f"{BUILD_PREFIX}{key}-{socket.gethostname()}-{os.getpid()}-", dir=spec_dir))

    def publish(self, staged: Path, name: str, key: str) -> None:
        """Rename a finished entry into place (the caller holds the key's lock)."""
        self._publish(staged, self.cache_dir / name / key, name)

    def _publish(self, staged: Path, final: Path, name: str) -> None:
        try:
            os.rename(staged, final)
            return
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        # Another host (with locks of its own) published this key first: keep its entry if sound.
        if self.check(name, final.name)[0] is not None:
            return
        discard(final)
        os.rename(staged, final)

    def remove_dead_partials(self, name: str, key: str) -> None:
        for path in (self.cache_dir / name).glob(f"{BUILD_PREFIX}{key}-*"):
            partial = PartialBuild.parse(path)
            if partial is not None and partial.is_dead():
                shutil.rmtree(path, ignore_errors=True)


def mark_used(library: Path) -> None:
    """Bump the entry's mtime (at most hourly), which `cache prune --older-than` goes by."""
    entry = library.parent
    try:
        if time.time() - entry.stat().st_mtime > USE_RESOLUTION_S:
            os.utime(entry)
    except OSError:
        pass  # a read-only cache still loads


def discard(entry: Path) -> None:
    """Remove a directory so that no reader ever sees it half-deleted: rename it aside first."""
    trash = entry.with_name(f"{TRASH_PREFIX}{entry.name}-{os.getpid()}-{time.monotonic_ns()}")
    try:
        os.rename(entry, trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)
