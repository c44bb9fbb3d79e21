"""Reading an artifact's folder once: each file's bytes, never through a link.

:func:`model.load_artifact` checks the bytes this module reads (the signature, the hashes)
and builds the model from those same bytes, so a file changed on disk after it was read is
never used: what was verified is what predicts. The path given may be a link (a deploy link
such as ``current -> v3``): it is resolved once, when the folder is opened, and every file is
then opened relative to that one open folder, without following a link (``O_NOFOLLOW``).
A link inside the folder, or anything that is not a regular file, is refused.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from types import TracebackType

from model.exceptions import ArtifactError


class ArtifactFolder:
    """An artifact folder opened once (a context manager): :attr:`path` is where it resolved
    to, :meth:`names` lists it, :meth:`read` reads one of its files."""

    def __init__(self, path: Path) -> None:
        try:
            self.path = path.resolve(strict=True)
            self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError, RuntimeError):  # RuntimeError: a loop
            msg = f"{path}: artifact directory not found"
            raise ArtifactError(msg) from None

    def __enter__(self) -> ArtifactFolder:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        os.close(self._fd)

    def names(self) -> list[str]:
        """The names of the files in the folder, sorted; :class:`ArtifactError` when it holds a
        link or anything else that is not a regular file."""
        names = sorted(os.listdir(self._fd))  # noqa: PTH208 - the open folder, not a path
        for name in names:
            _check_regular(self.path / name, os.stat(name, dir_fd=self._fd, follow_symlinks=False))
        return names

    def read(self, name: str, max_bytes: int | None = None) -> bytes:
        """The bytes of the regular file ``name``; :class:`ArtifactError` for a link, anything
        else that is not a regular file, or a file larger than ``max_bytes``.
        :class:`FileNotFoundError` when there is none."""
        file = self.path / name
        if Path(name).name != name or name in {".", ".."}:
            msg = f"{file}: not a file name; refusing the artifact"
            raise ArtifactError(msg)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=self._fd)
        except OSError:  # a link (O_NOFOLLOW) is named as one; else the error as it is
            _check_regular(file, os.stat(name, dir_fd=self._fd, follow_symlinks=False))
            raise
        try:
            _check_regular(file, os.fstat(fd))
        except ArtifactError:
            os.close(fd)
            raise
        with os.fdopen(fd, "rb") as handle:
            data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
        if max_bytes is not None and len(data) > max_bytes:
            msg = f"{file}: larger than {max_bytes:,} bytes; refusing the artifact"
            raise ArtifactError(msg)
        return data


def _check_regular(file: Path, info: os.stat_result) -> None:
    if stat.S_ISLNK(info.st_mode):
        msg = f"{file}: a symbolic link; an artifact holds regular files only, links are refused"
        raise ArtifactError(msg)
    if not stat.S_ISREG(info.st_mode):
        msg = f"{file}: not a regular file; an artifact holds regular files only"
        raise ArtifactError(msg)
