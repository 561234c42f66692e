"""The run-time loader: a prebuilt binary when one matches, else a JIT build, then `dlopen`.

This module is what a kernel library calls on its first op. It never imports the packaging
tools (audit, wheels, conda, matrix), and it touches the compilers only on a cache miss.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from .arch import CudaArch, parse_arch_list
from .errors import LoadError, ManifestError, SpecError
from .manifest import Manifest, read_manifest
from .project import Project
from .selection import Candidate, RuntimeEnv, candidates_for
from .settings import Settings
from .spec import JitSpec, check_unique_names

logger = logging.getLogger("torchwheel")


@dataclass(frozen=True)
class LoadedSpec:
    name: str
    path: Path
    origin: str  # "prebuilt", "jit-cache" (built earlier) or "jit-build" (built by this process)
    reason: str | None  # why not prebuilt, for the JIT origins
    seconds: float


class Loader:
    """Loads a project's specs into this process, each at most once."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._loaded: dict[str, LoadedSpec] = {}
        self._mutex = threading.Lock()

    @cached_property
    def settings(self) -> Settings:
        return Settings.from_env(self.project.name, self.project.env_prefix)

    @cached_property
    def specs(self) -> dict[str, JitSpec]:
        specs = list(self.project.make_specs())
        check_unique_names(specs)
        return {s.name: s for s in specs}

    @cached_property
    def _manifests(self) -> tuple[list[Manifest], list[str]]:
        manifests, problems = [], []
        for directory in self.project.aot_dirs(self.settings.aot_path):
            try:
                manifests.append(read_manifest(directory))
            except ManifestError as error:
                problems.append(str(error))
        return manifests, problems

    def loaded(self) -> dict[str, LoadedSpec]:
        return dict(self._loaded)

    def load(self, name: str) -> LoadedSpec:
        with self._mutex:
            if name in self._loaded:
                return self._loaded[name]
            started = time.monotonic()
            path, origin, reason = self._resolve(name)
            import torch

            torch.ops.load_library(str(path))
            loaded = LoadedSpec(name, path, origin, reason, time.monotonic() - started)
            self._loaded[name] = loaded
            return loaded

    def explain(self, name: str, device: str) -> tuple[list[Candidate], list[str]]:
        """Every prebuilt candidate for a spec with its verdict, and unreadable manifests."""
        runtime = RuntimeEnv.current(with_gpus=device == "cuda")
        manifests, problems = self._manifests
        return candidates_for(name, manifests, runtime), problems

    def _spec(self, name: str) -> JitSpec:
        spec = self.specs.get(name)
        if spec is None:
            known = ", ".join(sorted(self.specs))
            raise SpecError(f"{self.project.name} has no spec {name!r}; use one of: {known}")
        return spec

    def _resolve(self, name: str) -> tuple[Path, str, str | None]:
        # The prebuilt path needs only the manifests: the specs (which check their sources on
        # disk) are made only when a JIT build is needed.
        settings = self.settings
        prefix = settings.prefix
        if settings.force_jit:
            reason = f"{prefix}_FORCE_JIT is set"
        else:
            manifests, problems = self._manifests
            entry_devices = {m.entries[name].device for m in manifests if name in m.entries}
            device = entry_devices.pop() if len(entry_devices) == 1 else self._spec(name).device
            candidates, problems = self.explain(name, device)
            for candidate in candidates:
                if candidate.rejection is None:
                    return candidate.manifest.path_of(candidate.entry), "prebuilt", None
            if candidates:
                reason = "prebuilt " + "; ".join(c.describe() for c in candidates)
            else:
                reason = "no prebuilt binary for it is installed"
            if problems:
                reason += "; " + "; ".join(problems)
        spec = self._spec(name)
        if settings.disable_jit:
            raise LoadError(
                f"{self.project.name}: cannot load {name}: {reason}; JIT is disabled by "
                f"{prefix}_DISABLE_JIT, so install a matching prebuilt package or unset it"
            )
        return self._jit(spec, reason)

    def _jit(self, spec: JitSpec, reason: str) -> tuple[Path, str, str]:
        from .build import default_jobs
        from .jit_cache import JitCache
        from .keys import cache_key
        from .target import TorchTarget
        from .toolchain import find_toolchain

        settings = self.settings
        target = TorchTarget.running()
        toolchain = find_toolchain(settings.cxx, settings.cuda_home, need_cuda=spec.device == "cuda")
        archs = self._jit_archs() if spec.device == "cuda" else ()
        key = cache_key(spec, target, toolchain, archs)
        cache = JitCache(settings.cache_dir, settings.lock_dir)
        if found := cache.lookup(spec.name, key):
            return found, "jit-cache", reason
        _ensure_log_handler(settings.verbose)
        project = self.project.name
        logger.info("%s: compiling %s by JIT (%s)", project, spec.name, reason)
        started = time.monotonic()
        path, compiled = cache.build(
            spec,
            key,
            target,
            toolchain,
            archs,
            jobs=default_jobs(settings.max_jobs),
            on_wait=lambda message: logger.info("%s: %s", project, message),
            progress=lambda done, total, what: logger.debug("%s: [%d/%d] %s", project, done, total, what),
        )
        seconds = time.monotonic() - started
        if not compiled:
            logger.info(
                "%s: %s was built by another process meanwhile (waited %.1f s)", project, spec.name, seconds
            )
            return path, "jit-cache", reason
        logger.info("%s: JIT-built %s in %.1f s (%s)", project, spec.name, seconds, reason)
        return path, "jit-build", reason

    def _jit_archs(self) -> tuple[CudaArch, ...]:
        if self.settings.arch_list:
            return parse_arch_list(self.settings.arch_list)
        capabilities = RuntimeEnv.current(with_gpus=True).gpu_capabilities
        if not capabilities:
            raise LoadError(
                f"{self.project.name}: no GPU is visible to pick CUDA archs for; set "
                f"{self.settings.prefix}_CUDA_ARCH_LIST or TORCH_CUDA_ARCH_LIST (e.g. '9.0')"
            )
        return parse_arch_list(";".join(f"{major}.{minor}" for major, minor in capabilities))


def _ensure_log_handler(verbose: bool) -> None:
    """JIT builds take seconds to minutes, so say so even where logging is not configured."""
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[torchwheel] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
