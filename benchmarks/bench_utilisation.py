"""Benchmark: how busy one wrapper build keeps the cores, against its critical path, and what a
no-op rebuild of the same cell costs.

    python benchmarks/bench_utilisation.py [--python PY] [--device cpu|cuda|all] [--arch-list 9.0a]
                                           [--jobs N] [--json PATH]

Builds minfer's cell (`torchwheel build minfer --device D`) cold in a fresh dir, then reads its
`.ninja_log`: utilisation is busy core-seconds over wall x cores, and the critical path (a
library's slowest object, then its link) is the lower bound of any schedule. Then rebuilds with
nothing changed, three ways: `ninja` alone on the wrapper, the build as `torchwheel build`
reports it (writing the ninja files and running ninja), and the whole command (Python, torch's
import, the project's specs). Targets (issue 13): >= 90% on 2 cores; a no-op under 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _ninja_log import read_steps, summarise  # noqa: E402

_BUILT = re.compile(r"built \d+ specs \((\d+) build steps\) in ([\d.]+) s")


def ninja_binary() -> str:
    from ninja import BIN_DIR

    return os.path.join(BIN_DIR, "ninja")


def torchwheel_build(args: argparse.Namespace, out: Path) -> tuple[float, int, float]:
    """(wall s, steps run, the build's own seconds as the command reports them)."""
    command = [args.python, "-m", "torchwheel", "build", "minfer", "--device", args.device, "--out", str(out)]
    command += ["--jobs", str(args.jobs)] + (["--arch-list", args.arch_list] if args.arch_list else [])
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    found = None
    for line in process.stdout:
        print(f"  {line.rstrip()}", flush=True)
        found = _BUILT.search(line) or found
    if process.wait() != 0 or found is None:
        raise SystemExit(f"torchwheel build failed (exit {process.returncode})")
    return time.perf_counter() - started, int(found.group(1)), float(found.group(2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="cpu")
    parser.add_argument("--arch-list", default=None)
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--noop-runs", type=int, default=5, help="no-op rebuilds of each kind (median)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "cell"
        print(f"cold build of minfer --device {args.device}, ninja -j{args.jobs}", flush=True)
        wall, steps, _ = torchwheel_build(args, out)
        summary = summarise(out / "build", args.jobs, ninja_binary())
        log_steps = [(Path(s.output).name, s.start_ms, s.end_ms) for s in read_steps(out / "build")]
        print(
            f"cold: {wall:.1f} s wall, {steps} steps; ninja {summary.wall_s:.1f} s, busy {summary.busy_s:.1f} "
            f"core-s, utilisation {summary.utilisation:.1%} of {args.jobs} cores; critical path "
            f"{summary.critical_path_s:.1f} s ({' -> '.join(Path(p).name for p in summary.critical_path)})",
            flush=True,
        )
        ninja_alone, reported, whole = [], [], []
        for run in range(args.noop_runs):
            started = time.perf_counter()
            subprocess.run([ninja_binary(), "-C", str(out / "build")], check=True, stdout=subprocess.DEVNULL)
            ninja_alone.append(time.perf_counter() - started)
            command_wall, noop_steps, noop_build = torchwheel_build(args, out)
            if noop_steps:
                raise SystemExit(f"a no-op rebuild ran {noop_steps} steps")
            reported.append(noop_build)
            whole.append(command_wall)
            print(
                f"no-op {run + 1}: ninja {ninja_alone[-1]:.3f} s, build {noop_build:.2f} s, "
                f"command {command_wall:.2f} s"
            )
    noop = {
        k: round(statistics.median(v), 3) for k, v in (("ninja", ninja_alone), ("build", reported), ("command", whole))
    }
    print(f"no-op rebuild (median of {args.noop_runs}): {noop}")
    if args.json:
        record = {
            "device": args.device,
            "jobs": args.jobs,
            "cold_wall_s": round(wall, 2),
            "log": summary.as_dict(),
            "steps": log_steps,
            "noop_s": noop,
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
