"""One input column as any door delivers it, sorted into what each cell is, before any rule.

A door (a JSON request, a CSV or Parquet file, a pandas frame) only says what its cells *are*:
null, a number, a boolean, text, or something else. What they *mean* for a column is decided
once, by the column's kind (:mod:`features.columns`), whatever the door: the same text is the
same value, or the same error, in a CSV cell, a Parquet string column and a JSON string.

Text is handled in two ways, each implemented once: numbers in text are parsed by Arrow over
the whole array (correctly rounded, fast on millions of rows), and every other kind reads the
*distinct* texts of a column, so its rules run once per distinct value. pyarrow is imported
only when text has to be parsed as numbers, or when the input is Arrow already.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pyarrow as pa

NULL_TEXT: tuple[str, ...] = ("", "NA", "N/A", "null", "NULL")
"""Texts that mean "no value", at every door (a CSV cell, a JSON string). Never ``NaN`` or
``inf``: those are not numbers a spec accepts."""

PLAIN_NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
"""The only text read as a number: ASCII digits, one optional sign, point and exponent; no
spaces, thousands separators, ``NaN`` or ``inf``."""


any_true = np.logical_or.reduce
"""Whether a boolean mask has a True (the ufunc itself: ``mask.any()`` costs a Python call
more, which shows on one-record requests)."""


@dataclass(eq=False, slots=True)
class Text:
    """The text cells of a column: ``mask`` says which rows hold text; the values are an Arrow
    string array or a Python list, both as long as the column (anything where not text)."""

    mask: np.ndarray
    values: Any  # pa.Array of strings (nulls where not text), or list[str | Any]

    def factorized(self) -> tuple[np.ndarray, list[str]]:
        """``(codes, distinct)``: each row's position in ``distinct``, -1 where not text."""
        if isinstance(self.values, list):
            index: dict[str, int] = {}
            codes = [
                index.setdefault(value, len(index)) if text else -1
                for value, text in zip(self.values, self.mask.tolist(), strict=True)
            ]
            return np.array(codes, dtype=np.intp), list(index)
        import pyarrow as pa  # noqa: PLC0415
        import pyarrow.compute as pc  # noqa: PLC0415

        encoded = self.values
        if not pa.types.is_dictionary(encoded.type):
            encoded = pc.dictionary_encode(encoded)
        indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        return np.asarray(indices, dtype=np.intp), encoded.dictionary.to_pylist()

    def arrow(self) -> pa.Array:
        """The column as an Arrow string array, null where not text."""
        import pyarrow as pa  # noqa: PLC0415

        if isinstance(self.values, list):
            return pa.array(
                [_utf8(v) if ok else None for v, ok in zip(self.values, self.mask, strict=True)],
                pa.string(),
            )
        if pa.types.is_dictionary(self.values.type):
            return self.values.cast(pa.string())
        return self.values


