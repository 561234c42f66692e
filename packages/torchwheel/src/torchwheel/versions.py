"""Version numbers, read in one place, with `packaging`'s rules.

Torch reports local versions (`2.14.1+cu130`), CUDA reports `13.0` or `13.0.88`, the matrix file
writes `2.14`; every comparison in torchwheel goes through these functions so that all of them
agree on what "the same torch series" and "an older CUDA" mean.

A prebuilt load reads a version or two, and importing `packaging.version` costs about 3 ms
(benchmarks/bench_load.py), more than the load itself. So the two functions on that path,
`torch_series` and `cuda_pair`, read the common plain form (`2.14.1`, `2.14.1+cu130`, `13.0`)
themselves and hand anything else to `packaging`; tests/test_versions.py checks that both ways
agree.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from packaging.version import Version

# Release numbers, and for torch an optional local label: what `packaging` reads the same way.
_PLAIN = re.compile(r"(\d+)\.(\d+)(?:\.\d+)*(\+[a-z0-9]+(?:[.][a-z0-9]+)*)?")


def parse_version(text: str) -> Version:
    """`packaging.version.Version(text)`; raises `InvalidVersion` (a `ValueError`) if it is not one."""
    from packaging.version import Version

    return Version(text)


def torch_series(version: str | Version) -> str:
    """The major.minor series of a torch version: "2.14.1+cu130" -> "2.14"; `ValueError` if
    `version` is not a version."""
    if isinstance(version, str) and (match := _PLAIN.fullmatch(version)):
        return f"{int(match.group(1))}.{int(match.group(2))}"
    parsed = version if not isinstance(version, str) else parse_version(version)
    return f"{parsed.major}.{parsed.minor}"


def cuda_pair(version: str | None) -> tuple[int, int] | None:
    """(major, minor) of a CUDA version ("13.0", "12.8.93"); None for None or anything else."""
    if not version:
        return None
    if (match := _PLAIN.fullmatch(version)) and not match.group(3):
        return int(match.group(1)), int(match.group(2))
    from packaging.version import InvalidVersion

    try:
        parsed = parse_version(version)
    except InvalidVersion:
        return None
    if parsed.local or parsed.pre or parsed.post or parsed.dev or parsed.epoch or len(parsed.release) < 2:
        return None
    return parsed.major, parsed.minor


def torch_target_version(series: str) -> str:
    """`-DTORCH_TARGET_VERSION` for a torch series: torch's own layout (torch/headeronly/version.h),
    major in the top byte, minor in the next, the rest zero: "2.11" -> "0x020b000000000000"."""
    major, minor = (int(part) for part in series.split("."))
    return f"0x{(major << 56) | (minor << 48):016x}"
