"""The run-time version reading agrees with `packaging` on every version it is given."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from packaging.version import InvalidVersion, Version

from torchwheel.versions import cuda_pair, torch_series

numbers = st.integers(min_value=0, max_value=999).map(str) | st.sampled_from(["00", "007", "10"])
locals_ = st.sampled_from(["", "+cpu", "+cu130", "+cu12.8", "+rocm6.4", "+CU130", "+git.abc123"])
tails = st.sampled_from(["", "a1", "rc2", ".post1", ".dev3", "-1", "x", " "])
versions = st.builds(
    lambda parts, local, tail: ".".join(parts) + tail + local,
    st.lists(numbers, min_size=1, max_size=4),
    locals_,
    tails,
)


def packaging_series(text: str) -> str | None:
    try:
        parsed = Version(text)
    except InvalidVersion:
        return None
    return f"{parsed.major}.{parsed.minor}"


@given(versions)
def test_the_torch_series_is_what_packaging_reads(text: str) -> None:
    expected = packaging_series(text)
    if expected is None:
        try:
            torch_series(text)
        except ValueError:
            return
        raise AssertionError(f"{text!r} is no version, yet it has a series")
    assert torch_series(text) == expected


@given(versions)
def test_a_cuda_version_is_a_plain_release_of_two_numbers_or_more(text: str) -> None:
    try:
        parsed = Version(text)
    except InvalidVersion:
        assert cuda_pair(text) is None
        return
    plain = not (parsed.local or parsed.pre or parsed.post or parsed.dev) and len(parsed.release) >= 2
    assert cuda_pair(text) == ((parsed.major, parsed.minor) if plain else None)


def test_the_usual_spellings() -> None:
    assert torch_series("2.14.1+cu130") == "2.14"
    assert cuda_pair("12.8.93") == (12, 8)
    assert cuda_pair(None) is None
