"""The JIT cache: one immutable entry per cache key, built under a lock, published by rename.

Layout: `<cache_dir>/<spec>/<key>/<spec>.so` beside `key.json` (what the key was made of, for
people reading the cache). A build works in its own temporary directory next to the entry and
renames the finished entry into place, so a reader sees either nothing or a whole entry, and a
killed build leaves only a temporary directory that nothing ever loads.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from .arch import CudaArch
from .build import Progress, build_specs
from .keys import key_inputs
from .lock import ensure_private_dir, exclusive_lock
from .spec import JitSpec
from .target import TorchTarget
from .toolchain import Toolchain


class JitCache:
    def __init__(self, cache_dir: Path, lock_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.lock_dir = lock_dir

    def entry_path(self, name: str, key: str) -> Path:
        return self.cache_dir / name / key / f"{name}.so"

    def lookup(self, name: str, key: str) -> Path | None:
        path = self.entry_path(name, key)
        return path if path.is_file() else None

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
    ) -> tuple[Path, bool]:
        """Return the entry's .so and whether this call compiled it (False: another process did)."""
        ensure_private_dir(self.cache_dir, "cache dir")
        ensure_private_dir(self.lock_dir, "lock dir")
        spec_dir = self.cache_dir / spec.name
        spec_dir.mkdir(mode=0o700, exist_ok=True)
        with exclusive_lock(self.lock_dir / f"{spec.name}-{key}.lock", on_wait=on_wait):
            if found := self.lookup(spec.name, key):
                return found, False
            work = Path(tempfile.mkdtemp(prefix=f".build-{key}-", dir=spec_dir))
            try:
                result = build_specs(
                    [spec], target, toolchain, archs, work / "build", jobs=jobs, progress=progress
                )
                staged = work / "entry"
                staged.mkdir()
                os.replace(result.libraries[spec.name], staged / f"{spec.name}.so")
                inputs = key_inputs(spec, target, toolchain, archs)
                (staged / "key.json").write_text(json.dumps(inputs, indent=2, sort_keys=True) + "\n")
                os.rename(staged, spec_dir / key)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        return self.entry_path(spec.name, key), True
