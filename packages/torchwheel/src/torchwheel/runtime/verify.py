"""sha256 verification of a `.so` before it is loaded, done once per file and remembered.

Hashing a large library on every load would blow the load-time budget (2 ms above a raw
`load_library`), so a successful check leaves a marker named after the file's identity:
device, inode, size, mtime and ctime (in ns), plus the digest it was checked against. Any write
to the file changes its ctime (which no user can set back), so a marker never vouches for
changed bytes. Markers live in a private per-user directory under the cache dir; anyone who
could write there could vouch for a file, so a directory that fails the privacy checks is
never trusted (and every load hashes again).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from torchwheel.errors import SettingsError
from torchwheel.runtime.manifest import sha256_of
from torchwheel.runtime.trust import ensure_private_dir, private_dir_problem

MEMO_DIR_NAME = ".verified"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class Verifier:
    """Checks files against their expected sha256, remembering successes in `memo_dir`.

    `record=False` reads markers but writes none (for `doctor`, which changes nothing). A plain
    class rather than a dataclass: it is made on every load, and imported on every start.
    """

    __slots__ = ("memo_dir", "record")

    def __init__(self, memo_dir: Path | None, record: bool = True) -> None:
        self.memo_dir = memo_dir
        self.record = record

    @classmethod
    def for_cache(cls, cache_dir: Path, *, record: bool = True) -> Verifier:
        return cls(cache_dir / MEMO_DIR_NAME, record)

    def problem(self, path: Path, sha256: str) -> str | None:
        """Why `path` must not be loaded (missing, unreadable, wrong bytes); None when it is fine."""
        if not _SHA256.fullmatch(sha256):
            return f"its recorded sha256 {sha256!r} is not a sha256 digest"
        try:
            info = os.stat(path)
        except OSError as error:
            return f"its file is missing ({error.strerror})"
        marker = self._marker(info, sha256)
        if marker is not None and marker.exists():
            return None
        try:
            actual = sha256_of(path)
        except OSError as error:
            return f"its file cannot be read ({error.strerror})"
        if actual != sha256:
            return f"fails its sha256 check ({info.st_size} bytes hash to {actual[:12]}..., expected {sha256[:12]}...)"
        if marker is not None and self.record:
            self._remember(marker)
        return None

    def vouch(self, path: Path, sha256: str) -> None:
        """Remember that `path` (just hashed by the caller) has this digest."""
        marker = self._marker(os.stat(path), sha256)
        if marker is not None and self.record:
            self._remember(marker)

    def _marker(self, info: os.stat_result, sha256: str) -> Path | None:
        if self.memo_dir is None:
            return None
        if private_dir_problem(self.memo_dir, "verification memo") is not None:
            return None
        name = "-".join(f"{n:x}" for n in (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns))
        return self.memo_dir / f"{name}-{sha256[:32]}"

    def _remember(self, marker: Path) -> None:
        # Best effort: a cache dir that cannot be written only costs a hash per load.
        try:
            ensure_private_dir(marker.parent, "verification memo")
            os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
        except (OSError, SettingsError):
            pass
