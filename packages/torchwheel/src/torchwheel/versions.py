"""Version numbers, parsed in one place with `packaging`.

Torch reports local versions (`2.14.1+cu130`), CUDA reports `13.0` or `13.0.88`, the matrix file
writes `2.14`; every comparison in torchwheel goes through these functions so that all of them
agree on what "the same torch series" and "an older CUDA" mean.
"""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

__all__ = ["InvalidVersion", "Version", "cuda_pair", "parse_version", "torch_series"]


def parse_version(text: str) -> Version:
    """`Version(text)`; raises `InvalidVersion` for text that is not a version."""
    return Version(text)


def torch_series(version: str | Version) -> str:
    """The major.minor series of a torch version: "2.14.1+cu130" -> "2.14"."""
    parsed = version if isinstance(version, Version) else Version(version)
    return f"{parsed.major}.{parsed.minor}"


def cuda_pair(version: str | None) -> tuple[int, int] | None:
    """(major, minor) of a CUDA version ("13.0", "12.8.93"); None for None or malformed text."""
    if not version:
        return None
    try:
        parsed = Version(version)
    except InvalidVersion:
        return None
    if parsed.local or parsed.pre or parsed.post or parsed.dev or parsed.epoch:
        return None
    return parsed.major, parsed.minor
