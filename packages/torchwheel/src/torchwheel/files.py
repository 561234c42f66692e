"""Reading a file that must be a regular file: opened without blocking, so that a FIFO or a
device where a manifest, a matrix or a pyproject.toml should be is refused instead of waited on.
The lowest tier: the run time (runtime/trust.py) and the declarations both read through it."""

from __future__ import annotations

import errno
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from torchwheel.errors import SettingsError


class NotRegularFile(OSError):
    """A path that should be a regular file is a FIFO, a device, a directory or a socket."""


def file_kind(mode: int) -> str:
    """What a path of this mode is, for messages such as "<path> is a FIFO, not a regular file"."""
    for test, name in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISLNK, "a symlink"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a file of an unknown kind"


def open_regular(path: Path, limit: int | None = None) -> int:
    """An fd of `path` for reading, opened without blocking (a FIFO does not hang the open) and
    refused (NotRegularFile) unless it is a regular file no larger than `limit` bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(errno.EINVAL, f"is {file_kind(info.st_mode)}, not a regular file", str(path))
        if limit is not None and info.st_size > limit:
            raise NotRegularFile(errno.EFBIG, f"is {info.st_size} bytes, more than {limit}", str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of a small regular file (a manifest, an entry record); OSError otherwise."""
    fd = open_regular(path, limit)
    with os.fdopen(fd, "rb") as stream:
        return stream.read(limit + 1)


# A matrix of hundreds of cells, or a pyproject.toml, is a few KB; anything near this is not one.
TOML_MAX_BYTES = 1 << 20


def read_toml(path: Path, what: str, remedy: str) -> dict[str, Any]:
    """The TOML document at `path`, or one SettingsError line: "<what> <path> <problem>; <remedy>"."""
    try:
        raw = read_regular(path, TOML_MAX_BYTES)
    except FileNotFoundError:
        raise SettingsError(f"{what} {path} does not exist; {remedy}") from None
    except NotRegularFile as error:
        raise SettingsError(f"{what} {path} {error.strerror}; {remedy}") from None
    except OSError as error:
        raise SettingsError(f"{what} {path} cannot be read ({error.strerror or error}); {remedy}") from None
    try:
        text = raw.decode()
    except UnicodeDecodeError as error:
        raise SettingsError(
            f"{what} {path} is not UTF-8 text (byte {raw[error.start]:#04x} at offset {error.start}); {remedy}"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{what} {path} is not valid TOML ({error}); fix its syntax") from None
    except RecursionError:
        raise SettingsError(f"{what} {path} nests arrays or tables too deeply to read; fix its syntax") from None
