"""The feature spec: one declaration of every input column, the target and the task.

Everything else in this package (the record schema, the columnar validator and the
preprocessing) is derived from a :class:`FeatureSpec`, so training and serving agree.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from features.exceptions import SpecError

NULL_TEXT: tuple[str, ...] = ("", "NA", "N/A", "null", "NULL")
"""The cells of a text file (CSV) that mean "no value". Never ``NaN`` or ``inf``: those are
numbers a spec refuses, at every door, as JSON requests refuse them."""

ColumnName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]


class _Column(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ColumnName = Field(description="The column's name in the data (a Python identifier).")
    description: str = Field(
        "", description="What the column means, for people; the API documents the field with it."
    )
    nullable: bool = Field(
        True,
        description="Whether a value may be missing (an empty cell, `NA`, JSON null); a missing "
        "feature value is imputed. False makes a row with a missing value invalid.",
    )


class NumericColumn(_Column):
    """A real-valued column, optionally bounded, imputed, clipped at quantiles and scaled."""

    kind: Literal["numeric"] = Field(description="Selects this column kind.")
    min: float | None = Field(
        None,
        allow_inf_nan=False,
        description="The smallest valid value; a smaller one is invalid input.",
    )
    max: float | None = Field(
        None,
        allow_inf_nan=False,
        description="The largest valid value, not below `min`; a larger one is invalid input.",
    )
    impute: Literal["mean", "median", "constant"] = Field(
        "median",
        description="What replaces a missing value: the training data's mean or median, or "
        "`fill_value`.",
    )
    fill_value: float | None = Field(
        None,
        allow_inf_nan=False,
        description='The number that replaces a missing value with `impute = "constant"` '
        "(required then).",
    )
    clip_quantiles: tuple[float, float] | None = Field(
        None,
        description="`[low, high]`: clip values at these quantiles of the training data "
        "(0 <= low < high <= 1).",
    )
    scale: Literal["standard", "robust", "minmax", "none"] = Field(
        "standard",
        description="Scaling after imputation and clipping: to zero mean and unit variance, "
        "by median and interquartile range, to [0, 1], or none.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.min is not None and self.max is not None and self.min > self.max:
            msg = f"bounds reversed: min {self.min} is greater than max {self.max}"
            raise ValueError(msg)
        if self.impute == "constant" and self.fill_value is None:
            msg = "impute = 'constant' needs a fill_value"
            raise ValueError(msg)
        if self.clip_quantiles is not None:
            low, high = self.clip_quantiles
            if not 0.0 <= low < high <= 1.0:
                msg = f"clip_quantiles must satisfy 0 <= low < high <= 1, got {self.clip_quantiles}"
                raise ValueError(msg)
        return self


class CategoricalColumn(_Column):
    """A string column with a declared set of categories.

    ``allow_unknown = false`` makes any other value invalid input; ``true`` accepts it and
    the encoder maps it to the infrequent bucket (one-hot) or -1 (ordinal).
    """

    kind: Literal["categorical"] = Field(description="Selects this column kind.")
    categories: list[str] = Field(
        min_length=1, description="The valid values (strings, no repeats), in encoding order."
    )
    allow_unknown: bool = Field(
        False,
        description="Accept values outside `categories` (encoded as infrequent by one-hot, -1 "
        "by ordinal) instead of refusing them; the encoder then learns the categories from "
        "the training data.",
    )
    impute: Literal["most_frequent", "constant"] = Field(
        "most_frequent",
        description="What replaces a missing value: the most frequent training value, or "
        "`fill_value` (a category of its own if not among `categories`).",
    )
    fill_value: str = Field(
        "missing", description='The value that replaces a missing one with `impute = "constant"`.'
    )
    encode: Literal["onehot", "ordinal"] = Field(
        "onehot", description="One 0/1 column per category, or one column of category indices."
    )
    min_frequency: float | None = Field(
        default=None,
        gt=0.0,
        lt=1.0,
        description="One-hot only: categories rarer than this share of the training rows are "
        "grouped into one infrequent column.",
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if len(set(self.categories)) != len(self.categories):
            msg = f"categories repeat a value: {self.categories}"
            raise ValueError(msg)
        return self


class BooleanColumn(_Column):
    """A true/false column, used as 0/1 by the model."""

    kind: Literal["boolean"] = Field(description="Selects this column kind.")
    impute: Literal["most_frequent", "constant"] = Field(
        "most_frequent",
        description="What replaces a missing value: the most frequent training value, or "
        "`fill_value`.",
    )
    fill_value: bool = Field(
        False, description='The value that replaces a missing one with `impute = "constant"`.'
    )


Column = Annotated[NumericColumn | CategoricalColumn | BooleanColumn, Field(discriminator="kind")]


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
        description="A column carried through unchecked into batch scores and rejects, for "
        "joining them back; not a feature or the target.",
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
