"""Trust boundaries (issue 9), tried for real: another local user, made by the test, plants a
library of theirs wherever the victim's path lets them, and the victim (this process, root)
never loads it; `cache clear`/`prune` pointed at a home or `~/.cache` delete nothing of it; a
foreign or planted lock dir does not stop builds; FIFOs, devices, symlinks out of a prebuilt
dir, a hanging compiler and a stopped lock holder each end in one line, never in a hang.

The attacker's library writes a marker file from its ELF constructor when it is loaded: that the
marker never appears is the proof that it was not loaded (the fixture checks that it would)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import isolated_env, tree_state, write_tiny_project

# A victim's process: doctor (when asked), then a load of scale_a and a call of its op; prints
# one JSON object. Any exception that is not the project's own is a traceback (a failure).
VICTIM = """
import contextlib, io, json, sys
from torchwheel.errors import TorchwheelError
out = {}
if "doctor" in sys.argv:
    from torchwheel.cli import main
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["doctor", "tiny_project:PROJECT"])
    out["doctor"] = {"code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}
import torch
from torchwheel import Loader
from tiny_project import PROJECT
try:
    loaded = Loader(PROJECT).load("scale_a")
except TorchwheelError as error:
    out["error"] = {"kind": type(error).__name__, "message": str(error)}
else:
    x = torch.ones(2)
    torch.ops.tiny.scale_a(x)
    out["loaded"] = {"origin": loaded.origin, "reason": loaded.reason, "path": str(loaded.path), "value": x[0].item()}
import os  # the absolute paths among the arguments, as they are after the load
out["after"] = {p: sorted(os.listdir(p)) if os.path.isdir(p) else os.path.lexists(p) for p in sys.argv if p[:1] == "/"}
print(json.dumps(out))
"""

ATTACKERS_LIBRARY = """
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void planted(void) {
  int fd = open(MARKER, O_WRONLY | O_CREAT, 0644);
  if (fd >= 0) close(fd);
}
"""


@dataclass(frozen=True)
class Victim:
    """What one victim process did: its JSON report and its stderr (the log)."""

    report: dict
    log: str

    @property
    def error(self) -> str:
        assert "error" in self.report, f"expected a refusal, got {self.report}"
        message = self.report["error"]["message"]
        assert "\n" not in message, message  # one line
        return message

    def doctor_line(self, text: str) -> str:
        """The line of doctor's problems (stderr) that holds `text`; doctor must have failed."""
        assert self.report["doctor"]["code"] == 1, self.report["doctor"]
        found = [line for line in self.report["doctor"]["stderr"].splitlines() if text in line]
        assert found, f"doctor did not say {text!r}: {self.report['doctor']['stderr']}"
        assert found[0].startswith("torchwheel doctor: ")
        return found[0]

    @property
    def loaded(self) -> dict:
        assert "loaded" in self.report, f"expected a load, got {self.report}"
        return self.report["loaded"]


def victim(env: dict[str, str], *args: str, timeout: float = 900, within: tuple[str, ...] = ()) -> Victim:
    """Run the victim (`within`: a command that runs it, such as a private mount namespace)."""
    command = [*within, sys.executable, "-c", VICTIM, *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return Victim(json.loads(result.stdout.strip().splitlines()[-1]), result.stderr)


# -- the other user, and what they can reach -------------------------------------------------


@dataclass(frozen=True)
class OtherUser:
    name: str
    uid: int
    gid: int

    def run(self, script: str, **env: str) -> None:
        """Run a shell script as this user (their own uid and group, no other groups)."""
        result = subprocess.run(
            ["/bin/sh", "-euc", script],
            user=self.uid,
            group=self.gid,
            extra_groups=[],
            env={"PATH": "/usr/bin:/bin", **env},
            cwd="/",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"the other user's script failed: {result.stderr}"


@pytest.fixture(scope="module")
def other_user() -> Iterator[OtherUser]:
    """An unprivileged user of this machine, made for the module and removed after it."""
    if os.getuid() != 0:
        pytest.skip("needs root: the test makes a second, unprivileged user (useradd) to attack as")
    if shutil.which("useradd") is None or shutil.which("userdel") is None:
        pytest.skip("needs useradd and userdel to make a second, unprivileged user")
    import grp
    import pwd

    name = f"twattack{os.getpid() % 100000}"
    for attempt in range(10):  # /etc/passwd may be locked by a concurrent useradd
        made = subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            capture_output=True,
            text=True,
        )
        if made.returncode == 0:
            break
        time.sleep(0.5 * (attempt + 1))
    else:
        pytest.skip(f"useradd {name} failed: {made.stderr.strip()}")
    entry = pwd.getpwnam(name)
    try:
        yield OtherUser(name, entry.pw_uid, entry.pw_gid)
    finally:
        subprocess.run(["userdel", name], capture_output=True)
        with contextlib.suppress(KeyError):
            grp.getgrnam(name)
            subprocess.run(["groupdel", name], capture_output=True)


@pytest.fixture(scope="module")
def world() -> Iterator[Path]:
    """A root-owned dir (0755) under /tmp that the other user can reach (pytest's is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="torchwheel-trust-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def reachable(world: Path) -> Path:
    """A fresh dir (0755) for one test in `world`."""
    path = world / uuid.uuid4().hex[:8]
    path.mkdir(mode=0o755)
    path.chmod(0o755)
    return path


@dataclass(frozen=True)
class Planted:
    library: Path  # the attacker's .so, readable by them
    sha256: str
    marker: Path  # written by its constructor when anything loads it


@pytest.fixture(scope="module")
def planted_library(world: Path) -> Planted:
    """The attacker's library, and proof that loading it writes the marker."""
    marker = world / "the-other-users-code-ran"
    source = world / "planted.c"
    source.write_text(ATTACKERS_LIBRARY)
    library = world / "planted.so"
    subprocess.run(
        ["cc", "-shared", "-fPIC", f'-DMARKER="{marker}"', "-o", str(library), str(source)], check=True, timeout=120
    )
    library.chmod(0o644)
    subprocess.run([sys.executable, "-c", f"import ctypes; ctypes.CDLL({str(library)!r})"], check=True, timeout=60)
    assert marker.exists(), "the planted library must write its marker when loaded"
    marker.unlink()
    return Planted(library, hashlib.sha256(library.read_bytes()).hexdigest(), marker)


@pytest.fixture
def planted(planted_library: Planted) -> Iterator[Planted]:
    planted_library.marker.unlink(missing_ok=True)
    yield planted_library
    assert not planted_library.marker.exists(), "the victim loaded the other user's library"


# -- real builds to copy ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_project(tmp_path_factory.mktemp("trust") / "project")


@pytest.fixture(scope="module")
def template_cache(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A JIT cache holding one real entry of scale_a."""
    root = tmp_path_factory.mktemp("template-cache")
    assert victim(isolated_env(root, project)).loaded["origin"] == "jit-build"
    return root / "cache"


@pytest.fixture(scope="module")
def template_prebuilt(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real prebuilt dir of both specs (`torchwheel build`)."""
    root = tmp_path_factory.mktemp("template-prebuilt")
    command = [sys.executable, "-m", "torchwheel", "build", "tiny_project:PROJECT", "--out", str(root / "out")]
    result = subprocess.run(command, env=isolated_env(root, project), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return root / "out" / "data" / "aot"


def spread(tree: Path, into: Path) -> Path:
    """A copy of `tree` in `into`, every dir 0755 (others may look, nobody else may write)."""
    copy = Path(shutil.copytree(tree, into / tree.name, symlinks=True))
    for directory, _, _ in os.walk(copy):
        os.chmod(directory, 0o755)
    return copy


def the_entry(cache: Path) -> Path:
    (entry,) = [p for p in (cache / "scale_a").iterdir() if not p.name.startswith(".")]
    return entry


HOWS = ("group-writable", "world-writable", "owned by the other user")


def open_up(path: Path, how: str, user: OtherUser) -> str:
    """Give the other user a way to write `path`; return how the trust rule words it."""
    if how == "owned by the other user":
        os.chown(path, user.uid, user.gid)
        return f"{path} belongs to uid {user.uid}"
    if how == "group-writable":
        os.chown(path, 0, user.gid)
        mode = 0o775 if path.is_dir() else 0o664
    else:
        assert how == "world-writable"
        mode = 0o777 if path.is_dir() else 0o666
    path.chmod(mode)
    return f"{path} is writable by other users (mode {mode:o})"


# -- 1. another user cannot get a binary loaded ----------------------------------------------

# What the other user does with write access at each level: put their library where the
# victim's loader looks, with an entry record (or manifest) whose digest fits it.
PLANT_ENTRY = 'cp "$LIB" "$ENTRY/scale_a.so" && printf %s "$RECORD" > "$ENTRY/entry.json"'
CACHE_ATTACKS = {
    "cache dir": f'mv "$CACHE/scale_a" "$CACHE/.gone" && mkdir -p "$ENTRY" && {PLANT_ENTRY}',
    "spec dir": f'mv "$ENTRY" "$ENTRY.gone" && mkdir "$ENTRY" && {PLANT_ENTRY}',
    "entry dir": (
        'cp "$LIB" "$ENTRY/.new" && mv -f "$ENTRY/.new" "$ENTRY/scale_a.so" && '
        'printf %s "$RECORD" > "$ENTRY/.rec" && mv -f "$ENTRY/.rec" "$ENTRY/entry.json"'
    ),
    "library": 'cat "$LIB" > "$ENTRY/scale_a.so"',
}


@pytest.mark.slow  # half of the cases rebuild the entry: a JIT compile each
@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("level", CACHE_ATTACKS)
def test_another_user_cannot_get_a_library_loaded_through_the_jit_cache(
    level: str,
    how: str,
    other_user: OtherUser,
    planted: Planted,
    project: Path,
    template_cache: Path,
    world: Path,
    tmp_path: Path,
) -> None:
    cache = spread(template_cache, reachable(world))
    entry = the_entry(cache)
    opened = {
        "cache dir": cache,
        "spec dir": cache / "scale_a",
        "entry dir": entry,
        "library": entry / "scale_a.so",
    }[level]
    problem = open_up(opened, how, other_user)
    record = json.dumps({"format": 1, "torchwheel": "jit-cache-entry", "sha256": planted.sha256, "file": "scale_a.so"})
    other_user.run(CACHE_ATTACKS[level], LIB=str(planted.library), CACHE=str(cache), ENTRY=str(entry), RECORD=record)
    run = victim({**isolated_env(tmp_path, project), "TORCHWHEEL_CACHE_DIR": str(cache)})
    if level in ("cache dir", "spec dir"):
        # The dir that others can write into is named, and nothing is built or loaded in it.
        assert problem in run.error
        assert run.report["error"]["kind"] == "SettingsError"
    else:
        # The entry is refused, moved aside and rebuilt: the victim runs its own code.
        loaded = run.loaded
        assert loaded["origin"] == "jit-build" and loaded["value"] == 2.0
        assert loaded["reason"].startswith("no prebuilt binary for it is installed; cached entry refused: ")
        assert problem in loaded["reason"]
        assert hashlib.sha256(Path(loaded["path"]).read_bytes()).hexdigest() != planted.sha256


def test_a_cache_dir_inside_a_dir_others_can_write_is_refused(
    other_user: OtherUser, planted: Planted, project: Path, template_cache: Path, world: Path, tmp_path: Path
) -> None:
    parent = reachable(world)
    cache = spread(template_cache, parent)
    parent.chmod(0o777)  # no sticky bit: others may rename the cache dir and put theirs in its place
    other_user.run('mkdir "$PARENT/cache.next"', PARENT=str(parent))  # a swap, made ready
    before = tree_state(cache)
    run = victim({**isolated_env(tmp_path, project), "TORCHWHEEL_CACHE_DIR": str(cache)})
    assert f"{parent} is writable by other users (mode 777)" in run.error
    assert run.report["error"]["kind"] == "SettingsError"
    assert tree_state(cache) == before  # nothing built, loaded or marked there


PREBUILT_ATTACKS = {
    # With the prebuilt dir writable: their library under the spec's name, and a manifest that fits it.
    "prebuilt dir": (
        'mv "$AOT/scale_a" "$AOT/.gone" && mkdir "$AOT/scale_a" && cp "$LIB" "$AOT/scale_a/scale_a.so" && '
        'sed "s/$GOOD/$BAD/" "$AOT/manifest.json" > "$AOT/.new" && mv -f "$AOT/.new" "$AOT/manifest.json"'
    ),
    # With its parent writable, the whole dir could be swapped at any time: a swap made ready.
    "its parent": 'mkdir "$AOT.next"',
}


def prebuilt_env(tmp_path: Path, project: Path, aot: Path) -> dict[str, str]:
    return {**isolated_env(tmp_path, project), "TINY_AOT_PATH": str(aot), "TINY_DISABLE_JIT": "1"}


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("level", PREBUILT_ATTACKS)
def test_a_prebuilt_dir_another_user_can_write_is_skipped_with_its_reason(
    level: str,
    how: str,
    other_user: OtherUser,
    planted: Planted,
    project: Path,
    template_prebuilt: Path,
    world: Path,
    tmp_path: Path,
) -> None:
    aot = spread(template_prebuilt, reachable(world))
    good = json.loads((aot / "manifest.json").read_text())["specs"]["scale_a"]["sha256"]
    problem = open_up(aot if level == "prebuilt dir" else aot.parent, how, other_user)
    other_user.run(PREBUILT_ATTACKS[level], AOT=str(aot), LIB=str(planted.library), GOOD=good, BAD=planted.sha256)
    run = victim(prebuilt_env(tmp_path, project, aot), "doctor")
    skipped = f"prebuilt dir {aot} is skipped: {problem}"
    remedy = "; install it where only you or root can write (or chmod go-w the directory named)"
    assert f"torchwheel doctor: {skipped}" in run.doctor_line(skipped) and remedy in run.doctor_line(skipped)
    assert run.report["doctor"]["code"] == 1 and skipped in run.report["doctor"]["stdout"]
    assert run.error.startswith(f"tiny: cannot load scale_a: no prebuilt binary for it is installed; {skipped}")
    assert remedy in run.error
    assert run.error.endswith("JIT is disabled by TINY_DISABLE_JIT, so install a matching prebuilt package or unset it")


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("level", ["spec dir", "library"])
def test_a_prebuilt_library_another_user_can_change_is_refused_before_it_is_hashed(
    level: str,
    how: str,
    other_user: OtherUser,
    planted: Planted,
    project: Path,
    template_prebuilt: Path,
    world: Path,
    tmp_path: Path,
) -> None:
    aot = spread(template_prebuilt, reachable(world))
    library = aot / "scale_a" / "scale_a.so"
    problem = open_up(library.parent if level == "spec dir" else library, how, other_user)
    swap = 'cp "$LIB" "$SO.new" && mv -f "$SO.new" "$SO"' if level == "spec dir" else 'cat "$LIB" > "$SO"'
    other_user.run(swap, LIB=str(planted.library), SO=str(library))
    run = victim(prebuilt_env(tmp_path, project, aot), "doctor")
    assert f"prebuilt {library}: {problem}" in run.doctor_line(f"prebuilt {library}: ")
    assert run.error.startswith(f"tiny: cannot load scale_a: prebuilt {library}: {problem}")
    assert "sha256" not in run.error  # refused for who can write it, before any hash


# -- 2. symlinks out of a prebuilt dir -------------------------------------------------------


@pytest.fixture
def prebuilt_copy(template_prebuilt: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(template_prebuilt, tmp_path / "aot", symlinks=True))


def test_a_spec_dir_that_is_a_symlink_out_of_the_prebuilt_dir_is_refused(
    prebuilt_copy: Path, project: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.move(prebuilt_copy / "scale_a", outside / "scale_a")
    (prebuilt_copy / "scale_a").symlink_to(outside / "scale_a")
    run = victim(prebuilt_env(tmp_path, project, prebuilt_copy))
    library = prebuilt_copy / "scale_a" / "scale_a.so"
    assert f"prebuilt {library}: {library} leads out of {prebuilt_copy} (to {outside}/scale_a/scale_a.so)" in run.error


def test_a_library_that_is_a_symlink_out_of_the_prebuilt_dir_is_refused(
    prebuilt_copy: Path, project: Path, tmp_path: Path
) -> None:
    library = prebuilt_copy / "scale_a" / "scale_a.so"
    elsewhere = shutil.move(library, tmp_path / "elsewhere.so")
    library.symlink_to(elsewhere)
    run = victim(prebuilt_env(tmp_path, project, prebuilt_copy), "doctor")
    line = f"prebuilt {library}: {library} leads out of {prebuilt_copy} (to {elsewhere})"
    assert line in run.error and line in run.doctor_line(line)


def test_a_library_that_is_a_symlink_inside_the_prebuilt_dir_still_loads(
    prebuilt_copy: Path, project: Path, tmp_path: Path
) -> None:
    library = prebuilt_copy / "scale_a" / "scale_a.so"
    shutil.move(library, prebuilt_copy / "scale_a" / "real.so")
    library.symlink_to("real.so")
    loaded = victim(prebuilt_env(tmp_path, project, prebuilt_copy)).loaded
    assert loaded["origin"] == "prebuilt" and loaded["value"] == 2.0


# -- 3. FIFOs and devices where files should be ----------------------------------------------


def make_fifo(path: Path) -> str:
    path.unlink()
    os.mkfifo(path)  # nothing ever writes to it: a read would wait for ever
    return "is a FIFO, not a regular file"


def make_zero_link(path: Path) -> str:
    path.unlink()
    path.symlink_to("/dev/zero")  # a read would never end
    return "(to /dev/zero)"


def make_device(path: Path) -> str:
    if os.getuid() != 0:
        pytest.skip("making a device node (mknod) needs root")
    path.unlink()
    os.mknod(path, 0o644 | 0o020000, os.makedev(1, 5))  # a character device: /dev/zero's numbers
    return "is a character device, not a regular file"


@pytest.mark.parametrize("make", [make_fifo, make_zero_link, make_device], ids=["fifo", "link-to-dev-zero", "device"])
def test_a_library_that_is_no_regular_file_is_refused_in_one_line_without_waiting(
    make: Callable[[Path], str], prebuilt_copy: Path, project: Path, tmp_path: Path
) -> None:
    library = prebuilt_copy / "scale_a" / "scale_a.so"
    why = make(library)
    run = victim(prebuilt_env(tmp_path, project, prebuilt_copy), "doctor", timeout=120)
    assert f"prebuilt {library}: {library} " in run.error and why in run.error
    assert why in run.doctor_line(f"prebuilt {library}: {library} ")


@pytest.mark.parametrize("make", [make_fifo, make_zero_link], ids=["fifo", "link-to-dev-zero"])
def test_a_manifest_that_is_no_regular_file_is_refused_in_one_line_without_waiting(
    make: Callable[[Path], str], prebuilt_copy: Path, project: Path, tmp_path: Path
) -> None:
    manifest = prebuilt_copy / "manifest.json"
    make(manifest)
    kind = "a FIFO" if manifest.is_fifo() else "a character device"
    run = victim(prebuilt_env(tmp_path, project, prebuilt_copy), "doctor", timeout=120)
    line = f"manifest {manifest} is unreadable (is {kind}, not a regular file); reinstall the package that holds it"
    assert line in run.error
    assert run.doctor_line(line).startswith(f"torchwheel doctor: {line}")


# -- 4. cache clear and prune in dirs that are not torchwheel's ------------------------------


def a_home(root: Path) -> Path:
    """A home dir: dotfiles, a project tree (with a name shaped like a spec), links out."""
    home = root / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    (home / ".ssh" / "id_ed25519").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (home / ".bashrc").write_text("export PATH\n")
    thesis = home / "projects" / "thesis"
    (thesis / "src").mkdir(parents=True)
    (thesis / "src" / "main.py").write_text("print('hello')\n")
    (thesis / ".git").mkdir()
    (thesis / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    # A dir named like a cache key in a dir named like a spec: still not an entry of ours.
    (home / "scale_a" / ("0123456789abcdef" * 2)).mkdir(parents=True)
    (home / "scale_a" / ("0123456789abcdef" * 2) / "results.csv").write_text("1,2\n")
    (home / "notes").symlink_to(thesis)
    (home / "etc").symlink_to("/etc")
    home.chmod(0o700)
    return home


def a_dot_cache(root: Path) -> Path:
    """A `~/.cache`: other tools' caches (dirs of dirs, files, links), and one entry shaped as ours."""
    cache = root / "dot-cache"
    blob = cache / "pip" / "http-v2" / "a" / "b" / "c"
    blob.mkdir(parents=True)
    (blob / "0a1b2c.body").write_bytes(b"\x00" * 100)
    snapshot = cache / "huggingface" / "hub" / "models--tiny" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (cache / "huggingface" / "hub" / "models--tiny" / "blobs").mkdir()
    (cache / "huggingface" / "hub" / "models--tiny" / "blobs" / "e3b0").write_text("{}")
    (snapshot / "config.json").symlink_to("../../blobs/e3b0")
    (cache / "torch" / "kernels").mkdir(parents=True)
    (cache / "motd.legal-displayed").write_text("")
    (cache / "uv").symlink_to(root / "nowhere")
    key = "fedcba9876543210" * 2
    (cache / "scale_a" / key).mkdir(parents=True)
    record = {"format": 1, "torchwheel": "jit-cache-entry", "sha256": "0" * 64, "file": "scale_a.so"}
    (cache / "scale_a" / key / "entry.json").write_text(json.dumps(record))
    (cache / "scale_a" / key / "scale_a.so").write_bytes(b"\x7fELF")
    (cache / "scale_a" / f".build-{key}-{socket.gethostname()}-1-abc").mkdir()  # as a dead build's
    return cache


CACHE_COMMANDS = {
    "clear": ("clear",),
    "prune-older-than": ("prune", "--older-than", "1m"),
    "prune-max-size": ("prune", "--max-size", "0"),
}


@pytest.mark.parametrize("command", CACHE_COMMANDS)
@pytest.mark.parametrize("make", [a_home, a_dot_cache], ids=["home", "dot-cache"])
def test_cache_commands_on_a_dir_of_other_files_delete_nothing_and_say_what_they_found(
    make: Callable[[Path], Path], command: str, project: Path, tmp_path: Path
) -> None:
    directory = make(tmp_path)
    before = tree_state(directory)
    env = {**isolated_env(tmp_path, project), "TINY_CACHE_DIR": str(directory)}
    argv = [sys.executable, "-m", "torchwheel", "cache", *CACHE_COMMANDS[command], "tiny_project:PROJECT"]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    found = re.fullmatch(
        rf"torchwheel: error: cache dir {re.escape(str(directory))} holds (\S+) and (\d+) more, which torchwheel did "
        r"not make, so it deletes nothing there; move those away, or set TINY_CACHE_DIR to a directory of "
        r"torchwheel's own",
        line,
    )
    assert found, line
    assert os.path.relpath(found.group(1), directory) in before
    assert tree_state(directory) == before


# -- 5. a lock dir taken by another user -----------------------------------------------------


@pytest.fixture(scope="module")
def private_shm() -> Callable[[str], tuple[str, ...]]:
    """A command prefix that runs the victim with a /dev/shm of its own (a mount namespace),
    after `setup` (shell) ran there: the machine's /dev/shm/torchwheel-<uid> is not touched."""
    probe = ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", "mount -t tmpfs none /dev/shm"]
    if os.getuid() != 0 or not shutil.which("unshare") or subprocess.run(probe, capture_output=True).returncode:
        pytest.skip("needs root and mount namespaces (unshare --mount) for a /dev/shm of the test's own")

    def within(setup: str) -> tuple[str, ...]:
        script = f'mount -t tmpfs -o mode=1777 none /dev/shm && {setup} && exec "$@"'
        return ("unshare", "--mount", "--propagation", "private", "/bin/sh", "-euc", script, "sh")

    return within


def as_user(user: OtherUser, command: str) -> str:
    return f"setpriv --reuid={user.uid} --regid={user.gid} --clear-groups /bin/sh -c '{command}'"


def test_a_lock_dir_made_first_by_another_user_does_not_stop_builds(
    other_user: OtherUser, private_shm, project: Path, tmp_path: Path
) -> None:
    shm = f"/dev/shm/torchwheel-{os.getuid()}"
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = isolated_env(tmp_path, project)
    del env["TORCHWHEEL_LOCK_DIR"]  # the default list: /dev/shm first
    env["XDG_RUNTIME_DIR"] = str(runtime)
    run = victim(env, shm, within=private_shm(as_user(other_user, f"mkdir -m 777 {shm}")))
    assert run.loaded["origin"] == "jit-build" and run.loaded["value"] == 2.0
    line = (
        f"[torchwheel] tiny: lock dir {shm} belongs to uid {other_user.uid}, not to you (uid 0): "
        f"using {runtime}/torchwheel for locks instead"
    )
    assert line in run.log.splitlines()
    assert run.report["after"][shm] == []  # nothing of ours in their dir
    assert [p.suffix for p in (runtime / "torchwheel").iterdir()] == [".lock"]


def test_a_symlink_planted_as_the_lock_dir_does_not_stop_builds_or_move_the_locks(
    other_user: OtherUser, private_shm, project: Path, tmp_path: Path
) -> None:
    shm = f"/dev/shm/torchwheel-{os.getuid()}"
    target = tmp_path / "victims-home" / "locks"
    target.parent.mkdir()
    env = isolated_env(tmp_path, project)
    del env["TORCHWHEEL_LOCK_DIR"]
    env.pop("XDG_RUNTIME_DIR", None)  # the last resort then: <cache>/.locks
    run = victim(env, str(target), within=private_shm(as_user(other_user, f"ln -s {target} {shm}")))
    assert run.loaded["origin"] == "jit-build" and run.loaded["value"] == 2.0
    line = (
        f"[torchwheel] tiny: lock dir {shm} is a symlink (to {target}), not a dir of yours: "
        f"using {tmp_path}/cache/.locks for locks instead"
    )
    assert line in run.log.splitlines()
    assert run.report["after"][str(target)] is False and not target.exists()


# -- 6. no unbounded wait --------------------------------------------------------------------

HANGING_CXX = """#!/bin/sh
for arg in "$@"; do
  if [ "$arg" = --version ]; then exec c++ "$@"; fi
done
echo $$ >> "$HANGING_PIDS"
sleep 3600 &
echo $! >> "$HANGING_PIDS"
wait
"""


def running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def test_a_hanging_compiler_is_stopped_by_the_build_step_timeout_with_a_clear_line(
    project: Path, tmp_path: Path
) -> None:
    compiler = tmp_path / "bin" / "hanging-c++"
    compiler.parent.mkdir()
    compiler.write_text(HANGING_CXX)
    compiler.chmod(0o755)
    pids = tmp_path / "pids"
    env = {**isolated_env(tmp_path, project), "CXX": str(compiler), "TINY_BUILD_TIMEOUT": "3"}
    started = time.monotonic()
    run = victim({**env, "HANGING_PIDS": str(pids)}, timeout=300)
    assert time.monotonic() - started < 120
    assert run.report["error"]["kind"] == "BuildError"
    found = re.fullmatch(
        r"scale_a: a build step ran over TINY_BUILD_TIMEOUT=3 s \((.+)\) and was stopped; build dir (\S+); "
        r"check the compiler, or raise TINY_BUILD_TIMEOUT",
        run.error,
    )
    assert found, run.error
    assert set(found.group(1).split(", ")) <= {"kernel.cpp", "scale_a.cpp"}
    assert Path(found.group(2)).is_dir()
    deadline = time.monotonic() + 20
    hung = [int(pid) for pid in pids.read_text().split()]
    while any(running(pid) for pid in hung) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert hung and not any(running(pid) for pid in hung)  # the compilers were ended too


LOCK_HOLDER = """
import sys, time
from torchwheel import Loader
from torchwheel.runtime.jit_cache import lock_name
from torchwheel.runtime.lock import exclusive_lock, usable_lock_dir
from tiny_project import PROJECT
loader = Loader(PROJECT)
job = loader.plan("scale_a").job
lock_dir = usable_lock_dir(loader.settings.lock_dirs, loader.settings.origin("lock_dir"), print)
with exclusive_lock(lock_dir / lock_name("scale_a", job.key)):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_wait_on_a_stopped_lock_holder_ends_with_a_line_that_says_it_is_stopped(
    project: Path, tmp_path: Path
) -> None:
    env = {**isolated_env(tmp_path, project), "TINY_LOCK_TIMEOUT": "2"}
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        holder.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        run = victim(env, timeout=300)
        waited = time.monotonic() - started
    finally:
        holder.send_signal(signal.SIGCONT)
        holder.kill()
        holder.wait()
    assert waited < 60
    assert run.report["error"]["kind"] == "LoadError"
    stopped = f"held by pid {holder.pid} (stopped (SIGSTOP): it will not finish until resumed, running for "
    found = re.fullmatch(
        rf"gave up waiting for (\S+\.lock) after \d+ s: {re.escape(stopped)}\d+ s\); resume it "
        rf"\(kill -CONT {holder.pid}\) or end it, or raise TINY_LOCK_TIMEOUT",
        run.error,
    )
    assert found, run.error
    assert f"waiting for {Path(found.group(1)).name}, {stopped}" in run.log


# -- 7. a failed JIT build -------------------------------------------------------------------


def test_a_failed_jit_build_keeps_its_build_dir_names_it_and_carries_the_first_errors(tmp_path: Path) -> None:
    project = write_tiny_project(tmp_path / "project")
    (project / "src" / "scale_a.cpp").write_text("this is not C++;\n")
    run = victim(isolated_env(tmp_path, project))
    assert run.report["error"]["kind"] == "BuildError"
    found = re.fullmatch(
        r"scale_a: compiling scale_a failed \(ninja exit 1\); first errors: (.+); build dir (\S+) "
        r"\(full log: (\S+)\)",
        run.error,
    )
    assert found, run.error
    build_dir, log = Path(found.group(2)), Path(found.group(3))
    assert build_dir.is_dir() and build_dir.parent.name.startswith(".build-")
    assert build_dir.parent.parent == tmp_path / "cache" / "scale_a"
    compiler_errors = [line.strip() for line in log.read_text().splitlines() if "error" in line]
    assert compiler_errors and found.group(1).startswith(compiler_errors[0])
    assert "scale_a.cpp:1:1: error: " in found.group(1)  # the compiler's words, with file and line


# -- 8. cache clear while others load and build ----------------------------------------------

LOOP_S = 60
LOAD_BOTH = """
import json, torch
from torchwheel import Loader
from tiny_project import PROJECT
loader = Loader(PROJECT)
out = {}
for name in ("scale_a", "scale_b"):
    loaded = loader.load(name)
    x = torch.ones(2)
    getattr(torch.ops.tiny, name)(x)
    out[name] = [loaded.origin, x[0].item()]
print(json.dumps(out))
"""


@pytest.mark.slow
def test_cache_clear_in_a_loop_during_loads_and_builds_fails_no_load_and_leaves_no_partial_entry(
    project: Path, tmp_path: Path
) -> None:
    env = isolated_env(tmp_path, project)
    deadline = time.monotonic() + LOOP_S
    loads: list[subprocess.CompletedProcess] = []
    clears: list[subprocess.CompletedProcess] = []

    def keep_loading() -> None:
        while time.monotonic() < deadline:
            command = [sys.executable, "-c", LOAD_BOTH]
            loads.append(subprocess.run(command, env=env, capture_output=True, text=True, timeout=900))

    def keep_clearing() -> None:
        command = [sys.executable, "-m", "torchwheel", "cache", "clear", "tiny_project:PROJECT"]
        while time.monotonic() < deadline:
            clears.append(subprocess.run(command, env=env, capture_output=True, text=True, timeout=300))
            time.sleep(0.5)  # so that some loads find an entry, and others build one

    threads = [threading.Thread(target=keep_loading) for _ in range(2)] + [threading.Thread(target=keep_clearing)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failed = [r.stderr for r in loads if r.returncode != 0]
    assert not failed, failed[0]
    assert len(loads) >= 2 and len(clears) >= 10
    for result in loads:
        assert {v for _, v in json.loads(result.stdout.strip().splitlines()[-1]).values()} == {2.0}
    assert [r.stderr for r in clears if r.returncode != 0] == []
    assert any("removed 0 entries" not in r.stdout for r in clears)  # clear did remove entries meanwhile
    cache = tmp_path / "cache"
    for spec in ("scale_a", "scale_b"):
        for entry in (cache / spec).iterdir() if (cache / spec).exists() else ():
            assert not entry.name.startswith("."), f"left behind: {entry}"
            record = json.loads((entry / "entry.json").read_text())
            assert hashlib.sha256((entry / f"{spec}.so").read_bytes()).hexdigest() == record["sha256"]
