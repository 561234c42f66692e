"""The trust rule: which directories torchwheel may load code from, keep its cache in, or delete in.

Code is loaded only from a regular file reached through directories that belong to you or to
root and that no one else can write: the directory holding the file, every directory between it
and the prebuilt or cache dir, and every directory above, both as the path is written and as it
resolves (a symlink is only as safe as the directory it sits in and the one it leads to). Above
the directories torchwheel owns, a directory that others may write is accepted only with the
sticky bit (`/tmp`): others can add their own entries there, never rename or replace ours.

Not covered: POSIX ACLs and file capabilities (only owner and mode bits are read); another
process of the same user (it could write anything we could); a root-owned directory that root
made writable through some other means. A group-shared install (mode 775 with a shared group)
is refused: torchwheel cannot tell the group's members from strangers.

Every file torchwheel reads or hashes is opened without blocking and checked to be a regular
file first, so a FIFO or a device where a manifest or `.so` should be is refused, not waited on.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from torchwheel.errors import SettingsError
from torchwheel.files import file_kind


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
        return _above_problem(path, what, variable)  # the common case: a stat per dir above, no more
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


def _above_problem(path: Path, what: str, variable: str | None) -> str | None:
    """Why a dir of ours is still not safe: a dir above it (as written or as it resolves) that
    another user could rename it in, and put a dir of theirs in its place."""
    literal, real = os.path.abspath(path), os.path.realpath(path)
    try:
        for start in dict.fromkeys((os.path.dirname(literal), os.path.dirname(real))):
            for step in _steps(start, "/"):
                if problem := _dir_problem(step, own=False):
                    return f"{what} {path} is not safe from other users: {problem}; {_elsewhere(variable)}"
    except OSError as error:
        return f"{what} {path} cannot be examined ({error.strerror}: {error.filename}); {_elsewhere(variable)}"
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


_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


def _dir_problem(path: str, *, own: bool) -> str | None:
    """Why directory `path` (one step of a chain) is not safe; `own`: one of ours, which no one
    else may write even with the sticky bit (they could add the file we are about to look for)."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        return None  # judged by the directory it sits in (a step of this chain) and its target (the resolved chain)
    if not stat.S_ISDIR(info.st_mode):
        return f"{path} is {file_kind(info.st_mode)}"
    if info.st_uid not in (os.getuid(), 0):
        return f"{path} belongs to uid {info.st_uid}, neither you (uid {os.getuid()}) nor root"
    if info.st_mode & _OTHERS_WRITE and (own or not info.st_mode & stat.S_ISVTX):
        return f"{path} is writable by other users (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def _steps(path: str, down_to: str) -> list[str]:
    """`path` and its parents up to and including `down_to` (which must contain it)."""
    found = [path]
    while path != down_to and path != os.path.dirname(path):
        path = os.path.dirname(path)
        found.append(path)
    return found


def trusted_dir_problem(directory: Path, inner: Path | None = None) -> str | None:
    """Why code under `directory` must not be loaded (one line, without the remedy), or None.

    `inner`, a directory inside `directory` (a spec's subdir, a cache entry), must resolve inside
    it and is checked as one of ours too, with every step between the two.
    """
    top, real_top = os.path.abspath(directory), os.path.realpath(directory)
    ours = {top, real_top}
    if inner is not None:
        literal, real = os.path.abspath(inner), os.path.realpath(inner)
        if os.path.commonpath([real, real_top]) != real_top or os.path.commonpath([literal, top]) != top:
            return f"{inner} leads out of {directory} (to {real})"
        ours.update(_steps(literal, top), _steps(real, real_top))
    try:
        for start in sorted(ours):
            for step in _steps(start, "/"):
                if problem := _dir_problem(step, own=step in ours):
                    return problem
    except OSError as error:
        return f"{error.filename or directory} cannot be examined ({error.strerror})"
    return None


def untrusted_prebuilt(directory: Path, problem: str) -> str:
    """The line that says a prebuilt dir is skipped, and why."""
    return (
        f"prebuilt dir {directory} is skipped: {problem}; install it where only you or root can write "
        "(or chmod go-w the directory named)"
    )


def trusted_file_problem(directory: Path, relative: str) -> str | None:
    """Why `directory/relative` must not be loaded: a path that leaves `directory` (by `..` or by
    a symlink), a file that is not regular, or one that another user owns or can write; the
    directories between are checked as `trusted_dir_problem` checks `directory` (the caller has
    checked `directory` itself)."""
    path = Path(directory) / relative
    if not os.path.lexists(path):
        return None  # nothing to load; the sha256 check says it is missing
    real = os.path.realpath(path)
    if os.path.commonpath([real, os.path.realpath(directory)]) != os.path.realpath(directory):
        return f"{path} leads out of {directory} (to {real})"
    if problem := trusted_dir_problem(directory, path.parent):
        return problem
    try:
        info = os.stat(real)
    except OSError as error:
        return f"{path} is missing ({error.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return f"{path} is {file_kind(info.st_mode)}, not a regular file"
    if info.st_uid not in (os.getuid(), 0):
        return f"{path} belongs to uid {info.st_uid}, neither you (uid {os.getuid()}) nor root"
    if info.st_mode & _OTHERS_WRITE:
        return f"{path} is writable by other users (mode {stat.S_IMODE(info.st_mode):o})"
    return None
