"""Errors raised by the features package."""


class SpecError(ValueError):
    """A feature spec is malformed: the message names the file and each offending field."""


class CompileError(ValueError):
    """A fitted pipeline holds a step the NumPy inference path does not implement."""
