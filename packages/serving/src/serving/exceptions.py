"""Errors raised by the serving package."""


class TableError(Exception):
    """A file that cannot be read or written; the message names it."""
