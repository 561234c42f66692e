"""`torchwheel doctor` (and `python -m minfer doctor`): what this machine has, and what loading
each spec would do here (prebuilt, JIT cache or JIT build) and why, without loading, building or
writing anything.

Problems (an unreadable manifest, a damaged binary, a spec that cannot load, a refused cache
dir) are printed one line each on stderr, and make the exit status 1.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from torchwheel.arch import parse_arch_list
from torchwheel.errors import ExitCode, ManifestError, NoGpuVisible, SettingsError, TorchwheelError
from torchwheel.project import Project, default_projects, load_project
from torchwheel.runtime.gpus import Gpu, driver_cuda_version, visible_gpus
from torchwheel.runtime.loader import Loader, Origin
from torchwheel.runtime.manifest import read_manifest
from torchwheel.runtime.prebuilt_dirs import prebuilt_dirs
from torchwheel.runtime.torch_install import TorchInstall
from torchwheel.runtime.trust import private_dir_problem, trusted_dir_problem, untrusted_prebuilt
from torchwheel.settings import Settings

Verdict = Origin | Literal["unavailable", "error"]
DirState = Literal["ok", "not created yet", "refused"]
JsonObject = dict[str, object]


@dataclass(frozen=True)
class Environment:
    torchwheel: str
    python: str
    platform: str
    torch: TorchInstall | None
    torch_problem: str | None
    gpus: tuple[Gpu, ...]
    driver_cuda: str | None

    def to_json(self) -> JsonObject:
        torch = None
        if self.torch is not None:
            torch = {
                "version": self.torch.version,
                "path": str(self.torch.prefix),
                "cxx11_abi": self.torch.cxx11_abi,
                "cuda": self.torch.cuda_version,
            }
        data: JsonObject = {"torchwheel": self.torchwheel, "python": self.python, "platform": self.platform}
        data["torch"] = torch
        if self.torch_problem:
            data["torch_problem"] = self.torch_problem
        data["gpus"] = [
            {"index": g.index, "name": g.name, "capability": f"{g.capability[0]}.{g.capability[1]}"} for g in self.gpus
        ]
        data["driver_cuda"] = self.driver_cuda
        return data


@dataclass(frozen=True)
class ToolFacts:
    path: str | None = None
    version: str | None = None
    cuda_version: str | None = None  # nvcc only
    archs: str | None = None  # nvcc only: what it offers
    problem: str | None = None

    def to_json(self) -> JsonObject:
        if self.problem:
            return {"problem": self.problem}
        if self.cuda_version is not None:
            return {"path": self.path, "cuda_version": self.cuda_version, "archs": self.archs}
        return {"path": self.path, "version": self.version}


@dataclass(frozen=True)
class DirFacts:
    path: Path
    state: DirState
    problem: str | None

    def to_json(self) -> JsonObject:
        return {"path": str(self.path), "state": self.state, "problem": self.problem}


@dataclass(frozen=True)
class PrebuiltDirFacts:
    path: Path
    problem: str | None = None
    project: str | None = None
    specs: int = 0
    torch: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    cuda: tuple[str, ...] = ()
    archs: tuple[str, ...] = ()

    def to_json(self) -> JsonObject:
        if self.problem:
            return {"path": str(self.path), "problem": self.problem}
        return {
            "path": str(self.path),
            "project": self.project,
            "specs": self.specs,
            "torch": list(self.torch),
            "devices": list(self.devices),
            "cuda": list(self.cuda),
            "archs": list(self.archs),
        }


@dataclass(frozen=True)
class SpecVerdict:
    name: str
    device: str
    origin: Verdict
    reason: str | None
    path: Path | None = None
    archs: str | None = None  # for "jit-build": what it would build for
    candidates: tuple[tuple[Path, str | None], ...] = ()  # (prebuilt file, its rejection)

    def to_json(self) -> JsonObject:
        data: JsonObject = {"name": self.name, "device": self.device, "origin": self.origin, "reason": self.reason}
        if self.origin in ("unavailable", "error"):
            return data
        data.update(path=str(self.path) if self.path else None, archs=self.archs)
        data["candidates"] = [{"path": str(p), "rejection": r} for p, r in self.candidates]
        return data


@dataclass(frozen=True)
class ProjectFacts:
    name: str
    prefix: str
    cache_dir: DirFacts
    lock_dir: DirFacts
    settings: Settings
    prebuilt: tuple[PrebuiltDirFacts, ...]
    specs: tuple[SpecVerdict, ...]

    def to_json(self) -> JsonObject:
        s = self.settings
        return {
            "name": self.name,
            "prefix": self.prefix,
            "cache_dir": self.cache_dir.to_json(),
            "lock_dir": self.lock_dir.to_json(),
            "settings": {
                "aot_path": [str(p) for p in s.prebuilt_path],
                "disable_jit": s.disable_jit,
                "force_jit": s.force_jit,
                "accept_ptx": s.accept_ptx,
                "cuda_arch_list": s.arch_list,
                "cuda_arch_list_from": s.origin("arch_list"),
                "max_jobs": s.max_jobs,
                "cuda_home": str(s.cuda_home) if s.cuda_home else None,
                "cxx": s.cxx,
            },
            "prebuilt": [p.to_json() for p in self.prebuilt],
            "specs": [v.to_json() for v in self.specs],
        }


@dataclass
class DoctorReport:
    environment: Environment
    toolchain: dict[str, ToolFacts] = field(default_factory=dict)
    projects: list[ProjectFacts] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> JsonObject:
        return {
            "environment": self.environment.to_json(),
            "toolchain": {name: facts.to_json() for name, facts in self.toolchain.items()},
            "projects": [p.to_json() for p in self.projects],
            "problems": list(self.problems),
        }


def environment() -> Environment:
    from torchwheel import __version__

    python, system = platform.python_version(), platform.platform()
    try:
        torch = TorchInstall.running()
    except ImportError as error:
        return Environment(__version__, python, system, None, f"torch cannot be imported ({error})", (), None)
    gpus = visible_gpus()
    return Environment(__version__, python, system, torch, None, gpus, driver_cuda_version() if gpus else None)


def toolchain_facts(settings: Settings, need_cuda: bool) -> dict[str, ToolFacts]:
    from torchwheel.compile.toolchain import find_toolchain

    facts: dict[str, ToolFacts] = {}
    try:
        cxx = find_toolchain(settings.cxx, settings.cuda_home, need_cuda=False).cxx
        facts["cxx"] = ToolFacts(path=cxx.path, version=cxx.version)
    except TorchwheelError as error:
        facts["cxx"] = ToolFacts(problem=str(error))
    if need_cuda:
        try:
            toolchain = find_toolchain(settings.cxx, settings.cuda_home, need_cuda=True)
            assert toolchain.nvcc is not None
            offered = toolchain.cuda_archs()
            facts["nvcc"] = ToolFacts(
                path=toolchain.nvcc.path,
                cuda_version=toolchain.cuda_version or "unknown",
                archs=offered.listed() if offered else None,
            )
        except TorchwheelError as error:
            facts["nvcc"] = ToolFacts(problem=str(error))
    return facts


def _dir_facts(path: Path, what: str, variable: str) -> DirFacts:
    problem = private_dir_problem(path, what, variable)
    state: DirState = "refused" if problem else ("ok" if path.is_dir() else "not created yet")
    return DirFacts(path, state, problem)


def _prebuilt_facts(directory: Path) -> PrebuiltDirFacts:
    if problem := trusted_dir_problem(directory):
        return PrebuiltDirFacts(directory, problem=untrusted_prebuilt(directory, problem))
    try:
        manifest = read_manifest(directory)
    except ManifestError as error:
        return PrebuiltDirFacts(directory, problem=str(error))
    entries = manifest.entries.values()
    return PrebuiltDirFacts(
        directory,
        project=manifest.project,
        specs=len(manifest.entries),
        torch=tuple(sorted({e.torch_version for e in entries})),
        devices=tuple(sorted({e.device for e in entries})),
        cuda=tuple(sorted({e.cuda_version for e in entries if e.cuda_version})),
        archs=tuple(sorted({";".join(e.arch_list) for e in entries if e.arch_list})),
    )


def project_facts(project: Project, env: Environment, problems: list[str]) -> ProjectFacts:
    loader = Loader(project)
    settings = loader.settings  # a malformed setting raises here: one line, nothing else to say
    cache_dir = _dir_facts(settings.cache_dir, "cache dir", settings.variable("CACHE_DIR"))
    lock_dir = _dir_facts(settings.lock_dir, "lock dir", settings.variable("LOCK_DIR"))
    problems.extend(d.problem for d in (cache_dir, lock_dir) if d.problem)
    if settings.arch_list:  # checked whatever the torch: a CPU torch today may be a CUDA one tomorrow
        try:
            parse_arch_list(settings.arch_list, settings.origin("arch_list"))
        except SettingsError as error:
            problems.append(str(error))
    prebuilt = tuple(_prebuilt_facts(d) for d in prebuilt_dirs(project, settings.prebuilt_path))
    problems.extend(p.problem for p in prebuilt if p.problem)
    try:
        names = sorted(loader.specs)
    except TorchwheelError as error:
        problems.append(str(error))
        names = []
    verdicts = tuple(_spec_verdict(loader, name, env, problems) for name in names)
    return ProjectFacts(project.name, project.env_prefix, cache_dir, lock_dir, settings, prebuilt, verdicts)


def _spec_verdict(loader: Loader, name: str, env: Environment, problems: list[str]) -> SpecVerdict:
    spec = loader.specs[name]
    if spec.device == "cuda" and (env.torch is None or env.torch.cuda_version is None):
        return SpecVerdict(name, spec.device, "unavailable", "running torch has no CUDA")
    try:
        plan = loader.plan(name, record=False)
    except NoGpuVisible:
        return SpecVerdict(name, spec.device, "unavailable", "no GPU is visible")
    except TorchwheelError as error:
        problems.append(str(error))
        return SpecVerdict(name, spec.device, "error", str(error))
    for candidate in plan.candidates:
        if candidate.damaged:
            problems.append(f"{loader.project.name}: prebuilt {candidate.describe()}; reinstall it")
    archs = plan.job.target.archs_for(spec) if plan.job else ()
    return SpecVerdict(
        name,
        spec.device,
        plan.origin,
        plan.reason,
        plan.path,
        ";".join(str(a) for a in archs) or None,
        tuple((c.manifest.path_of(c.entry), c.rejection) for c in plan.candidates),
    )


def diagnose(projects: Sequence[Project | str]) -> DoctorReport:
    """Every fact and verdict, for the given projects (names are looked up as entry points)."""
    report = DoctorReport(environment())
    if report.environment.torch_problem:
        report.problems.append(report.environment.torch_problem)
    loaded = [item if isinstance(item, Project) else load_project(item) for item in projects]
    if loaded:
        first = loaded[0].settings()
        torch = report.environment.torch
        report.toolchain = toolchain_facts(first, bool(torch and torch.cuda_version))
    report.projects = [project_facts(p, report.environment, report.problems) for p in loaded]
    return report


def render(report: DoctorReport) -> str:
    lines = _environment_lines(report.environment)
    for name, tool in report.toolchain.items():
        if tool.problem:
            lines.append(f"{name:<11} {tool.problem}")
        elif tool.cuda_version is not None:
            lines.append(f"{name:<11} {tool.path}: CUDA {tool.cuda_version}, archs {tool.archs}")
        else:
            lines.append(f"{name:<11} {tool.path}: {tool.version}")
    for project in report.projects:
        lines += ["", *_project_lines(project)]
    return "\n".join(lines)


def _environment_lines(env: Environment) -> list[str]:
    lines = [f"torchwheel {env.torchwheel}, Python {env.python}, {env.platform}"]
    if env.torch is None:
        return [*lines, f"torch       {env.torch_problem}"]
    abi = "yes" if env.torch.cxx11_abi else "no"
    lines.append(
        f"torch       {env.torch.version} (C++11 ABI: {abi}, CUDA: {env.torch.cuda_version or 'none'}) "
        f"at {env.torch.prefix}"
    )
    for gpu in env.gpus:
        lines.append(f"GPU {gpu.index}       {gpu.name}, capability {gpu.capability[0]}.{gpu.capability[1]}")
    lines.append(f"driver      CUDA {env.driver_cuda or 'unknown'}" if env.gpus else "GPUs        none visible")
    return lines


def _project_lines(project: ProjectFacts) -> list[str]:
    lines = [f"project {project.name} (settings {project.prefix}_* or TORCHWHEEL_*)"]
    for which, facts in (("cache dir", project.cache_dir), ("lock dir", project.lock_dir)):
        lines.append(f"  {which:<10} {facts.path} ({facts.problem or facts.state})")
    s = project.settings
    switches = [name for name, on in (("DISABLE_JIT", s.disable_jit), ("FORCE_JIT", s.force_jit)) if on]
    switches += ["ACCEPT_PTX"] if s.accept_ptx else []
    arch = f"{s.arch_list} (from {s.origin('arch_list')})" if s.arch_list else "the GPUs'"
    lines.append(f"  settings   {' '.join(switches) or 'defaults'}; JIT archs: {arch}")
    if not project.prebuilt:
        lines.append("  prebuilt   none installed")
    for entry in project.prebuilt:
        if entry.problem:
            lines.append(f"  prebuilt   {entry.path}: {entry.problem}")
            continue
        what = f"torch {', '.join(entry.torch)}, {'/'.join(entry.devices)}"
        if entry.cuda:
            what += f", CUDA {', '.join(entry.cuda)}, archs {', '.join(entry.archs)}"
        lines.append(f"  prebuilt   {entry.path}: {entry.specs} specs, {what}")
    width = max((len(v.name) for v in project.specs), default=0)
    for verdict in project.specs:
        text = f"    {verdict.name:<{width}}  {verdict.origin:<11}"
        if verdict.origin in ("prebuilt", "jit-cache"):
            text += f" {verdict.path}"
        if verdict.origin == "jit-build" and verdict.archs:
            text += f" for {verdict.archs}"
        if verdict.reason:
            text += f" ({verdict.reason})"
        lines.append(text)
    return lines


def run_doctor(projects: Sequence[Project | str], *, as_json: bool = False) -> int:
    """Print the report (stdout) and each problem (stderr); 1 when there is any problem."""
    names = list(projects) or default_projects()
    if not names:
        raise TorchwheelError("no torchwheel project is installed; name one (entry point name or module:attribute)")
    report = diagnose(names)
    print(json.dumps(report.to_json(), indent=2) if as_json else render(report))
    for problem in report.problems:
        print(f"torchwheel doctor: {problem}", file=sys.stderr)
    return ExitCode.FAULTS_FOUND if report.problems else ExitCode.OK
