"""The load-time audit of skops files (model.audit), on real files, no mocks: what training
writes passes, and the walk sees at least what skops sees; crafted files are refused by
load_artifact even when the compiled form would never load the pipeline."""

import collections
import datetime
import functools
import importlib
import json
import operator
import re
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from scipy import sparse
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from model import (
    ArtifactError,
    HistGradientBoosting,
    Linear,
    RandomForest,
    TrainConfig,
    load_artifact,
    save_result,
    train,
)
from model.audit import (
    ALLOWED_TYPES,
    KNOWN_LOADERS,
    MAX_DEPTH,
    TRUSTED_TYPES,
    audit_skops,
    read_schema,
    referenced_types,
)
from model.manifest import MANIFEST_FILE, PIPELINE_FILE, sha256_file

KINDS = ["linear", "random_forest", "hist_gradient_boosting"]
Schema = dict[str, Any]


def collected(file: Path) -> set[str]:
    types, unknown = referenced_types(read_schema(file.read_bytes()))
    assert unknown == set()
    return types


def rewrite_schema(file: Path, edit: Callable[[Schema], object]) -> None:
    """Edit the skops file's schema.json in place, keeping its other entries."""
    with zipfile.ZipFile(file) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    schema = json.loads(entries["schema.json"])
    edit(schema)
    entries["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(file, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def rehash(folder: Path) -> None:
    """What an attacker who can write the folder does: make the manifest's hashes match."""
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    manifest["files"] = {
        p.name: sha256_file(p) for p in folder.iterdir() if p.name != MANIFEST_FILE
    }
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))


# --- what training writes passes --------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_trained_artifacts_pass_and_the_walk_sees_all_skops_sees(
    trained, kind: str, task: str
) -> None:
    _, folder = trained(kind, task)
    file = folder / PIPELINE_FILE
    audit_skops(file.read_bytes(), file)
    load_artifact(folder)
    assert set(sio.get_untrusted_types(file=file)) <= collected(file)


WIDE_SPEC = """
name = "wide"
task = "classification"

[target]
name = "heavy"
kind = "boolean"
nullable = false

[[features]]
name = "island"
kind = "categorical"
categories = ["Biscoe", "Dream", "Torgersen"]
allow_unknown = true
min_frequency = 0.2
nullable = false

[[features]]
name = "site"
kind = "categorical"
categories = ["Biscoe", "Dream", "Torgersen"]
encode = "ordinal"
impute = "most_frequent"

[[features]]
name = "sex"
kind = "categorical"
categories = ["female", "male"]
impute = "constant"
fill_value = "unknown"

[[features]]
name = "bill_length_mm"
kind = "numeric"
impute = "mean"
scale = "robust"
clip_quantiles = [0.01, 0.99]

[[features]]
name = "bill_depth_mm"
kind = "numeric"
impute = "median"
scale = "minmax"

[[features]]
name = "flipper_length_mm"
kind = "numeric"
impute = "constant"
fill_value = 200.0
scale = "none"

[[features]]
name = "flag"
kind = "boolean"
impute = "constant"
fill_value = true

[[ratios]]
numerator = "bill_length_mm"
denominator = "bill_depth_mm"
"""


