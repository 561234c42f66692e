"""The run-time loader: a prebuilt binary when one matches, else a JIT build, then `dlopen`.

This module is what a kernel library calls on its first op. It never imports the release tier
(audit, wheels, matrix), and it reaches the compile tier (`torchwheel.compile.jit`) only when
no prebuilt binary fits. Deciding (`plan`) is kept apart from doing (`load`), so that
`torchwheel doctor` can say what each spec would do without loading or building anything.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from torchwheel.arch import format_arch_list
from torchwheel.errors import LoadError, ManifestError, SettingsError, SpecError
from torchwheel.project import Project
from torchwheel.runtime.manifest import Manifest, read_manifest
from torchwheel.runtime.prebuilt_dirs import prebuilt_dirs
from torchwheel.runtime.selection import Candidate, RuntimeEnv, candidates_for
from torchwheel.runtime.trust import private_dir_problem, trusted_dir_problem, untrusted_prebuilt
from torchwheel.runtime.verify import Verifier
from torchwheel.settings import Settings
from torchwheel.spec import Device, JitSpec, check_unique_names

if TYPE_CHECKING:
    from torchwheel.compile.jit import JitJob
    from torchwheel.runtime.jit_cache import JitCache

logger = logging.getLogger("torchwheel")

NO_PREBUILT = "no prebuilt binary for it is installed"

# Where a loaded spec came from: a prebuilt dir, a JIT build made earlier, or one made now.
Origin = Literal["prebuilt", "jit-cache", "jit-build"]


@dataclass(frozen=True)
class LoadedSpec:
    name: str
    path: Path
    origin: Origin
    reason: str | None  # why not prebuilt, for the JIT origins
    seconds: float


@dataclass(frozen=True)
class Plan:
    """What loading a spec would do, decided without compiling or loading anything."""

    name: str
    origin: Origin
    path: Path  # the .so to load; for "jit-build", where the build will put it
    reason: str | None  # why not prebuilt (None for "prebuilt")
    candidates: tuple[Candidate, ...] = ()
    problems: tuple[str, ...] = ()  # manifests that could not be read
    job: JitJob | None = field(default=None, repr=False, compare=False)


class _EntryVanished(Exception):
    """A JIT cache entry that was there when checked and gone at dlopen."""


class Loader:
    """Loads a project's specs into this process, each at most once."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._loaded: dict[str, LoadedSpec] = {}
        self._mutex = threading.Lock()

    @cached_property
    def settings(self) -> Settings:
        return self.project.settings()

    @cached_property
    def specs(self) -> dict[str, JitSpec]:
        specs = list(self.project.make_specs())
        check_unique_names(specs)
        return {s.name: s for s in specs}

    @cached_property
    def _manifests(self) -> tuple[list[Manifest], list[str]]:
        manifests, problems = [], []
        for directory in prebuilt_dirs(self.project, self.settings.prebuilt_path):
            if problem := trusted_dir_problem(directory):
                problems.append(untrusted_prebuilt(directory, problem))
                continue
            try:
                manifest = read_manifest(directory)
            except ManifestError as error:
                problems.append(str(error))
                continue
            if manifest.project != self.project.name:  # a name that only starts like ours
                problems.append(
                    f"{directory} holds binaries of project {manifest.project!r}, not {self.project.name!r}"
                )
                continue
            manifests.append(manifest)
        return manifests, problems

    def loaded(self) -> dict[str, LoadedSpec]:
        return dict(self._loaded)

    def load(self, name: str) -> LoadedSpec:
        with self._mutex:
            if name in self._loaded:
                return self._loaded[name]
            started = time.monotonic()
            try:
                plan, path, origin = self._load_once(name)
            except _EntryVanished:
                # `torchwheel cache clear` (or prune) removed the entry between its check and the
                # dlopen, which holds no lock on a hit: plan again, once; it builds or finds anew.
                plan, path, origin = self._load_once(name)
            loaded = LoadedSpec(name, path, origin, plan.reason, time.monotonic() - started)
            self._loaded[name] = loaded
            return loaded

    def _load_once(self, name: str) -> tuple[Plan, Path, Origin]:
        plan = self.plan(name)
        path, origin = plan.path, plan.origin
        if plan.origin == "jit-build":
            assert plan.job is not None
            path, origin = self._build(plan.job, plan.reason or "")
        elif plan.origin == "jit-cache":
            from torchwheel.runtime.jit_cache import mark_used

            mark_used(plan.path)
        import torch

        try:
            torch.ops.load_library(str(path))  # type: ignore[no-untyped-call]  # torch leaves it untyped
        except OSError:
            if origin != "prebuilt" and not path.exists():
                raise _EntryVanished from None
            raise
        return plan, path, origin

    def explain(self, name: str, device: Device, *, record: bool = True) -> tuple[list[Candidate], list[str]]:
        """Every prebuilt candidate for a spec with its verdict, and unreadable manifests.

        Candidates that match are sha256-checked (once per file, remembered unless `record` is
        off) until one passes.
        """
        runtime = RuntimeEnv.current(with_gpus=device == "cuda")
        manifests, problems = self._manifests
        settings = self.settings
        found = candidates_for(
            name,
            manifests,
            runtime,
            verifier=Verifier.for_cache(settings.cache_dir, record=record),
            accept_ptx=settings.accept_ptx,
            accept_ptx_variable=settings.variable("ACCEPT_PTX"),
        )
        return found, problems

    def plan(self, name: str, *, record: bool = True) -> Plan:
        """Prebuilt, cached JIT build or new JIT build, and why; raises when none is possible."""
        # The prebuilt path needs only the manifests: the specs (which check their sources on
        # disk) are made only when a JIT build is needed.
        settings = self.settings
        candidates: list[Candidate] = []
        problems: list[str] = []
        if settings.force_jit:
            reason = f"{settings.variable('FORCE_JIT')} is set"
        else:
            candidates, problems = self.explain(name, self._device(name), record=record)
            for candidate in candidates:
                if candidate.rejection is None:
                    path = candidate.manifest.path_of(candidate.entry)
                    return Plan(name, "prebuilt", path, None, tuple(candidates), tuple(problems))
            reason = "prebuilt " + "; ".join(c.describe() for c in candidates) if candidates else NO_PREBUILT
            if problems:
                reason += "; " + "; ".join(problems)
        spec = self._spec(name)
        if settings.disable_jit:
            raise LoadError(
                f"{self.project.name}: cannot load {name}: {reason}; JIT is disabled by "
                f"{settings.variable('DISABLE_JIT')}, so install a matching prebuilt package or unset it"
            )
        job = self._jit_job(spec)
        cache = self._cache(record)
        found, damaged = cache.check(spec.name, job.key)
        if found is not None:
            return Plan(name, "jit-cache", found, reason, tuple(candidates), tuple(problems), job)
        if damaged:
            reason += f"; {damaged}, so it is rebuilt"
        path = cache.entry_path(spec.name, job.key)
        return Plan(name, "jit-build", path, reason, tuple(candidates), tuple(problems), job)

    def _device(self, name: str) -> Device:
        """The spec's device, from the manifests where they agree (no spec is made for it)."""
        manifests, _ = self._manifests
        devices = {m.entries[name].device for m in manifests if name in m.entries}
        if len(devices) == 1:
            device = devices.pop()
            if device in ("cpu", "cuda"):
                return "cuda" if device == "cuda" else "cpu"
        return self._spec(name).device

    def _spec(self, name: str) -> JitSpec:
        spec = self.specs.get(name)
        if spec is None:
            known = ", ".join(sorted(self.specs))
            raise SpecError(f"{self.project.name} has no spec {name!r}; use one of: {known}")
        return spec

    def _cache(self, record: bool = True) -> JitCache:
        # Imported here, not above: a prebuilt load needs none of the cache's machinery.
        from torchwheel.runtime.jit_cache import JitCache

        settings = self.settings
        # Never load a .so from a directory that another user could have written it into.
        if problem := private_dir_problem(settings.cache_dir, "cache dir", settings.variable("CACHE_DIR")):
            raise SettingsError(problem)
        verifier = Verifier.for_cache(settings.cache_dir, record=record)
        return JitCache(settings.cache_dir, verifier)

    def _jit_job(self, spec: JitSpec) -> JitJob:
        from torchwheel.compile.jit import plan_job  # the compile tier: only on the JIT path

        gpus = RuntimeEnv.current(with_gpus=True).gpu_capabilities if spec.device == "cuda" else ()
        return plan_job(spec, self.settings, gpus, self.project.name)

    def _build(self, job: JitJob, reason: str) -> tuple[Path, Origin]:
        from torchwheel.compile.jit import build_entry

        settings = self.settings
        _ensure_log_handler(settings.verbose)
        project, name = self.project.name, job.spec.name
        archs = job.target.archs_for(job.spec)
        what = f" for {format_arch_list(archs)}" if archs else ""
        logger.info("%s: compiling %s%s by JIT (%s)", project, name, what, reason)
        started = time.monotonic()
        path, compiled = build_entry(
            job,
            self._cache(),
            settings,
            say=lambda message: logger.info("%s: %s", project, message),
            progress=lambda done, total, what: logger.debug("%s: [%d/%d] %s", project, done, total, what),
        )
        seconds = time.monotonic() - started
        if not compiled:
            logger.info("%s: %s was built by another process meanwhile (waited %.1f s)", project, name, seconds)
            return path, "jit-cache"
        logger.info("%s: JIT-built %s in %.1f s (%s)", project, name, seconds, reason)
        return path, "jit-build"


def _ensure_log_handler(verbose: bool) -> None:
    """JIT builds take seconds to minutes, so say so even where logging is not configured."""
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[torchwheel] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
