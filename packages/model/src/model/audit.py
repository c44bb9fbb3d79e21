"""The type audit of a skops file, run by :func:`model.load_artifact` for every artifact
(compiled or not, before anything of the pipeline is used) and by training on what it writes.

A skops file is a zip: ``schema.json`` describes the object tree as nodes, each naming its
loader (``__loader__``), its type (``__module__`` and ``__class__``) and its content; arrays
sit beside it as ``.npy`` files (read with ``allow_pickle=False``). This module reads
``schema.json`` with :mod:`zipfile` and :mod:`json` only, never importing skops or
scikit-learn (seconds of start-up that a compiled artifact does not need), walks every node
and collects every type, function or method the file would import, build or call. It refuses
the file unless each is in :data:`ALLOWED_TYPES` and each loader in :data:`KNOWN_LOADERS`.
Nothing named in the file is imported to find out.

The walk visits every JSON object that names a ``__loader__``, wherever it sits, so it sees
at least the nodes skops builds (skops follows only the children each loader knows). Where a
loader builds something its node's ``__module__`` and ``__class__`` do not name, that is
collected too (see :data:`KNOWN_LOADERS`). A test checks on real files that the collected set
always holds what ``skops.io.get_untrusted_types`` reports.

When the pipeline itself is loaded (:mod:`model.predictor`), skops' own audit runs again,
against :data:`TRUSTED_TYPES`, before a single object is constructed (defence in depth).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from model.exceptions import ArtifactError

SCHEMA_FILE = "schema.json"
MAX_SCHEMA_BYTES = 256 << 20
"""The largest ``schema.json`` read (the declared and the actual size). Trees' arrays are
``.npy`` files beside it, but each tree adds to it: ~21 KB per tree of a forest, ~4 KB per
boosting tree (one per iteration and class); the largest models a config allows (5000 forest
trees: ~110 MB; 10000 boosting iterations for 3 classes: ~115 MB) stay well under it.
Training audits what it writes, so a model beyond it is refused when trained, not served."""
MAX_DEPTH = 100
"""JSON nesting at most: the pipelines this project trains nest 30 levels."""
SKOPS_PROTOCOLS = (2,)
"""The skops file protocols whose node layout this module reads (skops 0.14 to 0.16 write 2).
A new protocol is refused until its layout is reviewed here."""

TRUSTED_TYPES: tuple[str, ...] = (
    "features.transformers.QuantileClipper",
    "features.transformers.RatioFeatures",
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
)
"""Types beyond skops' own safe defaults that a pipeline may hold, passed to skops when the
pipeline is loaded. Reviewed code, never data: extend it only for a type whose construction
cannot run arbitrary code (and add it to :data:`ALLOWED_TYPES`)."""

ALLOWED_TYPES: frozenset[str] = frozenset(
    {
        # Reviewed list, not data. It holds what the pipelines this project trains hold,
        # found by training every estimator kind (linear, random_forest,
        # hist_gradient_boosting) for binary and multi-class classification and regression,
        # on specs using every option of features.preprocessing (each scaler, clipping,
        # mean/median/constant imputing, one-hot with infrequent categories, ordinal,
        # booleans, ratios) and with early stopping, under the locked and under the lowest
        # supported scikit-learn, skops and NumPy, and listing the types collected here.
        # tests/test_audit.py fails when a trained pipeline needs a type missing here. Add a
        # type only if importing and building it runs no code the file chooses: never a
        # function, a method or a module.
        #
        # Python containers and scalars (skops stores JSON values as str nodes; the other
        # scalars name dict key types).
        "builtins.bool",
        "builtins.dict",
        "builtins.float",
        "builtins.int",
        "builtins.list",
        "builtins.slice",
        "builtins.str",
        "builtins.tuple",
        # NumPy arrays, dtypes and scalars (int32: the default integer of NumPy 1 on
        # Windows; bool: np.bool_ is named bool from NumPy 2 on).
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.bool",
        "numpy.bool_",
        "numpy.float32",
        "numpy.float64",
        "numpy.int32",
        "numpy.int64",
        "numpy.uint8",
        "numpy.uint32",
        "numpy.uint64",
        # The seeded generator a fitted histogram gradient boosting keeps.
        "numpy.random._generator.Generator",
        "numpy.random.PCG64",
        "numpy.random.bit_generator.SeedSequence",
        # scikit-learn: the preprocessing of features.preprocessing.
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.MinMaxScaler",
        "sklearn.preprocessing._data.RobustScaler",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.preprocessing._encoders.OrdinalEncoder",
        # scikit-learn: the estimators of model.estimators and what they hold when fitted.
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.linear_model._ridge.Ridge",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.RandomForestRegressor",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.DecisionTreeRegressor",
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.preprocessing._label.LabelEncoder",
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.Interval",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.MultinomialLogit",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.loss.HalfMultinomialLoss",
        "sklearn._loss.loss.HalfSquaredError",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn._loss._loss.CyHalfMultinomialLoss",
        "sklearn._loss._loss.CyHalfSquaredError",
        # The same Cython losses as scikit-learn 1.7 names them (its compiled module
        # reports itself as the top-level `_loss`, an alias of sklearn._loss._loss).
        "_loss.CyHalfBinomialLoss",
        "_loss.CyHalfMultinomialLoss",
        "_loss.CyHalfSquaredError",
        # features' own transformers.
        "features.transformers.QuantileClipper",
        "features.transformers.RatioFeatures",
        *TRUSTED_TYPES,
    }
)
"""Every type a skops file may name (see the comment in the code for how it was derived)."""


class SchemaError(ValueError):
    """A skops file without a readable ``schema.json``, or one that skops never writes."""


def _type_of(node: dict[str, Any]) -> str:
    module, name = node.get("__module__"), node.get("__class__")
    if not isinstance(module, str) or not isinstance(name, str):
        msg = f"a node without a type name ({module!r}, {name!r})"
        raise SchemaError(msg)
    return f"{module}.{name}"


def _nothing_else(_node: dict[str, Any]) -> Iterable[str]:
    return ()


def _method(node: dict[str, Any]) -> Iterable[str]:
    """``getattr(<content.obj, loaded>, content.func)``: the method is what gets built."""
    content = node.get("content")
    obj = content.get("obj") if isinstance(content, dict) else None
    func = content.get("func") if isinstance(content, dict) else None
    if not isinstance(obj, dict) or not isinstance(func, str):
        msg = "a MethodNode without its object and method name"
        raise SchemaError(msg)
    return (f"{_type_of(obj)}.{func}",)


def _operator(node: dict[str, Any]) -> Iterable[str]:
    """``getattr(operator, __class__)(*attrs)``, whatever the node's module says."""
    return (f"operator.{node['__class__']}",)


