"""What every protocol's routes share: the artifact, the one request check, the metrics, the
readiness flag; the step from checked records to a prediction; and where a body is handled."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from features import ValidRows
from model import Artifact, Prediction
from serving.observability import Metrics
from serving.schemas import MAX_ERROR_ITEMS, Item, Problems, RequestReader

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

    def predict(
        self, checked: ValidRows | Problems, state: dict[str, Any]
    ) -> Prediction | Problems:
        """The prediction for records that passed the check, counted in the metrics and the
        request's log line; or the refusal, its records counted as rejected: records invalid,
        or (422, naming them) records the model gives no finite prediction for."""
        if isinstance(checked, Problems):
            self.metrics.rejected.inc(checked.records)
            return checked
        state["records"] = len(checked)
        predicted = self.artifact.predict(checked)
        refused = predicted.refused
        if len(refused):
            items: list[Item] = [
                (row, None, reason)
                for row, reason in zip(
                    refused[:MAX_ERROR_ITEMS].tolist(),
                    predicted.reasons[:MAX_ERROR_ITEMS].tolist(),
                    strict=True,
                )
            ]
            self.metrics.rejected.inc(len(refused))
            return Problems(422, "invalid input", items, len(refused), len(refused))
        self.metrics.predictions.inc(len(checked))
        return predicted

    async def handle(
        self,
        body: bytes,
        work: Callable[..., Response],
        *args: Any,  # noqa: ANN401
    ) -> Response:
        """``work(body, *args)`` on the event loop when the body is small and the model
        NumPy-only (see :data:`INLINE_BODY_BYTES`), else in a worker thread."""
        if self.artifact.numpy_only and len(body) <= INLINE_BODY_BYTES:
            return work(body, *args)
        return await run_in_threadpool(work, body, *args)
