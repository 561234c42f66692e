"""Checking TOML tables read from users' files (the matrix, `[tool.torchwheel]`): the words
every one-line error uses for a key that is unknown or a value of the wrong kind."""

from __future__ import annotations

from typing import Any

from torchwheel.errors import SettingsError


def kind_of(value: object) -> str:
    """What TOML calls the type of `value`, for "X is an integer, not a table"."""
    kinds = (
        (bool, "a boolean"),  # before int: a bool is an int to Python
        (int, "an integer"),
        (float, "a float"),
        (str, "a string"),
        (list, "an array"),
        (dict, "a table"),
    )
    return next((name for kind, name in kinds if isinstance(value, kind)), "a date or time")


def shown(value: object) -> str:
    """`value` as a message shows it: as TOML writes a boolean, and cut short if long."""
    text = ("true" if value else "false") if isinstance(value, bool) else repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def check_known_keys(table: dict[str, Any], known: frozenset[str], label: str, where: str) -> None:
    """One line naming the first key of `table` outside `known`: a misspelt key would otherwise
    be ignored in silence."""
    unknown = sorted(set(table) - known)
    if unknown:
        raise SettingsError(
            f"{where}: unknown key {unknown[0]!r} {label}; the keys there are {', '.join(sorted(known))}: "
            "fix its spelling or remove it"
        )
