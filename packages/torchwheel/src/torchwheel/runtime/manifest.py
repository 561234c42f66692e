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
from typing import Any

from torchwheel.errors import ManifestError
from torchwheel.files import open_regular, read_regular
from torchwheel.spec import DEVICES, SERIES_PATTERN, TORCH_ABIS, Device, TorchAbi

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
    # "stable": loads into every torch from min_torch on (torch_version is the one built against).
    # Optional in the file: a manifest from before the stable ABI holds full-ABI entries only, and
    # a reader from then sees a stable entry as one torch's, which is safe.
    torch_abi: TorchAbi = "full"
    min_torch: str | None = None


@dataclass(frozen=True)
class Manifest:
    project: str
    entries: Mapping[str, ManifestEntry]
    directory: Path  # where it was read from; not stored

    def path_of(self, entry: ManifestEntry) -> Path:
        return self.directory / entry.file


def sha256_of(path: Path) -> str:
    """The file's sha256; OSError (NotRegularFile for a FIFO or device) when it cannot be read."""
    digest = hashlib.sha256()
    with os.fdopen(open_regular(path), "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


MANIFEST_MAX_BYTES = 16 << 20  # a manifest of thousands of specs is well under 1 MB


def read_manifest(directory: Path) -> Manifest:
    """The manifest in `directory`; `ManifestError` (one line) for anything unreadable."""
    path = directory / MANIFEST_NAME
    try:
        data = json.loads(read_regular(path, MANIFEST_MAX_BYTES))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        why = error.strerror if isinstance(error, OSError) and error.strerror else error.__class__.__name__
        raise ManifestError(f"manifest {path} is unreadable ({why}); reinstall the package that holds it") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA_VERSION:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ManifestError(
            f"manifest {path} has schema {found!r}, this torchwheel reads {SCHEMA_VERSION}; "
            "install matching versions of torchwheel and the prebuilt package"
        )
    specs, project = data.get("specs"), data.get("project")
    if not isinstance(specs, dict) or not isinstance(project, str):
        field = "specs" if not isinstance(specs, dict) else "project"
        raise ManifestError(f"manifest {path} lacks field {field!r}; reinstall the package that holds it")
    entries = {str(name): _entry(str(name), raw, path) for name, raw in specs.items()}
    return Manifest(project, entries, directory)


def _entry(name: str, raw: object, path: Path) -> ManifestEntry:
    if not isinstance(raw, dict):
        raise ManifestError(f"manifest {path}: spec {name!r} is not a table; reinstall the package that holds it")

    def field(key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in raw:
            raise ManifestError(f"manifest {path} lacks field {key!r} of {name!r}; reinstall the package that holds it")
        value = raw[key]
        if not isinstance(value, kind):
            raise ManifestError(
                f"manifest {path}: {name}.{key} = {str(value)[:40]!r} has the wrong type; reinstall the package"
            )
        return value

    arch_list = field("arch_list", list)
    if not all(isinstance(a, str) for a in arch_list):
        raise ManifestError(f"manifest {path}: {name}.arch_list holds a non-string; reinstall the package")
    return ManifestEntry(
        name=name,
        file=field("file", str),
        sha256=field("sha256", str),
        device=_device(field("device", str), path),
        torch_version=field("torch_version", str),
        cxx11_abi=field("cxx11_abi", bool),
        cuda_version=field("cuda_version", (str, type(None))),
        arch_list=tuple(arch_list),
        **_abi_fields(raw, name, path),
    )


def _abi_fields(raw: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    abi, minimum = raw.get("torch_abi", "full"), raw.get("min_torch")
    if abi not in TORCH_ABIS:
        raise ManifestError(f"manifest {path}: {name}.torch_abi = {str(abi)[:20]!r} is unknown; upgrade torchwheel")
    if abi == "stable" and not (isinstance(minimum, str) and SERIES_PATTERN.fullmatch(minimum)):
        raise ManifestError(f"manifest {path}: {name}.min_torch must be major.minor for a stable entry; reinstall")
    return {"torch_abi": abi, "min_torch": minimum if abi == "stable" else None}


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