def _tree(_node: dict[str, Any]) -> Iterable[str]:
    """``Tree(*args)``: the constructor is fixed, whatever the node's type says."""
    return ("sklearn.tree._tree.Tree",)


def _random_generator(node: dict[str, Any]) -> Iterable[str]:
    """The bit generator is called by a name kept as a JSON string inside the content
    (``content.bit_generator.content.bit_generator.content``), with a SeedSequence."""
    try:
        state = node["content"]["bit_generator"]["content"]["bit_generator"]["content"]
        name = json.loads(state)
    except (KeyError, TypeError, ValueError, RecursionError):
        name = None
    if not isinstance(name, str):
        msg = "a RandomGeneratorNode without its bit generator's name"
        raise SchemaError(msg)
    return (f"numpy.random.{name}", "numpy.random.bit_generator.SeedSequence")


KNOWN_LOADERS: dict[str, Callable[[dict[str, Any]], Iterable[str]]] = {
    # Each loader imports or builds its node's ``__module__.__class__`` (a container, an
    # object, a type, a function); the function names what it builds besides. These are
    # skops' protocol-2 loaders but QuantileForestNode (a third-party type the file does not
    # name) and _DictWithDeprecatedKeysNode (scikit-learn < 1.2).
    "BytearrayNode": _nothing_else,
    "BytesNode": _nothing_else,
    "CachedNode": _nothing_else,
    "ConstructorFromReduceNode": _nothing_else,  # __class__(*content)
    "DTypeNode": _nothing_else,  # the dtype of an .npy array, its content
    "DefaultDictNode": _nothing_else,  # content.default_factory is a node
    "DictNode": _nothing_else,  # keys are built by content.key_types, TypeNodes
    "FunctionNode": _nothing_else,  # the function is __module__.__class__
    "JsonNode": _nothing_else,  # content is JSON text: data only
    "ListNode": _nothing_else,
    "LossNode": _nothing_else,  # __class__(*__reduce__.args)
    "MaskedArrayNode": _nothing_else,
    "MethodNode": _method,
    "NdArrayNode": _nothing_else,  # __class__(array) unless numpy.ndarray
    "ObjectNode": _nothing_else,  # __class__.__new__, then __setstate__(content)
    "OperatorFuncNode": _operator,
    "PartialNode": _nothing_else,  # functools.partial(content.func, ...): nodes
    "RandomGeneratorNode": _random_generator,
    "RandomStateNode": _nothing_else,
    "SetNode": _nothing_else,
    "SliceNode": _nothing_else,
    "SparseMatrixNode": _nothing_else,  # scipy.sparse.load_npz of an .npz file
    "TreeNode": _tree,
    "TupleNode": _nothing_else,
    "TypeNode": _nothing_else,  # imports __module__, returns its __class__
}
"""The skops loaders whose layout this module reads, each with what it builds that its node's
``__module__`` and ``__class__`` do not name. Any other loader is refused."""