@dataclass(eq=False, slots=True)
class Cells:
    """What each row of one column holds; every row is exactly one of null, number, boolean,
    text or other (a list, an object, a date...)."""

    nulls: np.ndarray
    numbers: np.ndarray  # mask
    number_values: np.ndarray  # float64, meaningful where ``numbers``
    booleans: np.ndarray  # mask
    boolean_values: np.ndarray  # bool, meaningful where ``booleans``
    text: Text

    others: np.ndarray  # mask: rows that hold nothing a column can read
    kinds: frozenset[str]
    """Which of ``number``, ``boolean``, ``text`` and ``other`` occur at all, and
    ``nonfinite`` when a number is NaN or infinite: kinds skip the checks that cannot fail."""

    def __len__(self) -> int:
        return len(self.nulls)

    @classmethod
    def _of(
        cls,
        *,
        nulls: np.ndarray,
        numbers: np.ndarray,
        number_values: np.ndarray,
        booleans: np.ndarray,
        boolean_values: np.ndarray,
        text: Text,
    ) -> Cells:
        others = ~(nulls | numbers | booleans | text.mask)
        masks = {"number": numbers, "boolean": booleans, "text": text.mask, "other": others}
        kinds = {kind for kind, mask in masks.items() if any_true(mask)}
        if any_true(numbers & ~np.isfinite(number_values)):
            kinds.add("nonfinite")
        return cls(
            nulls, numbers, number_values, booleans, boolean_values, text, others, frozenset(kinds)
        )

    @classmethod
    def of_values(cls, values: Sequence[Any]) -> Cells:
        """Python values, as JSON (or an object column) gives them; NaN and infinities are
        numbers (that a column refuses), not nulls."""
        n = len(values)
        nulls, numbers, booleans, text, boolean_values, others = np.zeros((6, n), dtype=bool)
        number_values = np.empty(n)
        number_values.fill(np.nan)
        kinds = set()
        for row, value in enumerate(values):
            if value is None:
                nulls[row] = True
            elif isinstance(value, str):
                text[row] = True
                kinds.add("text")
            elif isinstance(value, (bool, np.bool_)):
                booleans[row] = True
                boolean_values[row] = bool(value)
                kinds.add("boolean")
            elif isinstance(value, (int, float, np.integer, np.floating, Decimal)):
                numbers[row] = True
                kinds.add("number")
                try:
                    number = float(value)
                except OverflowError:  # an integer beyond float range
                    number = np.inf if value > 0 else -np.inf
                except ValueError:  # a signalling Decimal NaN
                    number = np.nan
                number_values[row] = number
                if not math.isfinite(number):
                    kinds.add("nonfinite")
            else:
                kinds.add("other")
        if "other" in kinds:
            others = ~(nulls | numbers | booleans | text)
        values = values if isinstance(values, list) else list(values)
        return cls(
            nulls,
            numbers,
            number_values,
            booleans,
            boolean_values,
            Text(text, values),
            others,
            frozenset(kinds),
        )

    @classmethod
    def of_arrow(cls, array: pa.Array | pa.ChunkedArray) -> Cells:
        """An Arrow column: strings (and dictionaries of strings) are text, integers, floats
        and decimals numbers, booleans booleans; any other type is ``other``."""
        import pyarrow as pa  # noqa: PLC0415

        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        kind = array.type
        n = len(array)
        nulls = array.is_null().to_numpy(zero_copy_only=False)
        none = np.zeros(n, dtype=bool)
        number_values = np.full(n, np.nan)
        boolean_values = none
        text = Text(none, pa.nulls(n, pa.string()))  # no text: a list, a struct, bytes
        numbers = booleans = none
        if pa.types.is_dictionary(kind):
            if not _is_text(kind.value_type):
                return cls.of_arrow(array.cast(kind.value_type))
            text = Text(~nulls, array)
        elif _is_text(kind):
            text = Text(~nulls, array.cast(pa.string()) if str(kind) != "string" else array)
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            numbers = ~nulls
            # unsafe: an integer beyond 2**53 becomes the nearest float, as float() makes it
            number_values = array.cast(pa.float64(), safe=False).fill_null(np.nan).to_numpy()
        elif pa.types.is_boolean(kind):
            booleans = ~nulls
            boolean_values = array.fill_null(False).to_numpy(zero_copy_only=False)
        return cls._of(
            nulls=nulls,
            numbers=numbers,
            number_values=number_values,
            booleans=booleans,
            boolean_values=boolean_values,
            text=text,
        )

    @classmethod
    def of_pandas(cls, series: Any) -> Cells:  # noqa: ANN401 - a pandas Series
        """A pandas column: NaN, None and NA are nulls (pandas' convention); an object column
        is read value by value, any other through Arrow (or value by value when Arrow cannot
        take it, such as a categorical of text and numbers)."""
        import pyarrow as pa  # noqa: PLC0415

        if series.dtype != object:
            try:
                return cls.of_arrow(pa.Array.from_pandas(series))
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                series = series.astype(object)  # e.g. a categorical of text and numbers
        values = series.tolist()
        missing = series.isna().to_numpy()
        return cls.of_values([None if m else v for v, m in zip(values, missing, strict=True)])


def _utf8(value: str) -> str:
    """``value``, or U+FFFD (never a number or a null text) if it is not valid Unicode (a lone
    surrogate, which JSON allows and Arrow cannot hold)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "\ufffd"
    return value


def _is_text(kind: pa.DataType) -> bool:
    import pyarrow as pa  # noqa: PLC0415

    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or str(kind) == "string_view"


def numbers_in_text(text: Text) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(values, numbers, nulls)`` over the whole column: the value of each text cell that is
    a plain number (:data:`PLAIN_NUMBER`), and which text cells are null texts."""
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.compute as pc  # noqa: PLC0415

    array = text.arrow()
    matched = pc.match_substring_regex(array, PLAIN_NUMBER)
    if array.null_count == 0 and pc.all(matched).as_py():  # every cell a number (most files)
        values = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
        return values, text.mask, np.zeros(len(array), dtype=bool)
    plain = pc.fill_null(matched, False)
    values = pc.cast(pc.if_else(plain, array, "0"), pa.float64()).to_numpy(zero_copy_only=False)
    nulls = pc.fill_null(pc.is_in(array, pa.array(NULL_TEXT)), False)
    return (
        values,
        plain.to_numpy(zero_copy_only=False) & text.mask,
        nulls.to_numpy(zero_copy_only=False) & text.mask,
    )