@pytest.mark.parametrize("kind", KINDS)
def test_every_preprocessing_option_and_binary_models_pass(
    kind: str, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    """Each scaler, clipping, every imputer, one-hot with infrequent categories, ordinal,
    booleans and ratios, before each estimator kind as a binary classifier."""
    frame = penguins.dropna(subset=["body_mass_g"]).reset_index(drop=True)
    table = pd.DataFrame(
        {
            "island": frame["island"],
            "site": frame["island"].where(frame.index % 11 != 0),
            "sex": frame["sex"],
            "bill_length_mm": frame["bill_length_mm"],
            "bill_depth_mm": frame["bill_depth_mm"],
            "flipper_length_mm": frame["flipper_length_mm"],
            "flag": (frame["year"] == 2008).astype(object).where(frame.index % 17 != 0),
            "heavy": frame["body_mass_g"] > 4000,
        }
    )
    table.to_csv(tmp_path / "wide.csv", index=False)
    (tmp_path / "wide.features.toml").write_text(WIDE_SPEC)
    estimator = {
        "linear": Linear(kind="linear"),
        "random_forest": RandomForest(kind="random_forest", n_estimators=5),
        "hist_gradient_boosting": HistGradientBoosting(kind="hist_gradient_boosting", max_iter=5),
    }[kind]
    config = TrainConfig.model_validate(
        {
            "name": "wide",
            "spec": tmp_path / "wide.features.toml",
            "data": tmp_path / "wide.csv",
            "cv_folds": 2,
            "estimator": estimator.model_dump(exclude_unset=True),
        }
    )
    folder = save_result(train(config), tmp_path / "artifact")
    file = folder / PIPELINE_FILE
    assert len(load_artifact(folder).classes) == 2
    assert set(sio.get_untrusted_types(file=file)) <= collected(file)


def test_the_walk_sees_all_skops_sees_through_every_loader(tmp_path: Path) -> None:
    """Objects that make skops write each loader the audit knows: whatever the loader, the
    collected types hold every type skops itself reports."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 2))
    zoo = {
        "ufunc": np.add,
        "function": json.dumps,
        "method": StandardScaler().fit,
        "partial": functools.partial(max, 1),
        "types": [float, np.float32],
        "operators": [
            operator.attrgetter("a"),
            operator.itemgetter(0),
            operator.methodcaller("m"),
        ],
        "random state": np.random.RandomState(0),
        "generator": np.random.default_rng(0),
        "sparse": sparse.csr_matrix(np.eye(2)),
        "masked": np.ma.masked_array([1, 2], mask=[0, 1]),
        "bytes": [b"x", bytearray(b"y")],
        "defaultdict": collections.defaultdict(list, a=[1]),
        "set": {1, 2},
        "slice": slice(1, 2),
        "timedelta": datetime.timedelta(days=1),
        "dtype": np.dtype("float32"),
        "arrays": [np.arange(3), np.array(["a", None], dtype=object), np.float64(1.5)],
        "tree": DecisionTreeClassifier(max_depth=2).fit(X, X[:, 0] > 0),
        "boosting": HistGradientBoostingRegressor(max_iter=2).fit(X, X[:, 0]),
        "containers": ((1, "a"), {1: "a"}),
    }
    file = tmp_path / "zoo.skops"
    sio.dump(zoo, file)
    schema = read_schema(file.read_bytes())
    loaders: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            loaders.add(value.get("__loader__", ""))
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    assert loaders - {""} == set(KNOWN_LOADERS) - {"CachedNode"}  # skops writes no CachedNode
    types, unknown = referenced_types(schema)
    assert unknown == set()
    assert set(sio.get_untrusted_types(file=file)) <= types


def test_the_allowed_types_are_classes() -> None:
    """Never a function, method or module: each entry that resolves here is a class."""
    assert set(TRUSTED_TYPES) <= ALLOWED_TYPES
    importlib.import_module("sklearn._loss._loss")  # registers the `_loss` alias, if any
    for name in sorted(ALLOWED_TYPES):
        module, _, attribute = name.rpartition(".")
        try:
            with warnings.catch_warnings():  # NumPy 1 warns of np.bool, a future name
                warnings.simplefilter("ignore")
                found = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError):
            continue  # another version's name (numpy.bool before NumPy 2, _loss.*)
        assert isinstance(found, type), name


def test_a_compiled_artifact_loads_audited_without_scikit_learn_or_skops(saved: Path) -> None:
    script = f"""
import sys
from model import load_artifact
artifact = load_artifact({str(saved)!r})
assert artifact.compiled is not None and artifact.compiled.estimator is not None
print(sorted({{"sklearn", "skops", "scipy"}} & set(sys.modules)))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == ["[]"], out.stdout + out.stderr


# --- crafted files are refused ----------------------------------------------------------------


def json_node(value: object) -> Schema:
    return {
        "__class__": "str",
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(value),
        "is_json": True,
    }


def tuple_node(*items: object) -> Schema:
    content = [json_node(item) for item in items]
    return {
        "__class__": "tuple",
        "__module__": "builtins",
        "__loader__": "TupleNode",
        "content": content,
    }


def type_node(module: str, name: str) -> Schema:
    return {"__class__": name, "__module__": module, "__loader__": "TypeNode"}


def dict_node(content: dict[str, Schema]) -> Schema:
    keys = [type_node("builtins", "str") for _ in content]
    return {
        "__class__": "dict",
        "__module__": "builtins",
        "__loader__": "DictNode",
        "content": content,
        "key_types": {
            "__class__": "list",
            "__module__": "builtins",
            "__loader__": "ListNode",
            "content": keys,
        },
    }


def smuggle(node: Schema, key_type: Schema | None = None) -> Callable[[Schema], None]:
    """An edit adding ``node`` to the attributes of the pipeline (the root ObjectNode)."""

    def edit(schema: Schema) -> None:
        attributes = schema["content"]
        attributes["content"]["smuggled"] = node
        key = key_type if key_type is not None else type_node("builtins", "str")
        attributes["key_types"]["content"].append(key)

    return edit


PIPELINE = {"__class__": "Pipeline", "__module__": "sklearn.pipeline", "__loader__": "ObjectNode"}

SMUGGLED = {
    "ObjectNode": (
        smuggle({"__class__": "Popen", "__module__": "subprocess", "__loader__": "ObjectNode"}),
        "subprocess.Popen",
    ),
    "FunctionNode": (
        smuggle({"__class__": "system", "__module__": "os", "__loader__": "FunctionNode"}),
        "os.system",
    ),
    "TypeNode": (smuggle(type_node("builtins", "eval")), "builtins.eval"),
    "TypeNode as a dict key's type": (
        smuggle(json_node("x"), key_type=type_node("builtins", "eval")),
        "builtins.eval",
    ),
    "ConstructorFromReduceNode": (
        smuggle(
            {
                "__class__": "Popen",
                "__module__": "subprocess",
                "__loader__": "ConstructorFromReduceNode",
                "content": tuple_node(["sh", "-c", "id"]),
            }
        ),
        "subprocess.Popen",
    ),
    "LossNode (a ReduceNode)": (
        smuggle(
            {
                "__class__": "system",
                "__module__": "os",
                "__loader__": "LossNode",
                "__reduce__": {"args": tuple_node("id")},
                "content": dict_node({}),
            }
        ),
        "os.system",
    ),
    "MethodNode": (
        smuggle(
            {
                **PIPELINE,
                "__loader__": "MethodNode",
                "content": {"func": "__reduce_ex__", "obj": PIPELINE},
            }
        ),
        "sklearn.pipeline.Pipeline.__reduce_ex__",
    ),
    "OperatorFuncNode": (
        smuggle(
            {
                "__class__": "attrgetter",
                "__module__": "operator",
                "__loader__": "OperatorFuncNode",
                "attrs": tuple_node("__globals__"),
            }
        ),
        "operator.attrgetter",
    ),
    "PartialNode": (
        smuggle(
            {
                "__class__": "partial",
                "__module__": "functools",
                "__loader__": "PartialNode",
                "content": {
                    "func": {
                        "__class__": "system",
                        "__module__": "os",
                        "__loader__": "FunctionNode",
                    },
                    "args": tuple_node("id"),
                    "kwds": dict_node({}),
                    "namespace": json_node(None),
                },
            }
        ),
        "os.system",
    ),
    "NdArrayNode": (
        smuggle(
            {
                "__class__": "system",
                "__module__": "os",
                "__loader__": "NdArrayNode",
                "type": "json",
                "content": [json_node("id")],
                "shape": tuple_node(1),
            }
        ),
        "os.system",
    ),
    "DictNode": (
        smuggle({**dict_node({}), "__class__": "system", "__module__": "os"}),
        "os.system",
    ),
    "RandomGeneratorNode (the bit generator's name)": (
        smuggle(
            {
                "__class__": "Generator",
                "__module__": "numpy.random._generator",
                "__loader__": "RandomGeneratorNode",
                "content": {
                    "bit_generator": dict_node({"bit_generator": json_node("seed")}),
                    "seed_seq": dict_node({}),
                },
            }
        ),
        "numpy.random.seed",
    ),
}


@pytest.mark.parametrize(("edit", "expected"), SMUGGLED.values(), ids=SMUGGLED.keys())
def test_a_smuggled_type_is_refused_at_load_even_when_the_pipeline_would_wait(
    copy: Path, edit: Callable[[Schema], None], expected: str
) -> None:
    assert load_artifact(copy).compiled.estimator is not None  # the pipeline is never loaded
    file = copy / PIPELINE_FILE
    rewrite_schema(file, edit)
    rehash(copy)  # only the audit can catch it now
    assert expected in collected(file)
    assert set(sio.get_untrusted_types(file=file)) <= collected(file)
    with pytest.raises(ArtifactError, match="types outside the allowed list: ") as info:
        load_artifact(copy)
    assert str(info.value).startswith(f"{file}: ")
    assert expected in str(info.value).split(": ")[-1].split(", ")


@pytest.mark.parametrize("loader", ["EvalNode", "QuantileForestNode", ["ObjectNode"]])
def test_an_unknown_loader_is_refused(copy: Path, loader: object) -> None:
    node = {"__class__": "str", "__module__": "builtins", "__loader__": loader}
    rewrite_schema(copy / PIPELINE_FILE, smuggle(node))
    rehash(copy)
    with pytest.raises(ArtifactError, match="uses skops loaders outside the known list: ") as info:
        load_artifact(copy)
    assert str(info.value).endswith(str(loader))


def nest(depth: int) -> Callable[[Schema], None]:
    def edit(schema: Schema) -> None:
        value: object = json_node("bottom")
        for _ in range(depth):
            value = [value]
        smuggle(
            dict_node(
                {
                    "deep": {
                        "__class__": "list",
                        "__module__": "builtins",
                        "__loader__": "ListNode",
                        "content": value,
                    }
                }
            )
        )(schema)

    return edit


def set_protocol(value: object) -> Callable[[Schema], None]:
    def edit(schema: Schema) -> None:
        if value is None:
            del schema["protocol"]
        else:
            schema["protocol"] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (nest(MAX_DEPTH), f"unreadable skops file: nested deeper than {MAX_DEPTH} levels"),
        (smuggle({"__loader__": "ObjectNode"}), "unreadable skops file: a node without a type"),
        (
            smuggle({**type_node("os", "x"), "__loader__": "MethodNode", "content": {}}),
            "unreadable skops file: a MethodNode without its object and method name",
        ),
        (lambda schema: schema.pop("__loader__"), "unreadable skops file: no root node"),
        (set_protocol(3), "skops protocol 3 is not one this model package reads"),
        (set_protocol(True), "skops protocol True is not one this model package reads"),
        (set_protocol(None), "skops protocol None is not one this model package reads"),
    ],
    ids=["too deep", "no type", "bad method", "no root", "newer", "true", "none"],
)
def test_a_malformed_schema_is_refused(
    copy: Path, edit: Callable[[Schema], object], problem: str
) -> None:
    rewrite_schema(copy / PIPELINE_FILE, edit)
    rehash(copy)
    with pytest.raises(ArtifactError, match=problem.replace(".", r"\.")):
        load_artifact(copy)


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        ({"notes.txt": b"no schema"}, "no schema.json entries"),
        ({"schema.json": b"{not json"}, "schema.json is not valid JSON"),
        ({"schema.json": b"\xff\xfe\xfa"}, "schema.json is not valid JSON"),
        ({"schema.json": b"[" * 100_000 + b"]" * 100_000}, "schema.json is nested too deeply"),
        ({"schema.json": b"[]"}, "no root node"),
    ],
    ids=["no schema", "not json", "not text", "deeper than JSON parses", "no root"],
)
def test_a_skops_file_without_a_readable_schema_is_refused(
    copy: Path, entries: dict[str, bytes], problem: str
) -> None:
    with zipfile.ZipFile(copy / PIPELINE_FILE, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    rehash(copy)
    with pytest.raises(ArtifactError, match=f"unreadable skops file: {problem}"):
        load_artifact(copy)


def test_two_schemas_are_refused(copy: Path) -> None:
    """zipfile reads the last of two same-named entries: which one skops would audit is
    not worth guessing."""
    file = copy / PIPELINE_FILE
    with zipfile.ZipFile(file) as archive:
        schema = archive.read("schema.json")
    with warnings.catch_warnings(), zipfile.ZipFile(file, "a") as archive:
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name
        archive.writestr("schema.json", schema)
    rehash(copy)
    with pytest.raises(ArtifactError, match=r"unreadable skops file: 2 schema\.json entries"):
        load_artifact(copy)


def test_a_damaged_zip_is_refused(copy: Path) -> None:
    (copy / PIPELINE_FILE).write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    rehash(copy)
    with pytest.raises(ArtifactError, match="unreadable skops file: BadZipFile: "):
        load_artifact(copy)


def test_an_oversized_schema_is_refused(saved: Path) -> None:
    file = saved / PIPELINE_FILE
    size = zipfile.ZipFile(file).getinfo("schema.json").file_size
    audit_skops(file.read_bytes(), file, max_bytes=size)
    with pytest.raises(
        ArtifactError, match=re.escape(f"schema.json is larger than {size - 1:,} bytes")
    ):
        audit_skops(file.read_bytes(), file, max_bytes=size - 1)