def referenced_types(schema: Any) -> tuple[set[str], set[str]]:  # noqa: ANN401 - parsed JSON
    """The types a parsed ``schema.json`` names (see the module docstring), and the loaders
    it uses that are not in :data:`KNOWN_LOADERS`.

    Raises :class:`SchemaError` (a ``ValueError``) for a schema skops never writes: no root
    node, a node without a type, nesting deeper than :data:`MAX_DEPTH`.
    """
    if type(schema) is not dict or "__loader__" not in schema:
        msg = "no root node"
        raise SchemaError(msg)
    types: set[str] = set()
    unknown: set[str] = set()
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(schema, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            msg = f"nested deeper than {MAX_DEPTH} levels"
            raise SchemaError(msg)
        if type(value) is dict:
            items: Iterable[Any] = value.values()
            if "__loader__" in value:
                loader = value["__loader__"]
                types.add(_type_of(value))
                extra = KNOWN_LOADERS.get(loader) if type(loader) is str else None
                if extra is None:
                    unknown.add(str(loader))
                else:
                    types.update(extra(value))
        else:
            items = value
        depth += 1
        stack.extend((item, depth) for item in items if type(item) is dict or type(item) is list)
    return types, unknown


def check_skops_header(data: bytes, file: Path) -> None:
    """Refuse, with :class:`ArtifactError`, bytes that do not start as a zip (a pickle);
    ``file`` names them in the message."""
    if data[:1] == b"\x80" or not data.startswith(b"PK"):
        msg = f"{file}: not a skops file (a pickle or something else); refused"
        raise ArtifactError(msg)


def _schema_bytes(data: bytes, max_bytes: int) -> bytes:
    too_large = f"{SCHEMA_FILE} is larger than {max_bytes:,} bytes"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        entries = [i for i in archive.infolist() if i.filename == SCHEMA_FILE]
        if len(entries) != 1:
            msg = f"{len(entries) or 'no'} {SCHEMA_FILE} entries"
            raise SchemaError(msg)
        if entries[0].file_size > max_bytes:
            raise SchemaError(too_large)
        with archive.open(entries[0]) as handle:  # the size above is only declared
            schema = handle.read(max_bytes + 1)
    if len(schema) > max_bytes:
        raise SchemaError(too_large)
    return schema


def read_schema(data: bytes, max_bytes: int = MAX_SCHEMA_BYTES) -> Any:  # noqa: ANN401 - JSON
    """The parsed ``schema.json`` of the skops file whose bytes are ``data``, read within
    bounds.

    Raises :class:`SchemaError` when they are no zip, hold no ``schema.json`` (or several),
    or it is larger than ``max_bytes``, not JSON, or nested too deeply to parse.
    """
    try:
        schema = _schema_bytes(data, max_bytes)
    except SchemaError:
        raise
    except Exception as error:  # untrusted bytes: any failure to read them is a refusal
        msg = f"{type(error).__name__}: {error}"
        raise SchemaError(msg) from None
    try:
        return json.loads(schema)  # as skops reads it: same bytes, same parser, same values
    except RecursionError:
        msg = f"{SCHEMA_FILE} is nested too deeply"
        raise SchemaError(msg) from None
    except ValueError as error:  # JSON or Unicode
        msg = f"{SCHEMA_FILE} is not valid JSON ({error})"
        raise SchemaError(msg) from None


def audit_skops(data: bytes, file: Path, max_bytes: int = MAX_SCHEMA_BYTES) -> None:
    """Refuse, with :class:`ArtifactError`, the bytes ``data`` of the skops file ``file``
    unless they are a zip whose ``schema.json`` (at most ``max_bytes``) has a protocol in
    :data:`SKOPS_PROTOCOLS`, only loaders of :data:`KNOWN_LOADERS` and only types of
    :data:`ALLOWED_TYPES`. Builds and imports nothing the file names; ``file`` names it in
    messages."""
    check_skops_header(data, file)
    try:
        schema = read_schema(data, max_bytes)
        types, unknown = referenced_types(schema)
    except SchemaError as error:
        msg = f"{file}: unreadable skops file: {error}"
        raise ArtifactError(msg) from None
    protocol = schema.get("protocol")
    if type(protocol) is not int or protocol not in SKOPS_PROTOCOLS:
        msg = (
            f"{file}: skops protocol {protocol!r} is not one this model package reads "
            f"({', '.join(map(str, SKOPS_PROTOCOLS))}); retrain with the skops it is locked to"
        )
        raise ArtifactError(msg)
    if unknown:
        msg = f"{file}: uses skops loaders outside the known list: {', '.join(sorted(unknown))}"
        raise ArtifactError(msg)
    refused = sorted(types - ALLOWED_TYPES)
    if refused:
        msg = f"{file}: refers to types outside the allowed list: {', '.join(refused)}"
        raise ArtifactError(msg)
