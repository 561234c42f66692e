"""Run the benchmark suite and rewrite its sections of docs/benchmarks.md and docs/plots/*.png.

    python benchmarks/run_all.py [--only NAME ...] [--quick] [--torch214-python PY]
                                 [--kernels-json PATH]          (or: nox -s benchmarks)

Each benchmark (benchmarks/bench_*.py) runs as its own process, its output streamed with a
`[name i/n]` prefix so that a long run shows where it is. Its results replace the section between
`<!-- run_all:NAME -->` and `<!-- /run_all:NAME -->` in docs/benchmarks.md (appended the first
time), headed with the date, the machine and the exact command; the hand-written sections around
them are left as they are. Plots are written with matplotlib (Agg: no display needed).

The kernel sweep (bench_kernels.py) needs a GPU: here its section only says where it runs
(`benchmarks/gpu_run.sh` on the GPU machine); `--kernels-json` plots the roofline from the JSON
a GPU run wrote (`bench_kernels.py --json`). Benchmarks that need the torch 2.14.1 venv (a second
cell, the binding ABI, the CUDA cell's sccache run) are skipped, with a line, without one.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Data = dict[str, Any]  # a benchmark's JSON results, as it wrote them
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DOC = REPO / "docs" / "benchmarks.md"
PLOTS = REPO / "docs" / "plots"


@dataclass(frozen=True)
class Bench:
    name: str
    title: str
    command: tuple[str, ...]  # after the interpreter; "{json}" is replaced by a results file
    needs_torch214: bool = False
    plot: Callable[[Data, Path], None] | None = None


@dataclass
class Result:
    bench: Bench
    command: list[str]
    output: list[str] = field(default_factory=list)
    seconds: float = 0.0
    data: Data | None = None
    returncode: int = 0


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0]
    return f"{platform.node()}: {len(os.sched_getaffinity(0))} cores ({model}), no GPU here, load {load:.1f} at start"


def suite(args: argparse.Namespace) -> list[Bench]:
    py214 = args.torch214_python or ""
    quick = args.quick
    return [
        Bench("build", "Build: one ninja run vs `cpp_extension.load` one by one (CPU specs)", ("bench_build.py",)),
        Bench(
            "utilisation",
            "Build utilisation on this machine's cores, critical path, no-op rebuild of the CPU cell",
            ("bench_utilisation.py", "--noop-runs", "3" if quick else "5", "--json", "{json}"),
            plot=plot_utilisation,
        ),
        Bench(
            "sccache",
            "sccache on a loopback Redis: the CPU cell twice in clean build dirs, then a JIT build",
            ("bench_sccache.py", "--json", "{json}"),
            plot=plot_sccache,
        ),
        Bench(
            "sccache_cu130",
            "sccache on a loopback Redis: the cu130 cell (CUDA units, 9.0a) twice, then a CUDA JIT build",
            ("bench_sccache.py", "--python", py214, "--device", "all", "--arch-list", "9.0a", "--json", "{json}"),
            needs_torch214=True,
            plot=plot_sccache,
        ),
        Bench(
            "load",
            "Load: prebuilt, raw `load_library`, warm `cpp_extension` hit",
            ("bench_load.py", "--runs", "5" if quick else "15"),
        ),
        Bench("race", "Processes racing one cold spec", ("bench_race.py", "--racers", "4" if quick else "16")),
        Bench(
            "cells",
            "The cu130 cell after the cpu cell in one build root (its CPU specs up to date)",
            # The matrix has one stable cell per accelerator; both build against torch 2.14.1.
            (
                "bench_cells.py",
                "--first",
                "cpu",
                "--first-python",
                py214,
                "--second",
                "cu130",
                "--second-python",
                py214,
            ),
            needs_torch214=True,
        ),
        Bench(
            "wheel_sizes",
            "Wheel sizes per cell, and what each CUDA arch adds",
            ("bench_wheel_sizes.py", "--python", py214, "--json", "{json}"),
            needs_torch214=True,
        ),
        Bench(
            "binding_abi",
            "Binding unit compile time: full vs stable ABI",
            ("bench_binding_abi.py", "--python", py214, "--runs", "2" if quick else "3"),
            needs_torch214=True,
        ),
    ]


def run(bench: Bench, index: int, total: int, scratch: Path) -> Result:
    results_file = scratch / f"{bench.name}.json"
    command = [sys.executable, str(HERE / bench.command[0])]
    command += [str(results_file) if word == "{json}" else word for word in bench.command[1:]]
    result = Result(bench, command)
    label = f"[{bench.name} {index}/{total}]"
    print(f"{label} {' '.join(command)}", flush=True)
    started = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert process.stdout is not None
    for line in process.stdout:
        result.output.append(line.rstrip("\n"))
        print(f"{label} {line.rstrip()}", flush=True)
    result.returncode = process.wait()
    result.seconds = time.perf_counter() - started
    if results_file.is_file():
        result.data = json.loads(results_file.read_text())
    print(f"{label} done in {result.seconds:.0f} s (exit {result.returncode})", flush=True)
    return result


# Progress lines ("  first build: [12/90] ...") are left out of the doc: the summary stays.
_NOISE = re.compile(
    r"^\s+(\S.*: )?(\[\s*\d+/\d+\]|building |built |Statistics|  )|UserWarning: Failed to initialize NumPy|"
    r"_conversion_method_template"
)


def section(result: Result, when: str, where: str, plots: list[Path]) -> str:
    bench = result.bench
    shown = " ".join(["python", *(os.path.relpath(w, REPO) if os.path.isabs(w) else w for w in result.command[1:])])
    shown = re.sub(r"\S+/tmp\w*/\S+\.json|/tmp/\S+\.json", "RESULTS.json", shown)
    lines = [
        f"## {bench.title} (run_all)",
        "",
        f"Date: {when}. Machine: {where}. Command: `{shown}` ({result.seconds:.0f} s"
        + (f", **exit {result.returncode}**" if result.returncode else "")
        + ").",
        "",
    ]
    summary = headline(result)
    if summary:
        lines += [summary, ""]
    kept = [line for line in result.output if not _NOISE.match(line)]
    lines += ["```", *kept[-40:], "```", ""]
    lines += [f"![{bench.name}](plots/{p.name})" for p in plots]
    return "\n".join(lines).rstrip() + "\n"


def headline(result: Result) -> str:
    data = result.data
    if not data:
        return ""
    if result.bench.name.startswith("sccache"):
        first, second, jit = data["first"], data["second"], data["jit"]
        verdict = "met" if float(data["speedup"]) >= 5 else "**missed**"
        return (
            "| build | wall | sccache hits / misses | ninja wall | compile core-s | link core-s |\n"
            "|---|---|---|---|---|---|\n"
            f"| first (cold cache) | {first['seconds']} s | {first['hits']} / {first['misses']} | "
            f"{first['ninja']['wall_s']} s | {first['ninja']['compile_s']} | {first['ninja']['link_s']} |\n"
            f"| second (clean dir) | {second['seconds']} s | {second['hits']} / {second['misses']} | "
            f"{second['ninja']['wall_s']} s | {second['ninja']['compile_s']} | {second['ninja']['link_s']} |\n\n"
            f"Second build **{data['speedup']}x** faster (target 5x: {verdict}), hit rate "
            f"**{float(data['hit_rate']):.0%}**; identical libraries {data['identical_libraries'][0]}/"
            f"{data['identical_libraries'][1]}. JIT build of `{jit['spec']}` in a fresh cache dir: "
            f"{jit['origin']} in {jit['seconds']} s, hit rate **{float(data['jit_hit_rate']):.0%}**."
        )
    if result.bench.name == "wheel_sizes":
        rows = "".join(
            f"| {r['label']} | {r['wheel_bytes'] / 1e6:.2f} MB | {r['so_bytes'] / 1e6:.2f} MB | {r['seconds']} s |\n"
            for r in data["rows"]
        )
        return (
            f"minfer against torch {data['torch']}; the matrix's limit is {data['limit_mb']:g} MB per wheel.\n\n"
            "| wheel | size | its .so files | build |\n|---|---|---|---|\n" + rows
        )
    if result.bench.name == "utilisation":
        log, noop = data["log"], data["noop_s"]
        return (
            f"Cold build: ninja wall {log['wall_s']} s, busy {log['busy_s']} core-s on {log['cores']} cores: "
            f"utilisation **{float(log['utilisation']):.1%}** (target 90%); critical path (lower bound) "
            f"{log['critical_path_s']} s: {' -> '.join(log['critical_path'])}. No-op rebuild (median): ninja alone "
            f"**{noop['ninja']} s**, `torchwheel build`'s build step {noop['build']} s, whole command "
            f"{noop['command']} s (target 0.5 s)."
        )
    return ""


def plot_sccache(data: Data, path: Path) -> None:
    import matplotlib.pyplot as plt

    first, second, jit = data["first"], data["second"], data["jit"]
    figure, axis = plt.subplots(figsize=(6, 3.2))
    names = ["first build\n(cold cache)", "second build\n(clean dir)", f"JIT {jit['spec']}\n(fresh cache dir)"]
    values = [first["seconds"], second["seconds"], jit["seconds"]]
    bars = axis.bar(names, values, color=["#999999", "#2a7ab9", "#59a14f"])
    axis.bar_label(bars, labels=[f"{v:.1f} s" for v in values])
    axis.set_ylim(0, max(values) * 1.15)  # room for the labels
    axis.set_ylabel("wall seconds")
    axis.set_title(
        f"sccache + Redis, {data['device']} ({data['cores']} cores): "
        f"{data['speedup']}x, hits {float(data['hit_rate']):.0%}"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_utilisation(data: Data, path: Path) -> None:
    """The cold build's steps on a timeline, one row per core slot (assigned greedily)."""
    import matplotlib.pyplot as plt

    steps = sorted(data["steps"], key=lambda s: s[1])
    free_at: list[int] = []
    figure, axis = plt.subplots(figsize=(9, 2.8))
    for name, start, end in steps:
        slot = next((i for i, t in enumerate(free_at) if t <= start), None)
        if slot is None:
            slot = len(free_at)
            free_at.append(0)
        free_at[slot] = end
        colour = "#e15759" if name.endswith(".so") else "#2a7ab9"
        axis.barh(slot, (end - start) / 1000, left=start / 1000, color=colour, edgecolor="white", height=0.8)
    log = data["log"]
    axis.set_xlabel("seconds since the build started (blue: compiles, red: links)")
    axis.set_yticks(range(len(free_at)), [f"slot {i + 1}" for i in range(len(free_at))])
    axis.set_title(
        f"ninja -j{data['jobs']}: utilisation {float(log['utilisation']):.1%}, critical path {log['critical_path_s']} s"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_roofline(data: Data, path: Path) -> None:
    """Bandwidth per op x dtype at the large sizes (bench_kernels.py's JSON): minfer, torch.compile
    and eager as bars, the copy of the same byte count in the same run (the roofline) as a black
    mark and 92% of it (the target) as a dashed one; minfer's % of copy is written over its bar."""
    import matplotlib.pyplot as plt

    rows = [r for r in data.get("rows", []) if r["large"]]
    if not rows:
        return
    figure, axis = plt.subplots(figsize=(12, 4.8))
    xs = range(len(rows))
    for offset, key, colour in ((-0.27, "minfer", "#2a7ab9"), (0.0, "compile", "#f28e2b"), (0.27, "eager", "#999999")):
        values = [r["bytes"] / r["times_s"][key] / 1e9 if r["times_s"].get(key) else 0 for r in rows]
        label = {"minfer": "minfer", "compile": "torch.compile of the reference", "eager": "eager torch"}[key]
        axis.bar([i + offset for i in xs], values, width=0.27, color=colour, label=label)
    copy = [r["bytes"] / r["times_s"]["copy"] / 1e9 for r in rows]
    axis.plot(xs, copy, "k_", markersize=22, markeredgewidth=2, label="copy of the same bytes (roofline)")
    axis.plot(xs, [0.92 * c for c in copy], "_", color="#c0392b", markersize=22, label="92% of copy (target)")
    for i, r in enumerate(rows):
        minfer = r["bytes"] / r["times_s"]["minfer"] / 1e9
        axis.annotate(
            f"{minfer / copy[i]:.0%}", (i - 0.27, minfer), ha="center", va="bottom", fontsize=6.5, color="#2a7ab9"
        )
    names = {
        "fused_add_rmsnorm": "fused_add\n_rmsnorm",
        "silu_and_mul": "silu\n_and_mul",
        "gelu_tanh_and_mul": "gelu_tanh\n_and_mul",
    }
    axis.set_xticks(list(xs), [f"{names.get(r['op'], r['op'])}\n{r['dtype']}" for r in rows], fontsize=7)
    axis.set_ylabel("GB/s (bytes read + written once)")
    axis.set_ylim(0, max(copy) * 1.3)
    header = str(data.get("header", "")).split("`")[0].strip().rstrip(",")
    axis.set_title(f"minfer at the large sizes against the memory roofline ({header})", fontsize=9)
    axis.legend(fontsize=7, loc="upper center", ncol=5, frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def rewrite(doc: Path, name: str, text: str) -> None:
    """Replace the section between this benchmark's markers, or append it."""
    begin, end = f"<!-- run_all:{name} -->", f"<!-- /run_all:{name} -->"
    block = f"{begin}\n{text}{end}\n"
    current = doc.read_text()
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        after = rest.split(end, 1)[1].lstrip("\n")
        current = head + block + ("\n" + after if after else "")
    else:
        current = current.rstrip("\n") + "\n\n" + block
    doc.write_text(current)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", help="run only these (names: build utilisation sccache ...)")
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--torch214-python", help="the torch 2.14.1 venv's interpreter (nox -s tests makes one)")
    parser.add_argument("--kernels-json", type=Path, help="bench_kernels.py --json output of a GPU run, to plot")
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args()
    benches = [b for b in suite(args) if not args.only or b.name in args.only]
    unknown = set(args.only or ()) - {b.name for b in suite(args)} - {"kernels"}
    if unknown:
        raise SystemExit(
            f"--only {' '.join(sorted(unknown))}: no such benchmark; choose from {[b.name for b in suite(args)]}"
        )
    PLOTS.mkdir(parents=True, exist_ok=True)
    when = datetime.date.today().isoformat()
    where = machine()
    failed = []
    with tempfile.TemporaryDirectory() as scratch:
        for index, bench in enumerate(benches, 1):
            if bench.needs_torch214 and not args.torch214_python:
                print(f"[{bench.name} {index}/{len(benches)}] skipped: needs --torch214-python", flush=True)
                continue
            result = run(bench, index, len(benches), Path(scratch))
            plots = []
            if bench.plot is not None and result.data:
                plots.append(PLOTS / f"{bench.name}.png")
                bench.plot(result.data, plots[-1])
            rewrite(args.doc, bench.name, section(result, when, where, plots))
            if result.returncode:
                failed.append(bench.name)
    if not args.only or "kernels" in args.only:
        plots, source = [], ""
        if args.kernels_json:
            kernels = json.loads(args.kernels_json.read_text())
            plots.append(PLOTS / "roofline.png")
            plot_roofline(kernels, plots[-1])
            source = f"\nThe plot below, written {when} by `python benchmarks/run_all.py --only kernels "
            source += f"--kernels-json {args.kernels_json.name}`, is of: {kernels.get('header', '?')}.\n"
        text = (
            "## Kernel sweep, GPU machine (run_all)\n\n"
            "Not run here (no GPU). It runs on the GPU machine: `bash benchmarks/gpu_run.sh kernels` (which runs "
            "`python benchmarks/bench_kernels.py --json kernels.json`); its figures are the hand-written kernel "
            "sections above. `run_all.py --only kernels --kernels-json kernels.json` plots the roofline from it: "
            "bandwidth at the large sizes (bytes read and written once over time) of minfer, torch.compile of "
            "the reference and eager torch, against a copy of the same bytes in the same run (black) and 92% of "
            "it (the target, red), minfer's percentage of copy over its bar.\n"
            + source
            + "".join(f"\n![roofline](plots/{p.name})\n" for p in plots)
        )
        rewrite(args.doc, "kernels", text)
    print(f"rewrote {args.doc} ({len(benches)} benchmarks{'; failed: ' + ', '.join(failed) if failed else ''})")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
