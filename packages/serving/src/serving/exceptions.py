"""Errors raised by the serving package."""


class TableError(Exception):
    """A file that cannot be read or written; the message names it."""


class StartupError(Exception):
    """The service cannot start in this environment; the message says why, in one line."""
