"""Settings come from the environment; a malformed value is one line naming variable, value, fix."""

from pathlib import Path

import pytest

from torchwheel.errors import SettingsError
from torchwheel.settings import Settings


def settings(**env: str) -> Settings:
    return Settings.from_env("minfer", "MINFER", {"HOME": "/home/u", **env})


def test_project_variable_wins_over_the_torchwheel_one() -> None:
    s = settings(MINFER_CACHE_DIR="/a", TORCHWHEEL_CACHE_DIR="/b")
    assert s.cache_dir == Path("/a")


def test_torchwheel_variable_steers_every_project() -> None:
    assert settings(TORCHWHEEL_CACHE_DIR="/b").cache_dir == Path("/b")


def test_default_cache_is_per_project_under_xdg_cache_home() -> None:
    assert settings(XDG_CACHE_HOME="/x").cache_dir == Path("/x/torchwheel/minfer")


def test_default_lock_dir_is_per_user_in_dev_shm() -> None:
    import os

    assert settings().lock_dir == Path(f"/dev/shm/torchwheel-{os.getuid()}")


def test_arch_list_falls_back_to_torch_cuda_arch_list() -> None:
    assert settings(TORCH_CUDA_ARCH_LIST="8.0").arch_list == "8.0"
    assert settings(TORCH_CUDA_ARCH_LIST="8.0", MINFER_CUDA_ARCH_LIST="9.0a").arch_list == "9.0a"


def test_a_boolean_that_is_not_one_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"^MINFER_DISABLE_JIT='maybe' is not a boolean; use 1 or 0$"):
        settings(MINFER_DISABLE_JIT="maybe")


@pytest.mark.parametrize("value", ["0", "-2", "four"])
def test_max_jobs_must_be_a_positive_number(value: str) -> None:
    with pytest.raises(SettingsError, match=rf"^MAX_JOBS='{value}' is not a positive whole number"):
        settings(MAX_JOBS=value)


def test_disable_and_force_jit_together_are_refused() -> None:
    with pytest.raises(SettingsError, match="MINFER_DISABLE_JIT and MINFER_FORCE_JIT are both set"):
        settings(MINFER_DISABLE_JIT="1", MINFER_FORCE_JIT="1")


def test_an_empty_cache_dir_is_refused() -> None:
    with pytest.raises(SettingsError, match="MINFER_CACHE_DIR is set but empty"):
        settings(MINFER_CACHE_DIR="")


def test_accept_ptx_is_off_unless_set() -> None:
    assert not settings().accept_ptx
    assert settings(MINFER_ACCEPT_PTX="1").accept_ptx
    assert settings(TORCHWHEEL_ACCEPT_PTX="yes").accept_ptx


def test_the_arch_list_remembers_the_variable_it_came_from() -> None:
    assert settings(TORCH_CUDA_ARCH_LIST="8.0").arch_list_from == "TORCH_CUDA_ARCH_LIST"
    assert settings(TORCHWHEEL_CUDA_ARCH_LIST="9.0a").arch_list_from == "TORCHWHEEL_CUDA_ARCH_LIST"
    assert settings(MINFER_CUDA_ARCH_LIST="9.0a", TORCH_CUDA_ARCH_LIST="8.0").arch_list_from == "MINFER_CUDA_ARCH_LIST"
    assert settings().arch_list_from is None


def test_the_lock_dir_is_settable() -> None:
    assert settings(MINFER_LOCK_DIR="/l").lock_dir == Path("/l")
    assert settings(TORCHWHEEL_LOCK_DIR="/t").lock_dir == Path("/t")
