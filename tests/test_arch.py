"""Arch lists parse in every common spelling, and coverage follows NVIDIA's compatibility rules."""

import re

import pytest

from torchwheel.arch import coverage, format_arch_list, parse_arch_list
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
    with pytest.raises(
        SettingsError, match=rf"CUDA arch '{re.escape(text)}' is not understood; write it as 9.0"
    ):
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
