"""The training config: which spec, which data, which estimator, how to split, what gate to pass."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from features import FeatureSpec, format_errors, read_toml
from model.estimators import EstimatorConfig
from model.exceptions import ConfigError

TASK_METRICS = {
    "classification": {"balanced_accuracy", "accuracy"},
    "regression": {"rmse", "mae", "r2"},
}
GATE_METRICS = {
    "min_balanced_accuracy": "balanced_accuracy",
    "min_accuracy": "accuracy",
    "max_rmse": "rmse",
    "min_r2": "r2",
}


class Gate(BaseModel):
    """Minimum quality for an artifact to be written as releasable (holdout metrics)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_balanced_accuracy: float | None = Field(
        None, ge=0, le=1, description="Classification: the lowest balanced accuracy accepted."
    )
    min_accuracy: float | None = Field(
        None, ge=0, le=1, description="Classification: the lowest accuracy accepted."
    )
    max_rmse: float | None = Field(
        None, gt=0, description="Regression: the highest root mean squared error accepted."
    )
    min_r2: float | None = Field(None, le=1, description="Regression: the lowest R² accepted.")

    def problems(self, task: str) -> list[str]:
        """Conditions on metrics that ``task`` does not measure (checked before training)."""
        measured = TASK_METRICS[task]
        return [
            f"gate.{field} needs {metric}, which a {task} model does not measure; "
            f"use a gate on {' or '.join(sorted(measured))}"
            for field, metric in GATE_METRICS.items()
            if getattr(self, field) is not None and metric not in measured
        ]

    def failures(self, metrics: dict[str, float]) -> list[str]:
        """The gate's conditions that ``metrics`` miss, as readable sentences."""
        checks = [
            ("balanced_accuracy", self.min_balanced_accuracy, ">="),
            ("accuracy", self.min_accuracy, ">="),
            ("rmse", self.max_rmse, "<="),
            ("r2", self.min_r2, ">="),
        ]
        failed = []
        for metric, bound, op in checks:
            if bound is None:
                continue
            value = metrics.get(metric)
            if value is None:
                failed.append(f"{metric} is not measured for this task but the gate needs it")
            elif (op == ">=" and value < bound) or (op == "<=" and value > bound):
                failed.append(f"{metric} {value:.4f} is not {op} {bound}")
        return failed


class TrainConfig(BaseModel):
    """One training run. Relative paths are resolved against the config file's folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]*$",
        max_length=64,
        description="The artifact's name (lower case, digits, `-`, `_`); `model train` writes "
        "to `artifacts/<name>` unless given `--output`.",
    )
    spec: Path = Field(
        description="The feature spec file (TOML), relative to this config file's folder."
    )
    data: Path = Field(
        description="The training table, relative to this config file's folder: a `.csv` or "
        "`.parquet` file holding the target and every feature."
    )
    estimator: EstimatorConfig = Field(
        description="The model and its hyperparameters, chosen by `kind`."
    )
    seed: int = Field(
        42,
        ge=0,
        le=2**32 - 1,
        description="Seeds the split, the folds and the estimator: same inputs, same model.",
    )
    test_size: float = Field(
        0.2, gt=0, lt=1, description="The share of valid rows held out to measure the metrics."
    )
    cv_folds: int = Field(
        5, ge=2, le=20, description="Cross-validation folds over the training part."
    )
    max_invalid_share: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Rows that fail the spec's checks are dropped and reported; a larger share "
        "of them than this stops the run.",
    )
    gate: Gate = Field(
        Gate(),
        description="Holdout metrics an artifact must reach to be written; none by default.",
    )

    @model_validator(mode="after")
    def _known_format(self) -> Self:
        if self.data.suffix.lower() not in {".csv", ".parquet"}:
            msg = f"data must be a .csv or .parquet file, got {self.data.name!r}"
            raise ValueError(msg)
        return self

    @classmethod
    def from_toml(cls, path: str | Path) -> TrainConfig:
        """Load a config file; a bad one raises :class:`ConfigError` naming each field."""
        path = Path(path)
        data = read_toml(path, "training config", ConfigError)
        try:
            config = cls.model_validate(data)
        except ValidationError as error:
            raise ConfigError(format_errors(str(path), "invalid training config", error)) from None
        base = path.parent
        return config.model_copy(update={"spec": base / config.spec, "data": base / config.data})

    def preflight(self) -> FeatureSpec:
        """Every check that needs no data and no scikit-learn, so a mistake stops a run before
        training starts: the spec (read and checked), the data file's presence, and the gate and
        estimator options against the spec's task. Returns the spec."""
        spec = FeatureSpec.from_toml(self.spec)
        problems = self.gate.problems(spec.task) + self.estimator.problems(spec.task)
        if not self.data.is_file():
            problems.insert(0, f"data file {self.data} not found")
        if problems:
            raise ConfigError(f"{self.name}: cannot train:\n  " + "\n  ".join(problems))
        return spec
