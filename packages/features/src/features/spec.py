"""The feature spec: one declaration of every input column, the target and the task.

Everything else in this package (the record schema, the columnar validator and the
preprocessing) is derived from a :class:`FeatureSpec`, so training and serving agree.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from features.columns import Column, ColumnName
from features.exceptions import SpecError

RESERVED_COLUMNS = ("row", "reasons", "prediction", "model_version")
"""Names batch scoring writes beside input columns (and ``probability_<class>``): a spec may not
name a column so."""


class Ratio(BaseModel):
    """An engineered feature: ``numerator / denominator`` of two numeric features."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    numerator: ColumnName = Field(description="A numeric feature: the dividend.")
    denominator: ColumnName = Field(
        description="A numeric feature: the divisor (a zero gives a missing value, imputed)."
    )

    @property
    def name(self) -> str:
        """The output column name, ``<numerator>_per_<denominator>``."""
        return f"{self.numerator}_per_{self.denominator}"


class FeatureSpec(BaseModel):
    """The whole input contract of one model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="The model's name, recorded in its artifact.")
    description: str = Field("", description="What the model predicts, for people.")
    task: Literal["classification", "regression"] = Field(
        description="Predict a class (categorical or boolean target) or a number (numeric target)."
    )
    target: Column = Field(
        description="The column to predict; not also a feature or the id column."
    )
    features: list[Column] = Field(
        min_length=1, description="The input columns, in order; names must not repeat."
    )
    ratios: list[Ratio] = Field(
        [],
        description="Engineered features `numerator / denominator`, named "
        "`<numerator>_per_<denominator>`; both sides numeric features.",
    )
    id_column: ColumnName | None = Field(
        None,
        description="A column carried through unchecked into batch scores, for joining them "
        "back; not a feature or the target.",
    )
    ignored_columns: list[ColumnName] = Field(
        [],
        description="Columns the input may hold that the model does not use (a year, a "
        "comment): accepted and ignored at every door.",
    )
    unknown_fields: Literal["error", "ignore"] = Field(
        "error",
        description="What a column or record field that the spec does not name does: make the "
        "whole input an error (the default: a misspelt field name is caught), or be ignored. "
        "The same at every door (files, HTTP records, in-process frames).",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        names = [column.name for column in self.features]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            msg = f"duplicate feature column(s): {', '.join(repeated)}"
            raise ValueError(msg)
        if self.target.name in names:
            msg = f"target column {self.target.name!r} is also listed as a feature"
            raise ValueError(msg)
        if self.id_column is not None and self.id_column in {*names, self.target.name}:
            msg = f"id_column {self.id_column!r} is also a feature or the target"
            raise ValueError(msg)
        clash = sorted(set(self.ignored_columns) & {*names, self.target.name, self.id_column})
        if clash:
            msg = f"ignored_columns {clash} are also features, the target or the id column"
            raise ValueError(msg)
        declared = [*names, self.target.name, *self.ignored_columns, self.id_column or ""]
        taken = [n for n in declared if n in RESERVED_COLUMNS or n.startswith("probability_")]
        if taken:
            msg = (
                f"column(s) {', '.join(taken)}: scoring writes columns of these names beside "
                f"the input's ({', '.join(RESERVED_COLUMNS)}, probability_<class>); rename them"
            )
            raise ValueError(msg)
        if self.task == "regression" and self.target.kind != "numeric":
            msg = f"a regression target must be numeric, {self.target.name!r} is {self.target.kind}"
            raise ValueError(msg)
        if self.task == "classification" and self.target.kind == "numeric":
            msg = (
                "a classification target must be categorical or boolean, "
                f"{self.target.name!r} is numeric"
            )
            raise ValueError(msg)
        numeric = {c.name for c in self.features if c.kind == "numeric"}
        for ratio in self.ratios:
            for side in (ratio.numerator, ratio.denominator):
                if side not in numeric:
                    msg = f"ratio {ratio.name!r} uses {side!r}, which is not a numeric feature"
                    raise ValueError(msg)
            if ratio.name in names:
                msg = f"ratio {ratio.name!r} has the name of a feature"
                raise ValueError(msg)
        return self

    @property
    def feature_names(self) -> list[str]:
        """Input feature columns, in spec order."""
        return [column.name for column in self.features]

    @property
    def known_columns(self) -> frozenset[str]:
        """Every column name the spec declares: features, target, id and ignored columns."""
        id_column = [self.id_column] if self.id_column else []
        return frozenset({*self.feature_names, self.target.name, *id_column, *self.ignored_columns})

    @classmethod
    def from_toml(cls, path: str | Path) -> FeatureSpec:
        """Load and check a spec file; a bad file raises :class:`SpecError` naming each problem."""
        return cls.from_dict(read_toml(path, "feature spec", SpecError), source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "feature spec") -> FeatureSpec:
        """Check a spec given as plain data (for example a manifest's copy of it)."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise SpecError(format_errors(source, "invalid feature spec", error)) from None


def read_toml(path: str | Path, what: str, error: type[Exception]) -> dict[str, Any]:
    """Parse a TOML file; a missing or malformed one raises ``error`` naming the file."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        msg = f"{path}: {what} not found"
        raise error(msg) from None
    except tomllib.TOMLDecodeError as problem:
        msg = f"{path}: not valid TOML: {problem}"
        raise error(msg) from None
    except UnicodeDecodeError:
        msg = f"{path}: not a {what}: the file is not UTF-8 text"
        raise error(msg) from None
    except OSError as problem:  # a folder, no permission
        msg = f"{path}: cannot read the {what}: {problem.strerror or problem}"
        raise error(msg) from None


def format_errors(source: str, title: str, error: ValidationError) -> str:
    """Render pydantic errors one per line as ``location: message``."""
    lines = [f"{source}: {title}:"]
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {location}: {item['msg']}")
    return "\n".join(lines)
