"""The column kinds: everything a kind of column needs, in one place per kind.

Each kind declares its options (pydantic, checked when a spec is read) and implements:

- ``parse(cells)``: what the cells of an input column mean (:class:`features.cells.Cells`,
  from any door), as typed values and the rows that break a rule, each with its reason;
- ``json_schema()``: what a JSON record may hold for it (the documented request schema);
- ``steps()``: its scikit-learn preprocessing (imputation, clipping, scaling, encoding);
- ``sample()``: a valid value (self-checks, examples), and ``unseen()``: a value training never
  saw that it must still accept (the compiled-form check), or None.

Nothing outside this module branches on a kind: adding one means adding a class here and to
:data:`Column`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.cells import NULL_TEXT, PLAIN_NUMBER, Cells, any_true, numbers_in_text

if TYPE_CHECKING:
    from sklearn.base import TransformerMixin

ColumnName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]

Problems = list[tuple[str, np.ndarray]]
"""``(reason, rows)`` pairs: a boolean mask of the rows that break one rule."""


@dataclass(eq=False, slots=True)
class Categories:
    """A validated categorical column: ``codes`` into ``categories`` (-1 for null). Encoding
    and checks work once per category, not once per row."""

    codes: np.ndarray
    categories: np.ndarray  # object array of str

    def __len__(self) -> int:
        return len(self.codes)

    def take(self, rows: np.ndarray) -> Categories:
        """The given rows."""
        return Categories(self.codes[rows], self.categories)

    def to_numpy(self) -> np.ndarray:
        """An object array of strings, NaN for null (what scikit-learn's imputers take)."""
        out = np.append(self.categories, np.nan).astype(object)[self.codes]
        return np.asarray(out, dtype=object)


Values = np.ndarray | Categories
"""A parsed column: float64 (NaN for null) for numbers and booleans, else :class:`Categories`."""


class _Column(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ColumnName = Field(description="The column's name in the data (a Python identifier).")
    description: str = Field(
        "", description="What the column means, for people; the API documents the field with it."
    )
    nullable: bool = Field(
        True,
        description="Whether a present value may be null (an empty cell, `NA`, JSON null); a "
        "null feature value is imputed. False makes a row with a null invalid. A column or "
        "field that is absent altogether is an error for the whole input either way.",
    )

    dictionary_text: ClassVar[bool] = False
    """Whether its text has few distinct values: files then read it as an Arrow dictionary."""

    def _finish(
        self,
        values: Values,
        cells: Cells,
        wrong: np.ndarray,
        problems: Problems,
        unread: np.ndarray | None = None,
    ) -> tuple[Values, Problems]:
        """Add the checks every kind shares: wrong type (``wrong``, and cells no column reads)
        first, then the kind's ``problems``, then null where not nullable. A refused cell
        (wrong, or ``unread``: refused by a problem that left no value) is not also a null."""
        if "other" in cells.kinds:
            wrong = wrong | cells.others
        checks = [(self.wrong_type, wrong), *problems]
        if not self.nullable:
            missing = values.codes < 0 if isinstance(values, Categories) else np.isnan(values)
            refused = wrong if unread is None else wrong | unread
            checks.append(("null not allowed", missing & ~refused))
        return values, [(reason, rows) for reason, rows in checks if any_true(rows)]

    wrong_type: ClassVar[str] = "wrong type"
    """The reason for a cell of a type this kind does not read."""

    def unseen(self) -> Any:  # noqa: ANN401 - a value of the column's type
        """A value training never saw that the column still accepts, or None."""
        return None

    def class_names(self, values: Values) -> np.ndarray:
        """Parsed target values as class names (text), for a classification target."""
        msg = f"a {self.kind} column cannot be a classification target"  # type: ignore[attr-defined]
        raise TypeError(msg)

    def _json_null(self, schema: dict[str, Any]) -> dict[str, Any]:
        if not self.nullable:
            return schema
        nulls = {"type": "string", "enum": list(NULL_TEXT)}
        return {"anyOf": [*schema.get("anyOf", [schema]), nulls, {"type": "null"}]}


class NumericColumn(_Column):
    """A real-valued column, optionally bounded, imputed, clipped at quantiles and scaled.

    Takes numbers, and text that is a plain number (``39.5``, ``-0``, ``1e3``); not
    ``3,750``, `` 39.5 `` (spaces), ``NaN`` or ``inf``.
    """

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

    wrong_type: ClassVar[str] = "wrong type: expected a number"

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

    def parse(self, cells: Cells) -> tuple[Values, Problems]:
        """Numbers as float64; null texts are null; other text and booleans: wrong type."""
        values = cells.number_values  # NaN where not a number
        wrong = cells.booleans
        if not {"text", "nonfinite"} & cells.kinds:  # the common case: only the bounds to check
            problems: Problems = []
            if self.min is not None:
                problems.append((self.below_reason, values < self.min))
            if self.max is not None:
                problems.append((self.above_reason, values > self.max))
            return self._finish(values, cells, wrong, problems)
        values = values.copy()
        if "text" in cells.kinds:
            parsed, plain, null_text = numbers_in_text(cells.text)
            values = np.where(plain, parsed, values)
            wrong = wrong | (cells.text.mask & ~plain & ~null_text)
        # An infinity (a typed one, or text beyond float range such as ``1e400``, which JSON
        # also reads as one) is refused by the bound on its side, else as not finite; a typed
        # NaN is not finite (a NaN in a pandas frame is a null: that door makes it one).
        nan = cells.numbers & np.isnan(cells.number_values)
        infinite = np.isinf(values)
        below = None if self.min is None else values < self.min
        above = None if self.max is None else values > self.max
        unread = nan | infinite
        problems = []
        if any_true(unread):
            bounded = infinite & (
                (below if below is not None else False) | (above if above is not None else False)
            )
            problems.append(("not finite", unread & ~bounded))
            values[unread] = np.nan
        else:
            unread = None
        if below is not None:
            problems.append((self.below_reason, below))
        if above is not None:
            problems.append((self.above_reason, above))
        return self._finish(values, cells, wrong, problems, unread)

    @property
    def below_reason(self) -> str:
        """The reason for a value below ``min``."""
        return f"below minimum {self.min:g}"

    @property
    def above_reason(self) -> str:
        """The reason for a value above ``max``."""
        return f"above maximum {self.max:g}"

    def json_schema(self) -> dict[str, Any]:
        """A number within the bounds, or its plain-number text (bounds checked all the same)."""
        number: dict[str, Any] = {"type": "number"}
        if self.min is not None:
            number["minimum"] = self.min
        if self.max is not None:
            number["maximum"] = self.max
        text = {"type": "string", "pattern": PLAIN_NUMBER}
        return self._json_null({"anyOf": [number, text]})

    def steps(self) -> list[tuple[str, TransformerMixin]]:
        """Impute, then clip at quantiles and scale when asked."""
        from sklearn.impute import SimpleImputer  # noqa: PLC0415
        from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler  # noqa: PLC0415

        from features.transformers import QuantileClipper  # noqa: PLC0415

        steps: list[tuple[str, TransformerMixin]] = [
            ("impute", SimpleImputer(strategy=self.impute, fill_value=self.fill_value))
        ]
        if self.clip_quantiles is not None:
            low, high = self.clip_quantiles
            steps.append(("clip", QuantileClipper(lower=low, upper=high)))
        scalers = {"standard": StandardScaler, "robust": RobustScaler, "minmax": MinMaxScaler}
        if self.scale != "none":
            steps.append(("scale", scalers[self.scale]()))
        return steps

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` random valid values (tests, benchmarks): uniform within the bounds."""
        low = self.min if self.min is not None else -1e3
        high = self.max if self.max is not None else 1e3
        return rng.uniform(low, high, n)

    def sample(self) -> float:
        """The midpoint of the bounds (0 when unbounded)."""
        low = self.min if self.min is not None else 0.0
        high = self.max if self.max is not None else low
        middle = (low + high) / 2
        return middle if math.isfinite(middle) else 0.0


class _Categorical(_Column):
    """What text and integer-coded categories share: the category check, the encoders."""

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
    categories: list[Any]
    fill_value: Any
    dictionary_text: ClassVar[bool] = True

    @model_validator(mode="after")
    def _check(self) -> Self:
        if len(set(self.labels)) != len(self.labels):
            msg = f"categories repeat a value: {self.categories}"
            raise ValueError(msg)
        nulls = sorted(set(self.labels) & set(NULL_TEXT))
        if nulls:
            msg = f"categories {nulls} are texts that mean null (see NULL_TEXT)"
            raise ValueError(msg)
        return self

    @property
    def labels(self) -> list[str]:
        """The categories as the model sees them: text."""
        return [str(c) for c in self.categories]

    def _candidates(self, cells: Cells) -> tuple[np.ndarray, list[str], np.ndarray]:
        """``(codes, labels, wrong)``: each row's position in ``labels`` (-1: null or
        refused), and the rows of the wrong type."""
        raise NotImplementedError

    def parse(self, cells: Cells) -> tuple[Values, Problems]:
        """Categories, read and checked once per distinct value; null texts are null."""
        codes, labels, wrong = self._candidates(cells)
        problems: Problems = []
        if not self.allow_unknown:
            known = self.known_labels
            if not known.issuperset(labels):
                allowed = np.array([label in known for label in labels] + [True], dtype=bool)
                problems.append((self.not_allowed_reason, ~allowed[codes]))  # -1: the last entry
        return self._finish(
            Categories(codes, np.asarray(labels, dtype=object)), cells, wrong, problems
        )

    @property
    def known_labels(self) -> frozenset[str]:
        """The categories as text, for lookups."""
        return frozenset(self.labels)

    @property
    def not_allowed_reason(self) -> str:
        """The reason for a value outside the categories."""
        return f"category not allowed (allowed: {', '.join(self.labels)})"

    def _enum(self) -> dict[str, Any]:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        """One of the categories (any text when unknown ones are allowed)."""
        if self.allow_unknown:
            text: dict[str, Any] = {"type": "string"}
            if not self.nullable:
                text["not"] = {"enum": list(NULL_TEXT)}
            return self._json_null(text)
        return self._json_null(self._enum())

    def steps(self) -> list[tuple[str, TransformerMixin]]:
        """Impute, then one-hot or ordinal encode."""
        from sklearn.impute import SimpleImputer  # noqa: PLC0415
        from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder  # noqa: PLC0415

        known = self.labels
        fill = str(self.fill_value)
        if self.impute == "constant" and fill not in known:
            known.append(fill)  # nulls become this value, a category of their own
        categories = "auto" if self.allow_unknown else [known]
        encoder: TransformerMixin
        if self.encode == "onehot":
            encoder = OneHotEncoder(
                categories=categories,
                handle_unknown="infrequent_if_exist",
                min_frequency=self.min_frequency,
                sparse_output=False,
            )
        else:
            encoder = OrdinalEncoder(
                categories=categories, handle_unknown="use_encoded_value", unknown_value=-1
            )
        imputer = SimpleImputer(strategy=self.impute, fill_value=fill)
        return [("impute", imputer), ("encode", encoder)]

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` random categories."""
        return rng.choice(np.asarray(self.categories, dtype=object), n)

    def sample(self) -> Any:  # noqa: ANN401 - a category
        """The first category."""
        return self.categories[0]

    def class_names(self, values: Values) -> np.ndarray:
        """The categories as text."""
        return np.asarray(values.to_numpy() if isinstance(values, Categories) else values, str)


def _relabel(codes: np.ndarray, labels: list[str | None]) -> tuple[np.ndarray, list[str]]:
    """Codes into ``labels`` (None: null or refused) as codes into the distinct real labels."""
    if None not in labels and len(set(labels)) == len(labels):  # nothing to change
        return codes, labels  # type: ignore[return-value]
    distinct: dict[str, int] = {}
    lookup = np.array(
        [-1 if label is None else distinct.setdefault(label, len(distinct)) for label in labels]
        + [-1],
        dtype=np.intp,
    )
    return lookup[codes], list(distinct)  # code -1 picks the appended -1


class CategoricalColumn(_Categorical):
    """A text column with a declared set of categories, compared exactly (case, spaces and
    look-alike letters matter).

    ``allow_unknown = false`` makes any other value invalid input; ``true`` accepts it and
    the encoder maps it to the infrequent bucket (one-hot) or -1 (ordinal).
    """

    kind: Literal["categorical"] = Field(description="Selects this column kind.")
    categories: list[str] = Field(
        min_length=1, description="The valid values (strings, no repeats), in encoding order."
    )
    fill_value: str = Field(
        "missing", description='The value that replaces a missing one with `impute = "constant"`.'
    )

    wrong_type: ClassVar[str] = "wrong type: expected a string"

    def _candidates(self, cells: Cells) -> tuple[np.ndarray, list[str], np.ndarray]:
        codes, distinct = cells.text.factorized()
        codes, labels = _relabel(codes, [None if d in NULL_TEXT else d for d in distinct])
        return codes, labels, cells.numbers | cells.booleans

    def _enum(self) -> dict[str, Any]:
        return {"enum": list(self.categories)}

    def unseen(self) -> str | None:
        """A value outside the categories, when unknown ones are allowed."""
        return "\x00unseen" if self.allow_unknown else None


SafeInteger = Annotated[int, Field(strict=True, gt=-(2**53), lt=2**53)]
"""An integer every float64 holds exactly, and that no larger integer rounds to."""


class IntegerCategoricalColumn(_Categorical):
    """Categories coded as whole numbers (``1``, ``2``, ``3``): integers in JSON, whole-number
    text in CSV (``2``, also ``2.0`` as a float column writes it); ``2.5`` is refused."""

    kind: Literal["integer_categorical"] = Field(description="Selects this column kind.")
    categories: list[SafeInteger] = Field(
        min_length=1, description="The valid codes (integers, no repeats), in encoding order."
    )
    fill_value: SafeInteger = Field(
        -1, description='The code that replaces a missing one with `impute = "constant"`.'
    )

    wrong_type: ClassVar[str] = "wrong type: expected a whole number"

    def _candidates(self, cells: Cells) -> tuple[np.ndarray, list[str], np.ndarray]:
        numbers = np.where(cells.numbers, cells.number_values, np.nan)
        wrong = cells.booleans.copy()
        if "text" in cells.kinds:
            parsed, plain, null_text = numbers_in_text(cells.text)
            numbers = np.where(plain, parsed, numbers)
            wrong |= cells.text.mask & ~plain & ~null_text
        with np.errstate(invalid="ignore"):  # beyond 2**53 a float is no longer exact
            whole = (np.abs(numbers) <= 2**53) & (np.floor(numbers) == numbers)
        wrong |= ~whole & ~np.isnan(numbers) | (cells.numbers & np.isnan(cells.number_values))
        distinct, codes = np.unique(np.where(whole, numbers, np.inf), return_inverse=True)
        labels = [str(int(v)) if np.isfinite(v) else None for v in distinct]
        codes, names = _relabel(codes.reshape(-1), labels)
        return codes, names, wrong

    def unseen(self) -> int | None:
        """A code outside the categories, when unknown ones are allowed."""
        return max(self.categories) + 1 if self.allow_unknown else None

    def _enum(self) -> dict[str, Any]:
        return {
            "anyOf": [{"enum": list(self.categories)}, {"type": "string", "pattern": PLAIN_NUMBER}]
        }

    def json_schema(self) -> dict[str, Any]:
        """One of the codes (any whole number when unknown ones are allowed), or its text."""
        if self.allow_unknown:
            text = {"type": "string", "pattern": PLAIN_NUMBER}
            return self._json_null({"anyOf": [{"type": "integer"}, text]})
        return self._json_null(self._enum())


class BooleanColumn(_Column):
    """A true/false column, used as 0/1 by the model. Takes booleans, and the texts ``true``
    and ``false`` in any case; not ``1``/``0`` or ``yes``/``no``."""

    kind: Literal["boolean"] = Field(description="Selects this column kind.")
    impute: Literal["most_frequent", "constant"] = Field(
        "most_frequent",
        description="What replaces a missing value: the most frequent training value, or "
        "`fill_value`.",
    )
    fill_value: bool = Field(
        False, description='The value that replaces a missing one with `impute = "constant"`.'
    )

    wrong_type: ClassVar[str] = "wrong type: expected true or false"
    dictionary_text: ClassVar[bool] = True

    def parse(self, cells: Cells) -> tuple[Values, Problems]:
        """Booleans as 0.0/1.0 (NaN for null), the texts read once per distinct value."""
        values = np.where(cells.booleans, cells.boolean_values, np.nan)
        wrong = cells.numbers
        if "text" in cells.kinds:
            codes, distinct = cells.text.factorized()
            meaning = {"true": 1.0, "false": 0.0}
            read = [
                meaning.get(d.lower(), np.nan) if isinstance(d, str) else np.nan for d in distinct
            ]
            lookup = np.append(read, np.nan)
            refused = np.append(
                [d not in NULL_TEXT and d.lower() not in meaning for d in distinct], False
            )
            values = np.where(cells.text.mask, lookup[codes], values)
            wrong = wrong | refused[codes]
        return self._finish(values, cells, wrong, [])

    def json_schema(self) -> dict[str, Any]:
        """``true`` or ``false``, or that text in any case."""
        text = {"type": "string", "pattern": "^([Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$"}
        return self._json_null({"anyOf": [{"type": "boolean"}, text]})

    def steps(self) -> list[tuple[str, TransformerMixin]]:
        """Impute (the model takes 0/1)."""
        from sklearn.impute import SimpleImputer  # noqa: PLC0415

        return [("impute", SimpleImputer(strategy=self.impute, fill_value=float(self.fill_value)))]

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` random booleans."""
        return rng.random(n) < 0.5

    def class_names(self, values: Values) -> np.ndarray:
        """``false`` and ``true``."""
        return np.where(np.asarray(values) == 1.0, "true", "false")

    def sample(self) -> bool:
        """False."""
        return False


Column = Annotated[
    NumericColumn | CategoricalColumn | IntegerCategoricalColumn | BooleanColumn,
    Field(discriminator="kind"),
]
"""Any column kind, chosen by its ``kind``."""
