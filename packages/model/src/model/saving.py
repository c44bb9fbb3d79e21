"""Turn a training result into an artifact: manifest (lineage) and model card."""

from __future__ import annotations

import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from model.store import write_artifact

if TYPE_CHECKING:
    from model.training import TrainResult

_RECORDED = ("model", "features", "scikit-learn", "skops", "numpy", "pandas", "pydantic")


def _git_commit(where: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def manifest_for(result: TrainResult) -> dict[str, Any]:
    """The manifest fields that describe how ``result`` was made."""
    classes = getattr(result.pipeline, "classes_", None)
    return {
        "model_name": result.config.name,
        "task": result.spec.task,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": _git_commit(result.config.spec.parent),
        "versions": {
            **{name: version(name) for name in _RECORDED},
            "python": platform.python_version(),
        },
        "config": result.config.model_dump(mode="json"),
        "feature_spec": result.spec.model_dump(mode="json"),
        "metrics": result.metrics,
        "cv_metrics": result.cv_metrics,
        "data": {
            **result.data_fingerprint,
            "valid_rows": result.report.n_valid,
            "rejected_rows": result.report.n_invalid,
            "train_rows": result.n_train,
            "test_rows": result.n_test,
        },
        "classes": None if classes is None else [str(c) for c in classes],
    }


def model_card(result: TrainResult, manifest: dict[str, Any]) -> str:
    """A short markdown card: what the model does, how well, on what, with what."""
    spec, config = result.spec, result.config
    metric_rows = "\n".join(
        f"| {name} | {value:.4f} | {result.cv_metrics[name]['mean']:.4f} "
        f"± {result.cv_metrics[name]['std']:.4f} |"
        for name, value in result.metrics.items()
    )
    feature_rows = "\n".join(
        f"| `{c.name}` | {c.kind} | {'yes' if c.nullable else 'no'} | {c.description} |"
        for c in spec.features
    )
    data = manifest["data"]
    return f"""# Model card: {config.name}

{spec.description or spec.name}

- Task: {spec.task}, target `{spec.target.name}`
- Estimator: `{config.estimator.kind}` ({config.estimator.model_dump(exclude={"kind"})})
- Trained: {manifest["created_at"]}, git commit {manifest["git_commit"] or "unknown"}
- Data: `{data["file"]}`, {data["rows"]} rows ({data["rejected_rows"]} rejected by validation),
  sha256 `{data["sha256"][:16]}…`; {data["train_rows"]} train / {data["test_rows"]} holdout rows,
  seed {config.seed}

## Metrics

| metric | holdout | {config.cv_folds}-fold CV on train (mean ± std) |
|---|---|---|
{metric_rows}

## Inputs

| feature | kind | nullable | description |
|---|---|---|---|
{feature_rows}

## Limits

Valid only for inputs that pass the feature spec; rows outside it are rejected, not guessed.
The holdout is small; treat differences under a few points as noise.
"""


def save_result(result: TrainResult, directory: Path) -> Path:
    """Write ``result`` as an artifact in ``directory`` (replacing an older one atomically)."""
    manifest = manifest_for(result)
    card = model_card(result, manifest)
    return write_artifact(directory, result.pipeline, manifest, card, result.compiled)
