"""What every protocol's routes share: the artifact, the one request check, the metrics, the
readiness flag, and whether a small body may be handled on the event loop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from model import Artifact
from serving.observability import Metrics
from serving.schemas import RequestReader

INLINE_BODY_BYTES = 2048
"""With a NumPy-only model, bodies up to this size are parsed, validated and predicted on the
event loop (~0.1 ms for the few records they hold, less than handing them to a thread); larger
bodies, and every body for a model that needs scikit-learn, in a worker thread, so that a big
or bad body or a slow model never holds the loop."""


@dataclass(frozen=True)
class Door:
    """One service's shared parts, handed to each protocol's routes."""

    artifact: Artifact
    reader: RequestReader
    metrics: Metrics
    ready: asyncio.Event

    @property
    def inline(self) -> bool:
        """Whether small bodies are handled on the event loop (a NumPy-only model)."""
        return self.artifact.numpy_only
