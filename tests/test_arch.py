"""Arch lists parse in every common spelling, and coverage follows NVIDIA's compatibility rules."""

import os
import re
from pathlib import Path

import pytest

from torchwheel.arch import coverage, format_arch_list, parse_arch, parse_arch_list
from torchwheel.compile.nvcc_archs import ToolkitArchs
from torchwheel.compile.toolchain import find_toolchain
from torchwheel.errors import SettingsError


def test_torch_style_list_gives_sorted_merged_targets() -> None:
    archs = parse_arch_list("9.0a; 8.0,12.0+PTX 8.0")
    assert format_arch_list(archs) == "8.0;9.0a;12.0+PTX"


def test_sm_and_compute_spellings_merge_into_one_target() -> None:
    assert format_arch_list(parse_arch_list("sm_90;compute_90")) == "9.0+PTX"


def test_nvcc_flags_name_machine_code_and_ptx() -> None:
    (arch,) = parse_arch_list("12.0+PTX")
    assert arch.nvcc_flags() == [
        "-gencode=arch=compute_120,code=sm_120",
        "-gencode=arch=compute_120,code=compute_120",
    ]


@pytest.mark.parametrize("text", ["9", "sm90", "9.0b", "ninety", "9.0+ptx+ptx"])
def test_a_malformed_arch_is_one_line_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(SettingsError, match=rf"CUDA arch '{re.escape(text)}' is not understood; write it as 9.0"):
        parse_arch_list(text)


def test_an_empty_list_is_refused() -> None:
    with pytest.raises(SettingsError, match="is empty; name at least one target"):
        parse_arch_list(" ; ")


@pytest.mark.parametrize(
    ("archs", "gpu", "expected"),
    [
        ("8.0", (8, 6), "sass"),  # same major, older minor
        ("8.6", (8, 0), None),  # newer minor does not run on an older GPU
        ("8.0", (9, 0), None),  # another major never runs as machine code
        ("9.0a", (9, 0), "sass"),
        ("10.0a", (10, 3), None),  # 'a' code runs only on its exact sm
        ("10.0f", (10, 3), "sass"),  # 'f' code runs on its family
        ("10.3f", (10, 0), None),
        ("8.0+PTX", (9, 0), "ptx"),  # older PTX is JIT-compiled by the driver
        ("compute_90", (8, 0), None),  # newer PTX is not
        ("compute_90a", (10, 0), None),  # 'a' PTX is tied to its sm too
    ],
)
def test_coverage_of_a_gpu(archs: str, gpu: tuple[int, int], expected: str | None) -> None:
    assert coverage(parse_arch_list(archs), *gpu) == expected


# Which toolkit offers which arch: asked of nvcc itself (`--list-gpu-arch`), worded from NVIDIA's
# release history.

CUDA_HOME = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda"))
# What nvcc 12.6 lists, as it prints it (no toolkit of that release is installed here).
CUDA_12_6 = ToolkitArchs.from_listing(
    "12.6", [f"compute_{sm}" for sm in (50, 52, 53, 60, 61, 62, 70, 72, 75, 80, 86, 87, 89, 90)], "/cuda-12.6/bin/nvcc"
)


@pytest.fixture(scope="module")
def nvcc_13() -> ToolkitArchs:
    if not (CUDA_HOME / "bin" / "nvcc").exists():
        pytest.skip("no nvcc")
    offered = find_toolchain("c++", CUDA_HOME, need_cuda=True).cuda_archs()
    assert offered is not None
    return offered


@pytest.mark.parametrize(("text", "suffix", "first"), [("8.0a", "a", "9.0"), ("sm_90f", "f", "10.0")])
def test_a_suffix_older_than_its_generation_is_refused(text: str, suffix: str, first: str) -> None:
    expected = rf"CUDA arch '{text}' does not exist: the '{suffix}' suffix starts at {first}"
    with pytest.raises(SettingsError, match=expected):
        parse_arch_list(text)


