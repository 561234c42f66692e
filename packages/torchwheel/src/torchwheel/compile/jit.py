"""The JIT path's compile half: what a JIT build of a spec would be (its target and cache key),
and building it into the cache under the key's lock.

The loader imports this module only when no prebuilt binary fits. A cache hit needs the key,
hence the toolchain's identity and the flags, but never the ninja writer, which `build_entry`
imports only when it really compiles.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from torchwheel.arch import CudaArch, coverage, parse_arch_list
from torchwheel.compile.build_target import BuildTarget
from torchwheel.compile.keys import cache_key, key_inputs
from torchwheel.compile.toolchain import Toolchain, find_toolchain
from torchwheel.errors import BuildError, EnvironmentRefused, NoGpuVisible, SettingsError
from torchwheel.runtime.jit_cache import ENTRY_FILE, JitCache, discard, entry_record, lock_name
from torchwheel.runtime.lock import LockWait, exclusive_lock, usable_lock_dir
from torchwheel.runtime.manifest import sha256_of
from torchwheel.runtime.torch_install import TorchInstall
from torchwheel.runtime.trust import ensure_private_dir
from torchwheel.settings import Settings
from torchwheel.spec import JitSpec

if TYPE_CHECKING:
    from torchwheel.compile.ninja_run import Progress


@dataclass(frozen=True)
class JitJob:
    """A JIT build of one spec for the running torch, and its cache key."""

    spec: JitSpec
    target: BuildTarget
    key: str


def plan_job(spec: JitSpec, settings: Settings, gpu_capabilities: tuple[tuple[int, int], ...], project: str) -> JitJob:
    toolchain = find_toolchain(
        settings.cxx, settings.cuda_home, need_cuda=spec.device == "cuda", launcher=settings.compiler_launcher
    )
    archs = jit_archs(settings, toolchain, gpu_capabilities, project) if spec.device == "cuda" else ()
    target = BuildTarget.make(TorchInstall.running(), toolchain, archs)
    return JitJob(spec, target, cache_key(spec, target))


def jit_archs(
    settings: Settings, toolchain: Toolchain, gpu_capabilities: tuple[tuple[int, int], ...], project: str
) -> tuple[CudaArch, ...]:
    """The arch list of a JIT build: the user's, checked against the toolkit and the GPUs, else
    native code for each visible GPU."""
    offered = toolchain.cuda_archs()
    if settings.arch_list:
        source = settings.origin("arch_list")
        archs = parse_arch_list(settings.arch_list, source)
        if offered is not None:
            offered.check(archs, source)
        for major, minor in gpu_capabilities:
            if coverage(archs, major, minor) is None:
                raise SettingsError(
                    f"{source}={settings.arch_list!r} has no code for this GPU (sm_{major}{minor}); "
                    f"add {major}.{minor} to it or unset it"
                )
        return archs
    if not gpu_capabilities:
        raise NoGpuVisible(
            f"{project}: no GPU is visible to pick CUDA archs for; set "
            f"{settings.variable('CUDA_ARCH_LIST')} or TORCH_CUDA_ARCH_LIST (e.g. '9.0')"
        )
    if offered is None:
        return parse_arch_list(";".join(f"{major}.{minor}" for major, minor in gpu_capabilities))
    return tuple(sorted({offered.native_arch(major, minor) for major, minor in gpu_capabilities}))


def build_entry(
    job: JitJob,
    cache: JitCache,
    settings: Settings,
    *,
    say: Callable[[str], None],
    progress: Progress | None = None,
) -> tuple[Path, bool]:
    """Return the entry's .so and whether this call compiled it (False: another process did).

    A failed build keeps its directory (named in the error, with the compiler's first errors);
    the next build of the same key, or `torchwheel cache prune`, removes it.
    """
    try:
        return _build_entry(job, cache, settings, say, progress)
    except OSError as error:  # a read-only or full cache dir, a path too long: not a bug of ours
        raise EnvironmentRefused(
            f"{job.spec.name}: the JIT cache cannot be written ({error.strerror}: {error.filename}); set "
            f"{settings.variable('CACHE_DIR')} to a writable directory of yours, or install a matching prebuilt package"
        ) from None


def _build_entry(
    job: JitJob, cache: JitCache, settings: Settings, say: Callable[[str], None], progress: Progress | None
) -> tuple[Path, bool]:
    from torchwheel.compile.ninja_run import BuildWatch, build_specs  # the ninja writer: only when compiling

    spec, key = job.spec, job.key
    cache_variable = settings.variable("CACHE_DIR")
    ensure_private_dir(cache.cache_dir, "cache dir", cache_variable)
    lock_dir = usable_lock_dir(settings.lock_dirs, settings.origin("lock_dir"), say)
    spec_dir = ensure_private_dir(cache.cache_dir / spec.name, "cache dir", cache_variable)
    wait = LockWait(say, settings.lock_timeout_s, settings.variable("LOCK_TIMEOUT"))
    watch = BuildWatch(settings.build_timeout_s, say, timeout_variable=settings.variable("BUILD_TIMEOUT"))
    with exclusive_lock(lock_dir / lock_name(spec.name, key), wait):
        found, damaged = cache.check(spec.name, key)
        if found:
            return found, False
        cache.remove_dead_partials(spec.name, key)
        if damaged:
            discard(spec_dir / key)
        work = cache.new_work_dir(spec.name, key)
        try:
            result = build_specs([spec], job.target, work / "build", jobs=settings.jobs, progress=progress, watch=watch)
        except BuildError as error:
            raise BuildError(f"{spec.name}: {error}", log=error.log) from None  # `work` is kept for the user
        try:
            staged = work / "entry"
            staged.mkdir()
            library = staged / f"{spec.name}.so"
            os.replace(result.libraries[spec.name], library)
            # Hashed after the move: a rename changes the file's ctime, which the memo keys on.
            digest = sha256_of(library)
            inputs = key_inputs(spec, job.target)
            (staged / "key.json").write_text(json.dumps(inputs, indent=2, sort_keys=True) + "\n")
            (staged / ENTRY_FILE).write_text(json.dumps(entry_record(digest, library.name)) + "\n")
            cache.verifier.vouch(library, digest)  # so that the next load hashes nothing
            cache.publish(staged, spec.name, key)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return cache.entry_path(spec.name, key), True
