"""Run-time settings, read from the environment in one place.

Each setting is looked up under the project's prefix first (`MINFER_CACHE_DIR`), then under
`TORCHWHEEL_` (`TORCHWHEEL_CACHE_DIR`), so one variable can steer every project at once and a
project can still be steered alone. Toolchain variables keep their usual names (`MAX_JOBS`,
`CUDA_HOME`, `CXX`, `TORCH_CUDA_ARCH_LIST`), as torch's cpp_extension users expect.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from torchwheel.errors import SettingsError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Settings:
    prefix: str
    cache_dir: Path
    lock_dir: Path
    prebuilt_path: tuple[Path, ...]  # <PREFIX>_AOT_PATH: prebuilt dirs searched first
    disable_jit: bool
    force_jit: bool
    accept_ptx: bool  # load a prebuilt binary whose only code for the GPU is PTX
    arch_list: str | None
    arch_list_from: str | None  # the variable the arch list came from, for error messages
    max_jobs: int | None
    cuda_home: Path | None
    cxx: str
    verbose: bool

    @classmethod
    def from_env(cls, project: str, prefix: str, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        reader = _Reader(prefix, env)
        cache_dir = reader.path("CACHE_DIR") or _default_cache_root(env) / project
        disable_jit = reader.boolean("DISABLE_JIT")
        force_jit = reader.boolean("FORCE_JIT")
        if disable_jit and force_jit:
            raise SettingsError(
                f"{reader.name('DISABLE_JIT')} and {reader.name('FORCE_JIT')} are both set; unset one of them"
            )
        arch_from: str | None = reader.name("CUDA_ARCH_LIST")
        if not reader.text("CUDA_ARCH_LIST"):
            arch_from = "TORCH_CUDA_ARCH_LIST" if env.get("TORCH_CUDA_ARCH_LIST") else None
        return cls(
            prefix=prefix,
            cache_dir=cache_dir,
            lock_dir=reader.path("LOCK_DIR") or _default_lock_dir(env, cache_dir),
            prebuilt_path=reader.path_list("AOT_PATH"),
            disable_jit=disable_jit,
            force_jit=force_jit,
            accept_ptx=reader.boolean("ACCEPT_PTX"),
            arch_list=env.get(arch_from) if arch_from else None,
            arch_list_from=arch_from,
            max_jobs=_positive_int(env, "MAX_JOBS"),
            cuda_home=_optional_path(env.get("CUDA_HOME") or env.get("CUDA_PATH")),
            cxx=env.get("CXX") or "c++",
            verbose=reader.boolean("VERBOSE"),
        )

    @property
    def jobs(self) -> int:
        """Parallel build jobs: MAX_JOBS, else every core this process may run on."""
        if self.max_jobs:
            return self.max_jobs
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            return os.cpu_count() or 1

    def variable(self, key: str) -> str:
        """The variable a user sets for `key` (`MINFER_FORCE_JIT`), for messages."""
        return f"{self.prefix}_{key}"


class _Reader:
    def __init__(self, prefix: str, env: Mapping[str, str]) -> None:
        self.prefix = prefix
        self.env = env

    def name(self, key: str) -> str:
        own = f"{self.prefix}_{key}"
        return own if own in self.env or f"TORCHWHEEL_{key}" not in self.env else f"TORCHWHEEL_{key}"

    def text(self, key: str) -> str | None:
        return self.env.get(self.name(key))

    def path(self, key: str) -> Path | None:
        value = self.text(key)
        if value is not None and not value.strip():
            raise SettingsError(f"{self.name(key)} is set but empty; give a directory or unset it")
        return _optional_path(value)

    def path_list(self, key: str) -> tuple[Path, ...]:
        value = self.text(key) or ""
        return tuple(Path(p).expanduser().absolute() for p in value.split(os.pathsep) if p)

    def boolean(self, key: str) -> bool:
        value = self.text(key)
        if value is None:
            return False
        if value.strip().lower() in _TRUE:
            return True
        if value.strip().lower() in _FALSE:
            return False
        raise SettingsError(f"{self.name(key)}={value!r} is not a boolean; use 1 or 0")


def _optional_path(value: str | None) -> Path | None:
    return Path(value).expanduser().absolute() if value else None


def _positive_int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise SettingsError(f"{name}={value!r} is not a positive whole number; use e.g. {name}=4")
    return number


def _default_cache_root(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base).absolute() / "torchwheel"


def _default_lock_dir(env: Mapping[str, str], cache_dir: Path) -> Path:
    # Locks belong on a local file system: flock over NFS is unreliable (FlashInfer #993).
    if os.path.isdir("/dev/shm"):
        return Path(f"/dev/shm/torchwheel-{os.getuid()}")
    if runtime := env.get("XDG_RUNTIME_DIR"):
        return Path(runtime) / "torchwheel"
    return cache_dir / "locks"
