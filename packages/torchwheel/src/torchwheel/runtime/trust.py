"""The trust rule: which directories torchwheel may load code from, keep its cache in, or delete in.

A directory that another user can write into lets that user swap a `.so` we would then load
(or an entry we would then delete), so every such directory must belong to the user and be
writable by no one else.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from torchwheel.errors import SettingsError


def private_dir_problem(path: Path, what: str, variable: str | None = None) -> str | None:
    """Why `path` must not hold our cache or locks, as one line; None when it may (or is absent).

    The checks apply to the directory a symlink resolves to: a link is fine when its target is
    ours alone. Anything another user can write into could swap a `.so` we would then load.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as error:  # e.g. ENOTDIR: a parent is a file
        return f"{what} {path} cannot be used ({error.strerror}); {_elsewhere(variable)}"
    mine = stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
    if mine and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None  # the common case, on every load: one stat and no more
    resolved = os.path.realpath(path)
    shown = str(path) if resolved == str(path) else f"{path} (-> {resolved})"
    if not stat.S_ISDIR(info.st_mode):
        return f"{what} {shown} is not a directory; {_elsewhere(variable)}"
    if info.st_uid != os.getuid():
        return f"{what} {shown} belongs to uid {info.st_uid}, not to you (uid {os.getuid()}); {_elsewhere(variable)}"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (
            f"{what} {shown} is writable by other users (mode {stat.S_IMODE(info.st_mode):o}); "
            f"run chmod 700 {resolved} or {_elsewhere(variable)}"
        )
    return None


def _elsewhere(variable: str | None) -> str:
    if variable:
        return f"set {variable} to a directory of your own"
    return "use a directory of your own"


def ensure_private_dir(path: Path, what: str, variable: str | None = None) -> Path:
    """Create `path` (mode 0700) if missing; refuse one that another user could write into."""
    if problem := private_dir_problem(path, what, variable):
        raise SettingsError(problem)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise SettingsError(f"{what} {path} cannot be created ({error.strerror}); {_elsewhere(variable)}") from error
    # Checked again: it may have been made by someone else between the first check and mkdir.
    if problem := private_dir_problem(path, what, variable):
        raise SettingsError(problem)
    return path
