"""The readers of untrusted bytes, fed random mutations of real inputs: the audit (a `.so` that
`torchwheel build` made) and the manifest reader (the `manifest.json` beside it). Whatever the
bytes, the only exception either may raise is the project's own (`TorchwheelError`): one line for
the user, never a traceback, and never a hang (each example runs under a watchdog).

Bounded and repeatable: a fixed number of examples from a derandomized search, no example
database, about half a minute on 2 cores, most of it the one build this module makes."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import pytest
from elftools.elf.elffile import ELFFile
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import isolated_env
from torchwheel.errors import TorchwheelError
from torchwheel.release.audit import audit_paths
from torchwheel.runtime.manifest import MANIFEST_NAME, read_manifest
from torchwheel.runtime.torch_install import TorchInstall

SPEC = "rmsnorm_fp32_cpu"
# A full audit of the clean file takes 0.2 s; a mutated one that parses no further is quicker.
WATCHDOG_S = 20
FUZZ = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass(frozen=True)
class Built:
    so: bytes = field(repr=False)  # a failing example prints its fixture: not 40 KB of bytes
    manifest: bytes = field(repr=False)
    regions: tuple[tuple[int, int], ...]  # [start, end) of the bytes the parsers read first
    scratch: Path  # where each example writes its input
    target: TorchInstall


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """One minfer CPU spec, built once for the module by `torchwheel build`."""
    out = tmp_path_factory.mktemp("fuzz")
    result = subprocess.run(
        [sys.executable, "-m", "torchwheel", "build", "minfer", "--device", "cpu", "--spec", SPEC, "--out", str(out)],
        env=isolated_env(out),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    aot = out / "data" / "aot"
    so = (aot / SPEC / f"{SPEC}.so").read_bytes()
    (out / "scratch").mkdir()
    return Built(so, (aot / MANIFEST_NAME).read_bytes(), structure(so), out / "scratch", TorchInstall.running())


def structure(so: bytes) -> tuple[tuple[int, int], ...]:
    """The headers and the tables the audit walks: where a flipped byte changes what is parsed,
    rather than an instruction nobody reads."""
    elf = ELFFile(io.BytesIO(so))
    regions = [
        (0, 64),
        (elf["e_phoff"], elf["e_phoff"] + elf["e_phnum"] * elf["e_phentsize"]),
        (elf["e_shoff"], elf["e_shoff"] + elf["e_shnum"] * elf["e_shentsize"]),
    ]
    tables = {".dynamic", ".dynsym", ".dynstr", ".gnu.version", ".gnu.version_r", ".gnu.hash", ".shstrtab"}
    regions += [(s["sh_offset"], s["sh_offset"] + s["sh_size"]) for s in elf.iter_sections() if s.name in tables]
    return tuple((int(start), int(end)) for start, end in regions if end > start)


# One mutation: ("flip", position, xor mask), ("insert", position, bytes) or ("truncate", position).
Mutation = tuple[str, int, bytes]


def mutations(size: int, regions: tuple[tuple[int, int], ...]) -> st.SearchStrategy[list[Mutation]]:
    structural = st.sampled_from(regions).flatmap(lambda r: st.integers(r[0], r[1] - 1))
    position = st.one_of(structural, structural, st.integers(0, size - 1))  # two in three on structure
    one = st.one_of(
        st.tuples(st.just("flip"), position, st.binary(min_size=1, max_size=8)),
        st.tuples(st.just("insert"), position, st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("truncate"), position, st.just(b"")),
    )
    return st.lists(one, min_size=1, max_size=6)


def mutate(data: bytes, changes: list[Mutation]) -> bytes:
    out = bytearray(data)
    for kind, position, payload in changes:
        at = position % max(len(out), 1)
        if kind == "flip":
            out[at : at + len(payload)] = bytes(
                a ^ b for a, b in zip(out[at : at + len(payload)], payload, strict=False)
            )
        elif kind == "insert":
            out[at:at] = payload
        else:
            del out[at:]
    return bytes(out)


@contextmanager
def watchdog(seconds: int) -> Iterator[None]:
    """Fail the example (with its input, which hypothesis then shrinks) if it runs too long."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise AssertionError(f"no answer in {seconds} s: the reader hangs on this input")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def only_our_errors(call: Callable[[], object]) -> None:
    """Run `call`; an error of ours is an answer, anything else fails the example."""
    with watchdog(WATCHDOG_S):
        try:
            call()
        except TorchwheelError as error:
            assert "\n" not in str(error), str(error)
            event(f"refused: {type(error).__name__}")  # --hypothesis-show-statistics shows the mix
        else:
            event("accepted")


@given(data=st.data())
@FUZZ
def test_a_mutated_shared_library_is_audited_or_refused_with_our_error(built: Built, data: st.DataObject) -> None:
    changes = data.draw(mutations(len(built.so), built.regions))
    so = built.scratch / "mutated.so"
    so.write_bytes(mutate(built.so, changes))
    only_our_errors(lambda: audit_paths([so], built.target))


@given(data=st.data())
@settings(FUZZ, max_examples=300)
def test_a_mutated_manifest_is_read_or_refused_with_our_error(built: Built, data: st.DataObject) -> None:
    changes = data.draw(mutations(len(built.manifest), ((0, len(built.manifest)),)))
    (built.scratch / MANIFEST_NAME).write_bytes(mutate(built.manifest, changes))
    only_our_errors(lambda: read_manifest(built.scratch))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def replace_at(document: object, path: list[int], value: object) -> object:
    """`document` with the node that `path` picks (child indices, taken modulo) replaced."""
    if path and isinstance(document, dict) and document:
        key = list(document)[path[0] % len(document)]
        return {**document, key: replace_at(document[key], path[1:], value)}
    if path and isinstance(document, list) and document:
        index = path[0] % len(document)
        return [*document[:index], replace_at(document[index], path[1:], value), *document[index + 1 :]]
    return value


@given(path=st.lists(st.integers(0, 50), max_size=4), value=JSON)
@settings(FUZZ, max_examples=300)
def test_a_manifest_with_any_value_anywhere_is_read_or_refused_with_our_error(
    built: Built, path: list[int], value: object
) -> None:
    document = replace_at(json.loads(built.manifest), path, value)
    (built.scratch / MANIFEST_NAME).write_text(json.dumps(document))
    only_our_errors(lambda: read_manifest(built.scratch))
