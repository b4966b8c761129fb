"""Errors a user can act on: each carries one line naming the problem and the fix."""


class DarMmsaError(Exception):
    """Base class: the message is one line, printed as-is by the CLIs (exit code 2)."""


class ConfigError(DarMmsaError):
    """Unknown model or dataset, bad missing rate, malformed config."""


class DataError(DarMmsaError):
    """Missing, unreadable or malformed feature pickle."""


class PretrainedError(DarMmsaError):
    """The `pretrained` text encoder cannot be found locally."""


class StorageError(DarMmsaError):
    """The results folder cannot hold what must be written (full disk), or holds a damaged checkpoint."""
