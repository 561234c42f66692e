"""What a build's `.ninja_log` says: busy core-seconds, wall, utilisation and the critical path.

Utilisation is busy core-seconds (the sum of every step's duration) over wall x cores, the
issue's measure. The critical path is the longest chain of steps through the build graph (a
library waits for its slowest object, then links), with each step at its logged duration: no
schedule on any number of cores can finish sooner, so it is the wall time's lower bound.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Step:
    output: str
    start_ms: int
    end_ms: int

    @property
    def seconds(self) -> float:
        return (self.end_ms - self.start_ms) / 1000


@dataclass(frozen=True)
class LogSummary:
    steps: int
    compiles: int
    busy_s: float  # core-seconds
    wall_s: float  # first step's start to last step's end
    cores: int
    compile_s: float  # core-seconds in compile steps (objects)
    link_s: float  # core-seconds in links
    critical_path_s: float
    critical_path: tuple[str, ...]  # its steps' outputs, first to last

    @property
    def utilisation(self) -> float:
        return self.busy_s / (self.wall_s * self.cores) if self.wall_s else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "steps": self.steps,
            "compiles": self.compiles,
            "busy_s": round(self.busy_s, 2),
            "wall_s": round(self.wall_s, 2),
            "cores": self.cores,
            "utilisation": round(self.utilisation, 4),
            "compile_s": round(self.compile_s, 2),
            "link_s": round(self.link_s, 2),
            "critical_path_s": round(self.critical_path_s, 2),
            "critical_path": [Path(p).name for p in self.critical_path],
        }


def read_steps(build_dir: Path) -> list[Step]:
    """The steps of the last run recorded in `build_dir/.ninja_log` (a clean dir: its one run)."""
    steps: dict[str, Step] = {}
    for line in (build_dir / ".ninja_log").read_text().splitlines():
        if line.startswith("#"):
            continue
        start, end, _mtime, output, _hash = line.split("\t")
        steps[output] = Step(output, int(start), int(end))  # a later record of an output wins
    return list(steps.values())


def summarise(build_dir: Path, cores: int, ninja: str = "ninja") -> LogSummary:
    steps = read_steps(build_dir)
    by_output = {s.output: s for s in steps}
    libraries = [s for s in steps if s.output.endswith(".so")]
    best: tuple[float, tuple[str, ...]] = (0.0, ())
    for library in libraries:
        # Every input a library has (objects, sources, headers); the objects are the logged ones.
        listed = subprocess.run(
            [ninja, "-C", str(build_dir), "-t", "inputs", library.output], capture_output=True, text=True, check=True
        ).stdout.split()
        objects = [by_output[i] for i in listed if i in by_output and i != library.output]
        slowest = max(objects, key=lambda s: s.seconds, default=None)
        length = library.seconds + (slowest.seconds if slowest else 0.0)
        if length > best[0]:
            best = (length, (*((slowest.output,) if slowest else ()), library.output))
    compiles = [s for s in steps if not s.output.endswith(".so")]
    return LogSummary(
        steps=len(steps),
        compiles=len(compiles),
        busy_s=sum(s.seconds for s in steps),
        wall_s=(max(s.end_ms for s in steps) - min(s.start_ms for s in steps)) / 1000 if steps else 0.0,
        cores=cores,
        compile_s=sum(s.seconds for s in compiles),
        link_s=sum(s.seconds for s in libraries),
        critical_path_s=best[0],
        critical_path=best[1],
    )
