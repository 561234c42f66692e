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
from torchwheel.errors import NoGpuVisible, SettingsError
from torchwheel.runtime.jit_cache import ENTRY_FILE, JitCache, discard
from torchwheel.runtime.lock import exclusive_lock
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
    toolchain = find_toolchain(settings.cxx, settings.cuda_home, need_cuda=spec.device == "cuda")
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
        source = settings.arch_list_from
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
    jobs: int,
    on_wait: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> tuple[Path, bool]:
    """Return the entry's .so and whether this call compiled it (False: another process did)."""
    from torchwheel.compile.ninja_run import build_specs  # the ninja writer: only when compiling

    spec, key = job.spec, job.key
    cache_variable, lock_variable = settings.variable("CACHE_DIR"), settings.variable("LOCK_DIR")
    ensure_private_dir(cache.cache_dir, "cache dir", cache_variable)
    ensure_private_dir(cache.lock_dir, "lock dir", lock_variable)
    spec_dir = ensure_private_dir(cache.cache_dir / spec.name, "cache dir", cache_variable)
    with exclusive_lock(cache.lock_path(spec.name, key), on_wait=on_wait):
        found, damaged = cache.check(spec.name, key)
        if found:
            return found, False
        cache.remove_dead_partials(spec.name, key)
        if damaged:
            discard(spec_dir / key)
        work = cache.new_work_dir(spec.name, key)
        try:
            result = build_specs([spec], job.target, work / "build", jobs=jobs, progress=progress)
            staged = work / "entry"
            staged.mkdir()
            library = staged / f"{spec.name}.so"
            os.replace(result.libraries[spec.name], library)
            # Hashed after the move: a rename changes the file's ctime, which the memo keys on.
            digest = sha256_of(library)
            inputs = key_inputs(spec, job.target)
            (staged / "key.json").write_text(json.dumps(inputs, indent=2, sort_keys=True) + "\n")
            (staged / ENTRY_FILE).write_text(json.dumps({"sha256": digest, "file": library.name}) + "\n")
            cache.verifier.vouch(library, digest)  # so that the next load hashes nothing
            cache.publish(staged, spec.name, key)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return cache.entry_path(spec.name, key), True
