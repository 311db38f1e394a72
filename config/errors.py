"""The roots of Quarry's error tree and ConfigError, which the settings raise.

They live here because config is the leaf of the dependency map: it imports nothing
of Quarry, yet a bad setting must raise the same ConfigError (a PermanentError) that
the rest of the service catches. pipeline/errors.py draws the whole tree, re-exports
these classes and defines every other error.

Must not import: anything of Quarry (config is the leaf).
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error Quarry raises on purpose."""


class TransientError(PipelineError):
    """The work may succeed if tried again later."""


class PermanentError(PipelineError):
    """Trying again will not help: the input or the configuration is wrong."""


class ConfigError(PermanentError):
    """A setting is unknown or has an invalid value."""
