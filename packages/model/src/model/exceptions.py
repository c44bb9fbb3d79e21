"""Errors raised by the model package; the CLI prints their message and exits non-zero."""


class ModelError(Exception):
    """Base class: a problem the user can act on, described in the message."""


class ConfigError(ModelError):
    """A training config is missing or malformed."""


class DataError(ModelError):
    """A data file cannot be read, or too many of its rows are invalid."""


class QualityGateError(ModelError):
    """The trained model scored below its config's quality gate."""


class ArtifactError(ModelError):
    """An artifact was refused: tampered, truncated, untrusted, or from another version."""
