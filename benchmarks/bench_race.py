"""Benchmark (c): N processes racing one cold spec, against one process building it alone.

    python benchmarks/bench_race.py [--spec rmsnorm_fp32_cpu] [--racers 16] [--repeat 1]

Every process imports torch and the project first, then waits at a barrier; the clock starts
when all are released together and stops when the last one has the op loaded. Each trial starts
from an empty cache and lock dir. One racer compiles (under the spec's lock); the others wait on
the lock and load its entry, so the race should cost about what one build costs. Target: at
most 1.2x the uncontended build, with exactly 1 compile.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

RACER = """
import json, sys, time, torch
from torchwheel import Loader
from torchwheel.project import load_project; PROJECT = load_project("minfer")
loader = Loader(PROJECT)
print("ready", flush=True)
sys.stdin.readline()
loaded = loader.load(sys.argv[1])
print(json.dumps({"origin": loaded.origin, "done": time.time()}), flush=True)
"""


def trial(spec: str, racers: int) -> tuple[float, int, int]:
    """Seconds from release to the last process loaded; compiles counted by origin and by log."""
    with tempfile.TemporaryDirectory() as scratch:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MINFER_", "TORCHWHEEL_"))}
        env.update(MINFER_CACHE_DIR=f"{scratch}/cache", MINFER_LOCK_DIR=f"{scratch}/locks")
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", RACER, spec],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(racers)
        ]
        for process in processes:
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        started = time.time()
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        outputs = [process.communicate() for process in processes]
        if any(process.returncode for process in processes):
            raise SystemExit("a racer failed:\n" + "\n".join(err for _, err in outputs))
        results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
        wall = max(r["done"] for r in results) - started
        by_origin = sum(r["origin"] == "jit-build" for r in results)
        by_log = sum(err.count(f"JIT-built {spec} in ") for _, err in outputs)
        return wall, by_origin, by_log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", default="rmsnorm_fp32_cpu")
    parser.add_argument("--racers", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=1, help="trials of each, alternating (medians)")
    args = parser.parse_args()
    alone, raced, compiles = [], [], []
    for _ in range(args.repeat):
        wall, _, _ = trial(args.spec, 1)
        alone.append(wall)
        print(f"1 process:           {wall:6.2f} s", flush=True)
        wall, by_origin, by_log = trial(args.spec, args.racers)
        raced.append(wall)
        compiles.append((by_origin, by_log))
        print(f"{args.racers} racing processes: {wall:6.2f} s, compiles: {by_origin} (log lines: {by_log})", flush=True)
    one, many = statistics.median(alone), statistics.median(raced)
    print(
        f"spec {args.spec}: uncontended {one:.2f} s, {args.racers} racing {many:.2f} s, ratio {many / one:.2f}x "
        f"(target <= 1.2x), compiles per race: {sorted(set(compiles))}"
    )


if __name__ == "__main__":
    main()
