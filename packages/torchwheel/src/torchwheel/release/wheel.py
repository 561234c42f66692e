"""Writing a variant wheel: only the prebuilt `.so` files and their manifest.

The wheel is reproducible: entries in sorted order, every timestamp set to SOURCE_DATE_EPOCH,
fixed permissions, no path of the build machine. Built twice from the same inputs, from any
checkout path, it has the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from torchwheel import __version__
from torchwheel.errors import SettingsError

# Zip holds local times from 1980-01-01 to 2107-12-31 23:59:58 (seven bits of years, even seconds).
_EARLIEST = 315532800
_LATEST = 4354819198
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class WheelContents:
    distribution: str  # "minfer-cpu-torch213"
    version: str
    summary: str
    description: str  # markdown, shown by the index
    requires: tuple[str, ...]  # Requires-Dist lines
    files: dict[str, Path]  # archive name -> file on disk
    tag: str  # "py3-none-manylinux_2_35_x86_64"


def source_date_epoch(default_from: Path | None = None) -> int:
    """SOURCE_DATE_EPOCH, else the time of the last commit of the checkout at `default_from`."""
    if value := os.environ.get("SOURCE_DATE_EPOCH"):
        return _epoch(value)
    if default_from is not None:
        import subprocess

        try:
            result = subprocess.run(
                ["git", "-C", str(default_from), "log", "-1", "--format=%ct"], capture_output=True, text=True
            )
        except OSError:  # no git: the fixed earliest time still gives reproducible wheels
            return _EARLIEST
        if result.returncode == 0 and _DIGITS.fullmatch(result.stdout.strip()):
            return min(max(int(result.stdout.strip()), _EARLIEST), _LATEST)
    return _EARLIEST


def _epoch(value: str) -> int:
    """SOURCE_DATE_EPOCH as the wheel's timestamp: ASCII digits (str.isdigit would take "²" and
    "١٢٣"), no later than a zip file can hold, and short enough that no date arithmetic overflows."""
    text = value.strip()
    if not _DIGITS.fullmatch(text):
        raise SettingsError(
            f"SOURCE_DATE_EPOCH={value[:40]!r} is not a whole number of seconds since 1970; set it to e.g. "
            "$(git log -1 --format=%ct) or unset it"
        )
    if len(text) > len(str(_LATEST)) or int(text) > _LATEST:
        shown = text if len(text) <= 20 else f"{text[:12]}... ({len(text)} digits)"
        raise SettingsError(
            f"SOURCE_DATE_EPOCH={shown} is after 2107-12-31, the last time a zip file can hold; set it to "
            "e.g. $(git log -1 --format=%ct) or unset it"
        )
    return max(int(text), _EARLIEST)


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def wheel_filename(contents: WheelContents) -> str:
    name = re.sub(r"[-_.]+", "_", canonicalize_name(contents.distribution))
    return f"{name}-{contents.version}-{contents.tag}.whl"


def write_wheel(contents: WheelContents, out_dir: Path, epoch: int) -> Path:
    name = re.sub(r"[-_.]+", "_", canonicalize_name(contents.distribution))
    dist_info = f"{name}-{contents.version}.dist-info"
    metadata = "".join(
        [
            "Metadata-Version: 2.1\n",
            f"Name: {contents.distribution}\n",
            f"Version: {contents.version}\n",
            f"Summary: {contents.summary}\n",
            *(f"Requires-Dist: {r}\n" for r in contents.requires),
            "Description-Content-Type: text/markdown\n",
            "\n",
            contents.description,
        ]
    )
    wheel_meta = (
        f"Wheel-Version: 1.0\nGenerator: torchwheel {__version__}\nRoot-Is-Purelib: false\nTag: {contents.tag}\n"
    )
    entries: list[tuple[str, bytes, int]] = [
        (arcname, path.read_bytes(), 0o755 if arcname.endswith(".so") else 0o644)
        for arcname, path in sorted(contents.files.items())
    ]
    entries += [(f"{dist_info}/METADATA", metadata.encode(), 0o644), (f"{dist_info}/WHEEL", wheel_meta.encode(), 0o644)]
    record = "".join(f"{n},{_record_hash(d)},{len(d)}\n" for n, d, _ in entries) + f"{dist_info}/RECORD,,\n"
    entries.append((f"{dist_info}/RECORD", record.encode(), 0o644))

    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / wheel_filename(contents)
    temporary = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    stamp = time.gmtime(epoch)[:6]
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for arcname, data, mode in entries:
            info = zipfile.ZipInfo(arcname, date_time=stamp)
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    os.replace(temporary, final)
    return final


def variant_files(aot_dir: Path, prefix: str, names: Sequence[str]) -> dict[str, Path]:
    """Archive names for a prebuilt dir: `<prefix>/manifest.json`, `<prefix>/<name>/<name>.so`."""
    files = {f"{prefix}/manifest.json": aot_dir / "manifest.json"}
    for name in names:
        files[f"{prefix}/{name}/{name}.so"] = aot_dir / name / f"{name}.so"
    return files
