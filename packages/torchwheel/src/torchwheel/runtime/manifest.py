"""`manifest.json`: what a directory of prebuilt `.so` files was built for.

It sits beside the files (`<dir>/manifest.json`, `<dir>/<name>/<name>.so`) and records no path
and no time, so the same build gives the same bytes anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from torchwheel.errors import ManifestError
from torchwheel.spec import DEVICES, Device

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class ManifestEntry:
    name: str
    file: str  # relative to the manifest's directory
    sha256: str
    device: Device
    torch_version: str
    cxx11_abi: bool
    cuda_version: str | None
    arch_list: tuple[str, ...]


@dataclass(frozen=True)
class Manifest:
    project: str
    entries: Mapping[str, ManifestEntry]
    directory: Path  # where it was read from; not stored

    def path_of(self, entry: ManifestEntry) -> Path:
        return self.directory / entry.file


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ManifestError(
            f"manifest {path} is unreadable ({error.__class__.__name__}); reinstall the package that holds it"
        ) from error
    if not isinstance(data, dict) or data.get("schema") != SCHEMA_VERSION:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ManifestError(
            f"manifest {path} has schema {found!r}, this torchwheel reads {SCHEMA_VERSION}; "
            "install matching versions of torchwheel and the prebuilt package"
        )
    entries = {}
    try:
        for name, raw in data["specs"].items():
            entries[name] = ManifestEntry(
                name=name,
                file=str(raw["file"]),
                sha256=str(raw["sha256"]),
                device=_device(raw["device"], path),
                torch_version=str(raw["torch_version"]),
                cxx11_abi=bool(raw["cxx11_abi"]),
                cuda_version=raw["cuda_version"],
                arch_list=tuple(raw["arch_list"]),
            )
        project = str(data["project"])
    except (KeyError, TypeError, AttributeError) as error:
        raise ManifestError(f"manifest {path} lacks field {error}; reinstall the package that holds it") from error
    return Manifest(project, entries, directory)


def _device(value: object, path: Path) -> Device:
    for device in DEVICES:
        if value == device:
            return device
    raise ManifestError(f"manifest {path} names device {value!r}; reinstall the package that holds it")


def write_manifest(
    directory: Path, project: str, entries: list[ManifestEntry], audit: Mapping[str, object] | None = None
) -> Path:
    data: dict[str, object] = {
        "schema": SCHEMA_VERSION,
        "project": project,
        "specs": {
            e.name: {k: v for k, v in asdict(e).items() if k != "name"} for e in sorted(entries, key=lambda e: e.name)
        },
    }
    if audit is not None:
        data["audit"] = dict(audit)
    path = directory / MANIFEST_NAME
    _atomic_write(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
    return path


def copy_into(source: Path, destination: Path) -> None:
    """Copy under a temporary name, then rename: a reader sees the old file or the whole new one."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, temporary)
    os.replace(temporary, destination)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