def test_nvcc_13_offers_turing_to_blackwell_with_their_suffixes(nvcc_13: ToolkitArchs) -> None:
    nvcc_13.check(parse_arch_list("7.5;8.0;8.9;9.0a;10.0f;10.3a;11.0;12.0f;12.1a+PTX"))


@pytest.mark.parametrize(
    ("text", "remedy"),
    [
        ("7.0", "the last toolkit with it is CUDA 12.9: set CUDA_HOME to such a toolkit or drop 7.0"),
        ("5.2", "CUDA 13 dropped it, the last toolkit with it is CUDA 12.9"),
        ("10.1", "CUDA 13.0 renamed it 11.0: write 11.0, or use CUDA 12.8 or 12.9"),
        ("14.0", "no CUDA release torchwheel knows of has it (this one offers 7.5, 8.0,"),
    ],
)
def test_an_arch_nvcc_13_lacks_names_the_toolkit_that_has_it(nvcc_13: ToolkitArchs, text: str, remedy: str) -> None:
    with pytest.raises(SettingsError) as error:
        nvcc_13.check(parse_arch_list(f"9.0;{text}"), "--arch-list")
    assert str(error.value).startswith(f"CUDA arch {text} in --arch-list is not offered by nvcc 13.")
    assert remedy in str(error.value)


@pytest.mark.parametrize(
    ("text", "remedy"),
    [
        ("10.0", "it needs CUDA 12.8 or newer: set CUDA_HOME to such a toolkit or drop 10.0"),
        ("12.0a", "it needs CUDA 12.8 or newer"),
        ("10.3f", "it needs CUDA 12.9 or newer"),
        ("11.0", "it needs CUDA 13.0 or newer"),
    ],
)
def test_an_arch_newer_than_the_toolkit_names_the_release_that_added_it(text: str, remedy: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(remedy)):
        CUDA_12_6.check(parse_arch_list(text))


def test_the_suffixes_follow_the_toolkit_release() -> None:
    assert CUDA_12_6.offers(parse_arch("9.0a"))
    assert not ToolkitArchs.from_listing("12.8", ["compute_100"], "nvcc").offers(parse_arch("10.0f"))
    assert ToolkitArchs.from_listing("12.9", ["compute_100"], "nvcc").offers(parse_arch("10.0f"))


@pytest.mark.parametrize(("gpu", "arch"), [((9, 0), "9.0a"), ((12, 0), "12.0a"), ((8, 6), "8.6"), ((7, 5), "7.5")])
def test_jit_builds_native_code_for_the_gpu_with_its_own_instructions(
    nvcc_13: ToolkitArchs, gpu: tuple[int, int], arch: str
) -> None:
    assert str(nvcc_13.native_arch(*gpu)) == arch


def test_a_gpu_newer_than_the_toolkit_says_which_release_it_needs() -> None:
    with pytest.raises(
        SettingsError,
        match=r"^this GPU \(sm_120\) needs CUDA 12\.8 or newer, and nvcc at /cuda-12\.6/bin/nvcc is CUDA 12\.6; "
        "set CUDA_HOME to such a toolkit$",
    ):
        CUDA_12_6.native_arch(12, 0)


def test_a_gpu_dropped_by_the_toolkit_says_which_release_still_has_it(nvcc_13: ToolkitArchs) -> None:
    with pytest.raises(SettingsError, match=r"GPU \(sm_70\) was dropped after CUDA 12\.9.*CUDA_HOME to CUDA 12\.9"):
        nvcc_13.native_arch(7, 0)


def test_another_toolkit_is_asked_for_its_own_list() -> None:
    home = os.environ.get("TORCHWHEEL_TEST_OTHER_CUDA_HOME")
    if not home:
        pytest.skip("no second CUDA toolkit: `nox -s tests` installs nvcc 13.2 from PyPI")
    offered = find_toolchain("c++", Path(home), need_cuda=True).cuda_archs()
    assert offered is not None and offered.cuda_version == "13.2" and "121" in offered.sms
