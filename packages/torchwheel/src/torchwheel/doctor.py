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
from typing import Any

from .errors import TorchwheelError
from .lock import private_dir_problem
from .manifest import ManifestError, read_manifest
from .project import Project, installed_projects, load_project
from .selection import driver_cuda_version
from .settings import Settings


@dataclass
class Report:
    data: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def environment() -> dict[str, Any]:
    from . import __version__

    facts: dict[str, Any] = {
        "torchwheel": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        import torch
    except ImportError as error:
        facts["torch"] = None
        facts["torch_problem"] = f"torch cannot be imported ({error})"
        return facts
    gpus = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            major, minor = torch.cuda.get_device_capability(index)
            gpus.append({"index": index, "name": torch.cuda.get_device_name(index), "capability": f"{major}.{minor}"})
    facts["torch"] = {
        "version": torch.__version__,
        "path": torch.__path__[0],
        "cxx11_abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI),
        "cuda": torch.version.cuda,
    }
    facts["gpus"] = gpus
    facts["driver_cuda"] = driver_cuda_version() if gpus else None
    return facts


def toolchain_facts(settings: Settings, need_cuda: bool) -> dict[str, Any]:
    from .toolchain import find_toolchain

    facts: dict[str, Any] = {}
    try:
        toolchain = find_toolchain(settings.cxx, settings.cuda_home, need_cuda=False)
        facts["cxx"] = {"path": toolchain.cxx.path, "version": toolchain.cxx.version}
    except TorchwheelError as error:
        facts["cxx"] = {"problem": str(error)}
    if need_cuda:
        try:
            toolchain = find_toolchain(settings.cxx, settings.cuda_home, need_cuda=True)
            assert toolchain.nvcc is not None
            offered = toolchain.cuda_archs()
            facts["nvcc"] = {
                "path": toolchain.nvcc.path,
                "cuda_version": toolchain.cuda_version,
                "archs": offered.listed() if offered else None,
            }
        except TorchwheelError as error:
            facts["nvcc"] = {"problem": str(error)}
    return facts


def _dir_facts(path, what: str, variable: str) -> dict[str, Any]:
    problem = private_dir_problem(path, what, variable)
    state = "refused" if problem else ("ok" if path.is_dir() else "not created yet")
    return {"path": str(path), "state": state, "problem": problem}


def project_report(project: Project, env: dict[str, Any], report: Report) -> dict[str, Any]:
    from .loader import Loader

    loader = Loader(project)
    settings = loader.settings  # a malformed setting raises here: one line, nothing else to say
    facts: dict[str, Any] = {
        "name": project.name,
        "prefix": project.env_prefix,
        "cache_dir": _dir_facts(settings.cache_dir, "cache dir", settings.variable("CACHE_DIR")),
        "lock_dir": _dir_facts(settings.lock_dir, "lock dir", settings.variable("LOCK_DIR")),
        "settings": {
            "aot_path": [str(p) for p in settings.aot_path],
            "disable_jit": settings.disable_jit,
            "force_jit": settings.force_jit,
            "accept_ptx": settings.accept_ptx,
            "cuda_arch_list": settings.arch_list,
            "cuda_arch_list_from": settings.arch_list_from,
            "max_jobs": settings.max_jobs,
            "cuda_home": str(settings.cuda_home) if settings.cuda_home else None,
            "cxx": settings.cxx,
        },
    }
    for which in ("cache_dir", "lock_dir"):
        if facts[which]["problem"]:
            report.problems.append(facts[which]["problem"])
    prebuilt = []
    for directory in project.aot_dirs(settings.aot_path):
        try:
            manifest = read_manifest(directory)
        except ManifestError as error:
            prebuilt.append({"path": str(directory), "problem": str(error)})
            report.problems.append(str(error))
            continue
        entries = manifest.entries.values()
        prebuilt.append(
            {
                "path": str(directory),
                "project": manifest.project,
                "specs": len(manifest.entries),
                "torch": sorted({e.torch_version for e in entries}),
                "devices": sorted({e.device for e in entries}),
                "cuda": sorted({e.cuda_version for e in entries if e.cuda_version}),
                "archs": sorted({";".join(e.arch_list) for e in entries if e.arch_list}),
            }
        )
    facts["prebuilt"] = prebuilt
    try:
        names = sorted(loader.specs)
    except TorchwheelError as error:
        report.problems.append(str(error))
        facts["specs"] = []
        return facts
    facts["specs"] = [_spec_verdict(loader, name, env, report) for name in names]
    return facts


def _spec_verdict(loader: Any, name: str, env: dict[str, Any], report: Report) -> dict[str, Any]:
    spec = loader.specs[name]
    torch_facts = env.get("torch") or {}
    verdict: dict[str, Any] = {"name": name, "device": spec.device}
    if spec.device == "cuda" and not torch_facts.get("cuda"):
        return {**verdict, "origin": "unavailable", "reason": "running torch has no CUDA"}
    try:
        plan = loader.plan(name, record=False)
    except TorchwheelError as error:
        if spec.device == "cuda" and not env.get("gpus") and "no GPU is visible" in str(error):
            return {**verdict, "origin": "unavailable", "reason": "no GPU is visible"}
        report.problems.append(str(error))
        return {**verdict, "origin": "error", "reason": str(error)}
    for candidate in plan.candidates:
        if candidate.damaged:
            report.problems.append(f"{loader.project.name}: prebuilt {candidate.describe()}; reinstall it")
    return {
        **verdict,
        "origin": plan.origin,
        "path": str(plan.path) if plan.path else None,
        "reason": plan.reason,
        "archs": ";".join(str(a) for a in plan.job.archs) if plan.job and plan.job.archs else None,
        "candidates": [{"path": str(c.manifest.path_of(c.entry)), "rejection": c.rejection} for c in plan.candidates],
    }


def diagnose(projects: Sequence[Project | str]) -> Report:
    """Every fact and verdict, for the given projects (names are looked up as entry points)."""
    report = Report()
    env = environment()
    report.data["environment"] = env
    if env.get("torch_problem"):
        report.problems.append(env["torch_problem"])
    loaded: list[Project] = []
    for item in projects:
        if isinstance(item, Project):
            loaded.append(item)
        else:
            loaded.append(load_project(item))
    first = Settings.from_env(loaded[0].name, loaded[0].env_prefix) if loaded else None
    if first is not None:
        need_cuda = bool((env.get("torch") or {}).get("cuda"))
        report.data["toolchain"] = toolchain_facts(first, need_cuda)
    report.data["projects"] = [project_report(p, env, report) for p in loaded]
    return report


def render(report: Report) -> str:
    data = report.data
    env = data["environment"]
    lines = [f"torchwheel {env['torchwheel']}, Python {env['python']}, {env['platform']}"]
    torch_facts = env.get("torch")
    if torch_facts:
        abi = "yes" if torch_facts["cxx11_abi"] else "no"
        lines.append(
            f"torch       {torch_facts['version']} (C++11 ABI: {abi}, CUDA: {torch_facts['cuda'] or 'none'}) "
            f"at {torch_facts['path']}"
        )
        gpus = env.get("gpus") or []
        if gpus:
            for gpu in gpus:
                lines.append(f"GPU {gpu['index']}       {gpu['name']}, capability {gpu['capability']}")
            lines.append(f"driver      CUDA {env.get('driver_cuda') or 'unknown'}")
        else:
            lines.append("GPUs        none visible")
    else:
        lines.append(f"torch       {env.get('torch_problem')}")
    tools = data.get("toolchain", {})
    for name in ("cxx", "nvcc"):
        if name not in tools:
            continue
        tool = tools[name]
        if tool.get("problem"):
            lines.append(f"{name:<11} {tool['problem']}")
        elif name == "cxx":
            lines.append(f"{name:<11} {tool['path']}: {tool['version']}")
        else:
            lines.append(f"{name:<11} {tool['path']}: CUDA {tool['cuda_version']}, archs {tool['archs']}")
    for project in data["projects"]:
        lines.append("")
        lines.append(f"project {project['name']} (settings {project['prefix']}_* or TORCHWHEEL_*)")
        for which in ("cache_dir", "lock_dir"):
            facts = project[which]
            state = facts["problem"] or facts["state"]
            lines.append(f"  {which.replace('_', ' '):<10} {facts['path']} ({state})")
        s = project["settings"]
        switches = [k.upper() for k in ("disable_jit", "force_jit", "accept_ptx") if s[k]]
        arch = f"{s['cuda_arch_list']} (from {s['cuda_arch_list_from']})" if s["cuda_arch_list"] else "the GPUs'"
        lines.append(f"  settings   {' '.join(switches) or 'defaults'}; JIT archs: {arch}")
        if not project["prebuilt"]:
            lines.append("  prebuilt   none installed")
        for entry in project["prebuilt"]:
            if entry.get("problem"):
                lines.append(f"  prebuilt   {entry['path']}: {entry['problem']}")
                continue
            what = f"torch {', '.join(entry['torch'])}, {'/'.join(entry['devices'])}"
            if entry["cuda"]:
                what += f", CUDA {', '.join(entry['cuda'])}, archs {', '.join(entry['archs'])}"
            lines.append(f"  prebuilt   {entry['path']}: {entry['specs']} specs, {what}")
        width = max((len(v["name"]) for v in project["specs"]), default=0)
        for verdict in project["specs"]:
            origin = verdict["origin"]
            text = f"    {verdict['name']:<{width}}  {origin:<11}"
            if origin in ("prebuilt", "jit-cache"):
                text += f" {verdict['path']}"
            if origin == "jit-build" and verdict.get("archs"):
                text += f" for {verdict['archs']}"
            if verdict.get("reason"):
                text += f" ({verdict['reason']})"
            lines.append(text)
    return "\n".join(lines)


def run_doctor(projects: Sequence[Project | str], *, as_json: bool = False) -> int:
    """Print the report (stdout) and each problem (stderr); 1 when there is any problem."""
    names = list(projects) or installed_projects()
    if not names:
        raise TorchwheelError("no torchwheel project is installed; name one (entry point name or module:attribute)")
    report = diagnose(names)
    if as_json:
        print(json.dumps({**report.data, "problems": report.problems}, indent=2))
    else:
        print(render(report))
    for problem in report.problems:
        print(f"torchwheel doctor: {problem}", file=sys.stderr)
    return 1 if report.problems else 0
