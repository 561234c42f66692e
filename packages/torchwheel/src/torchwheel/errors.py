"""The exceptions a user can cause.

Every message is one line that names what is wrong, the value that is wrong, and what to do
about it; the CLI prints it as is and exits non-zero.
"""

from __future__ import annotations


class TorchwheelError(Exception):
    """Base of every error caused by input, settings or the environment (not by a bug)."""


class SpecError(TorchwheelError):
    """A JitSpec, or a set of them, is malformed."""


class SettingsError(TorchwheelError):
    """An environment variable or command-line value is malformed."""


class ToolchainError(TorchwheelError):
    """A compiler or toolkit that a build needs is missing or unusable."""


class BuildError(TorchwheelError):
    """ninja or a compiler failed; `log` holds the tail of their output."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


class ManifestError(TorchwheelError):
    """A manifest.json is unreadable or does not follow the schema."""


class LoadError(TorchwheelError):
    """No usable binary for a spec, and JIT could not (or may not) provide one."""
