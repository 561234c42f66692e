"""The JIT cache: one immutable entry per cache key, built under a lock, published by rename.

Layout: `<cache_dir>/<spec>/<key>/<spec>.so` beside `entry.json` (the library's sha256) and
`key.json` (what the key was made of, for people reading the cache). A build works in its own
temporary directory next to the entry (`.build-<key>-<host>-<pid>-*`) and renames the finished
entry into place, so a reader sees either nothing or a whole entry, and a killed build leaves
only a temporary directory that nothing ever loads (and the next build of that key, or
`torchwheel cache prune`, removes). Every entry is sha256-checked before it is loaded (once per
file: verify.py); a damaged one is moved aside and rebuilt.

Two hosts sharing a cache dir hold separate locks (locks stay on local disk), so both may build
one key at once: each in its own temporary directory; the second rename finds the first entry
in place and uses it.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .arch import CudaArch
from .build import Progress, build_specs
from .keys import key_inputs
from .lock import ensure_private_dir, exclusive_lock
from .manifest import sha256_of
from .spec import JitSpec
from .target import TorchTarget
from .toolchain import Toolchain
from .verify import Verifier

ENTRY_FILE = "entry.json"
BUILD_PREFIX = ".build-"
TRASH_PREFIX = ".trash-"
USE_RESOLUTION_S = 3600  # an entry's mtime says when it was last used, to the hour
PARTIAL_MAX_AGE_S = 24 * 3600  # another host's partial build is taken as dead after a day


@dataclass(frozen=True)
class JitJob:
    """Everything a JIT build of one spec needs, resolved, and its cache key."""

    spec: JitSpec
    key: str
    target: TorchTarget
    toolchain: Toolchain
    archs: tuple[CudaArch, ...]


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
        if not (key and host and pid.isdigit()):
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
    def __init__(self, cache_dir: Path, lock_dir: Path, verifier: Verifier | None = None) -> None:
        self.cache_dir = cache_dir
        self.lock_dir = lock_dir
        self.verifier = verifier or Verifier.for_cache(cache_dir)

    def entry_path(self, name: str, key: str) -> Path:
        return self.cache_dir / name / key / f"{name}.so"

    def lock_path(self, name: str, key: str) -> Path:
        return self.lock_dir / f"{name}-{key}.lock"

    def check(self, name: str, key: str) -> tuple[Path | None, str | None]:
        """(the entry's verified .so, None), (None, None) when there is no entry, or (None, why
        the entry there must not be loaded)."""
        entry = self.cache_dir / name / key
        library = entry / f"{name}.so"
        try:
            recorded = json.loads((entry / ENTRY_FILE).read_text())
        except FileNotFoundError:
            if not entry.exists():
                return None, None
            return None, f"cached {library} has no {ENTRY_FILE} (made by an older torchwheel)"
        except (OSError, ValueError) as error:
            return None, f"cached {library} has an unreadable {ENTRY_FILE} ({error.__class__.__name__})"
        digest = recorded.get("sha256") if isinstance(recorded, dict) else None
        if problem := self.verifier.problem(library, str(digest)):
            return None, f"cached {library}: {problem}"
        return library, None

    def lookup(self, name: str, key: str) -> Path | None:
        return self.check(name, key)[0]

    def build(
        self,
        spec: JitSpec,
        key: str,
        target: TorchTarget,
        toolchain: Toolchain,
        archs: tuple[CudaArch, ...],
        *,
        jobs: int,
        on_wait: Callable[[str], None] | None = None,
        progress: Progress | None = None,
        variables: tuple[str | None, str | None] = (None, None),
    ) -> tuple[Path, bool]:
        """Return the entry's .so and whether this call compiled it (False: another process did).

        `variables` name the settings of the cache and lock dirs, for error messages.
        """
        ensure_private_dir(self.cache_dir, "cache dir", variables[0])
        ensure_private_dir(self.lock_dir, "lock dir", variables[1])
        spec_dir = ensure_private_dir(self.cache_dir / spec.name, "cache dir", variables[0])
        with exclusive_lock(self.lock_path(spec.name, key), on_wait=on_wait):
            found, damaged = self.check(spec.name, key)
            if found:
                return found, False
            self._remove_dead_partials(spec_dir, key)
            if damaged:
                discard(spec_dir / key)
            work = Path(
                tempfile.mkdtemp(prefix=f"{BUILD_PREFIX}{key}-{socket.gethostname()}-{os.getpid()}-", dir=spec_dir)
            )
            try:
                result = build_specs([spec], target, toolchain, archs, work / "build", jobs=jobs, progress=progress)
                staged = work / "entry"
                staged.mkdir()
                library = staged / f"{spec.name}.so"
                os.replace(result.libraries[spec.name], library)
                # Hashed after the move: a rename changes the file's ctime, which the memo keys on.
                digest = sha256_of(library)
                inputs = key_inputs(spec, target, toolchain, archs)
                (staged / "key.json").write_text(json.dumps(inputs, indent=2, sort_keys=True) + "\n")
                (staged / ENTRY_FILE).write_text(json.dumps({"sha256": digest, "file": library.name}) + "\n")
                self.verifier.vouch(library, digest)  # so that the next load hashes nothing
                self._publish(staged, spec_dir / key, spec.name)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        return self.entry_path(spec.name, key), True

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

    def _remove_dead_partials(self, spec_dir: Path, key: str) -> None:
        for path in spec_dir.glob(f"{BUILD_PREFIX}{key}-*"):
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
