import hashlib
import json
import pickle
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline

import features
import model
from features import SpecError, validate
from model import (
    FORMAT_VERSION,
    Artifact,
    ArtifactError,
    TrainResult,
    load_artifact,
    save_result,
    train,
)
from model.manifest import INFERENCE_FILE, MANIFEST_FILE, PIPELINE_FILE, sha256_file
from model.predictor import load_pipeline
from model.saving import manifest_for
from model.store import write_artifact
from model.testing import rewrite_manifest


def edit_manifest(path: Path, **changes: object) -> None:
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    manifest.update(changes)
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))


def rehash(path: Path) -> None:
    """What an attacker who can write the directory would do: make the hashes match again."""
    files = {p.name: sha256_file(p) for p in path.iterdir() if p.name != MANIFEST_FILE}
    edit_manifest(path, files=files)


def expected_version(manifest: dict[str, object]) -> str:
    """The documented model version, computed here from the manifest."""
    files, config, data = manifest["files"], manifest["config"], manifest["data"]
    assert isinstance(files, dict)
    assert isinstance(config, dict)
    assert isinstance(data, dict)
    parts = {
        "inference.json": files.get("inference.json"),
        "pipeline.skops": files["pipeline.skops"],
        "classes": manifest["classes"],
        "feature_spec": manifest["feature_spec"],
        "config": {k: v for k, v in config.items() if k not in {"spec", "data"}},
        "data": {k: v for k, v in data.items() if k != "file"},
        "metrics": {"metrics": manifest["metrics"], "cv_metrics": manifest["cv_metrics"]},
    }
    covers = manifest["model_version_covers"]
    assert isinstance(covers, list)
    text = json.dumps({k: parts[k] for k in covers}, sort_keys=True, separators=(",", ":"))
    return f"{model.__version__}+{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def test_layout_and_manifest(saved: Path, species_result: TrainResult) -> None:
    assert sorted(p.name for p in saved.iterdir()) == [
        "MODEL_CARD.md",
        "inference.json",
        "manifest.json",
        "pipeline.skops",
    ]
    manifest = json.loads((saved / MANIFEST_FILE).read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["model_name"] == "penguins-species"
    assert manifest["task"] == "classification"
    assert manifest["versions"]["features"] == features.__version__
    assert manifest["versions"]["model"] == model.__version__
    assert {"scikit-learn", "python", "skops"} <= manifest["versions"].keys()
    assert manifest["feature_spec"]["target"]["name"] == "species"
    assert manifest["config"]["estimator"]["kind"] == "linear"
    assert manifest["metrics"] == species_result.metrics
    assert manifest["data"]["rows"] == 344
    assert len(manifest["data"]["sha256"]) == 64
    assert manifest["files"] == {
        name: sha256_file(saved / name)
        for name in ("pipeline.skops", "MODEL_CARD.md", "inference.json")
    }
    assert manifest["model_version"] == expected_version(manifest)
    assert manifest["model_version_covers"] == [
        "inference.json",
        "classes",
        "feature_spec",
        "config",
        "data",
        "metrics",
    ]
    assert manifest["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert "created_at" in manifest
    assert "git_commit" in manifest
    card = (saved / "MODEL_CARD.md").read_text()
    assert "# Model card: penguins-species" in card
    assert "balanced_accuracy" in card


def test_loaded_artifact_predicts_like_the_trained_pipeline(
    artifact: Artifact, species_result: TrainResult, penguins: pd.DataFrame
) -> None:
    X = penguins.drop(columns=["species"])
    prediction = artifact.predict(validate(artifact.spec, X).valid)
    assert prediction.probabilities is not None
    np.testing.assert_allclose(  # the compiled form sums in its own order: equal to rounding
        prediction.probabilities,
        species_result.pipeline.predict_proba(X[artifact.spec.feature_names]),
        rtol=1e-12,
        atol=1e-15,
    )
    assert artifact.classes == ["Adelie", "Chinstrap", "Gentoo"]
    assert (prediction.labels == penguins["species"].to_numpy()).mean() > 0.97


def test_predictions_align_with_input_and_report_rejects(
    artifact: Artifact, penguins: pd.DataFrame
) -> None:
    X = penguins.drop(columns=["species"]).head(6).set_axis(list("abcdef"))
    X.loc["b", "bill_depth_mm"] = -1.0
    X.loc["e", "sex"] = "x"
    result = validate(artifact.spec, X)
    prediction = artifact.predict(result.valid)
    assert prediction.rows.tolist() == [0, 2, 3, 5]
    assert prediction.probabilities is not None
    assert len(prediction.probabilities) == len(prediction.labels) == 4
    assert result.report.invalid_rows.tolist() == [1, 4]
    assert np.allclose(prediction.probabilities.sum(axis=1), 1.0)


def test_predict_takes_only_validated_rows(artifact: Artifact, penguins: pd.DataFrame) -> None:
    with pytest.raises(TypeError, match=r"features\.ValidRows"):
        artifact.predict(penguins)  # type: ignore[arg-type]


def test_changed_file_is_refused(copy: Path) -> None:
    with (copy / "MODEL_CARD.md").open("a") as handle:
        handle.write("\nall accuracy claims doubled\n")
    with pytest.raises(ArtifactError, match=r"MODEL_CARD\.md: sha256 does not match the manifest"):
        load_artifact(copy)


def test_truncated_pipeline_is_refused(copy: Path) -> None:
    data = (copy / PIPELINE_FILE).read_bytes()
    (copy / PIPELINE_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="changed or truncated"):
        load_artifact(copy)


def test_missing_file_is_refused(copy: Path) -> None:
    (copy / "MODEL_CARD.md").unlink()
    with pytest.raises(ArtifactError, match="listed in the manifest but missing"):
        load_artifact(copy)


@pytest.mark.parametrize("name", ["model.pkl", "model.joblib"])
def test_pickle_or_joblib_file_beside_is_refused(copy: Path, artifact: Artifact, name: str) -> None:
    (copy / name).write_bytes(pickle.dumps(artifact.pipeline))
    with pytest.raises(ArtifactError, match=f"{name}: pickle/joblib files are refused"):
        load_artifact(copy)


def test_pickle_in_place_of_skops_is_refused_before_unpickling(
    copy: Path, artifact: Artifact
) -> None:
    (copy / PIPELINE_FILE).write_bytes(pickle.dumps(artifact.pipeline))
    rehash(copy)
    with pytest.raises(ArtifactError, match="not a skops file"):
        load_artifact(copy)


class Sneaky(TransformerMixin, BaseEstimator):
    """Stands for any type a crafted artifact could smuggle in."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X


def test_untrusted_type_is_refused(copy: Path, artifact: Artifact) -> None:
    crafted = Pipeline([("sneaky", Sneaky()), *artifact.pipeline.steps])
    sio.dump(crafted, copy / PIPELINE_FILE, compression=zipfile.ZIP_DEFLATED)
    rehash(copy)
    with pytest.raises(ArtifactError, match=r"types outside the allowed list: .*Sneaky"):
        load_artifact(copy)  # the compiled form would never load the pipeline: audited anyway
    (copy / INFERENCE_FILE).unlink()
    rehash(copy)
    with pytest.raises(ArtifactError, match=r"types outside the allowed list: .*Sneaky"):
        load_artifact(copy)


def test_skops_audits_again_where_the_pipeline_loads(copy: Path, artifact: Artifact) -> None:
    """Defence in depth: were the load-time audit passed, skops' own would still refuse."""
    crafted = Pipeline([("sneaky", Sneaky()), *artifact.pipeline.steps])
    sio.dump(crafted, copy / PIPELINE_FILE, compression=zipfile.ZIP_DEFLATED)
    with pytest.raises(ArtifactError, match=r"holds types outside the trusted list: .*Sneaky"):
        load_pipeline((copy / PIPELINE_FILE).read_bytes(), copy / PIPELINE_FILE)


def test_training_never_writes_an_artifact_loading_would_refuse(
    artifact: Artifact, species_result: TrainResult, tmp_path: Path
) -> None:
    crafted = Pipeline([("sneaky", Sneaky()), *artifact.pipeline.steps])
    manifest = manifest_for(species_result)
    with pytest.raises(ArtifactError, match=r"types outside the allowed list: .*Sneaky"):
        write_artifact(tmp_path / "out", crafted, manifest, "a card", species_result.compiled)
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_version_is_refused(copy: Path) -> None:
    edit_manifest(copy, format_version=FORMAT_VERSION + 1)
    with pytest.raises(
        ArtifactError, match=f"format version {FORMAT_VERSION + 1} is not supported"
    ):
        load_artifact(copy)


@pytest.mark.parametrize("trained_with", ["0.2.0", "1.1.0", "garbage"])
def test_other_features_version_is_refused(copy: Path, trained_with: str) -> None:
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    edit_manifest(copy, versions={**manifest["versions"], "features": trained_with})
    with pytest.raises(ArtifactError, match=r"major\.minor must match \(train/serve skew\)"):
        load_artifact(copy)


def test_same_minor_other_patch_is_accepted(copy: Path) -> None:
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    major, minor, _ = features.__version__.split(".")
    edit_manifest(copy, versions={**manifest["versions"], "features": f"{major}.{minor}.99"})
    assert load_artifact(copy).name == "penguins-species"


def test_broken_manifest(copy: Path, tmp_path: Path) -> None:
    (copy / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_artifact(copy)
    with pytest.raises(ArtifactError, match="artifact directory not found"):
        load_artifact(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="not a model artifact"):
        load_artifact(tmp_path / "empty")


def test_unlisted_file_is_refused(copy: Path) -> None:
    (copy / "extra.skops").write_bytes((copy / PIPELINE_FILE).read_bytes())
    with pytest.raises(ArtifactError, match=r"extra\.skops: file not listed in the manifest"):
        load_artifact(copy)


@pytest.mark.parametrize("kind", ["random_forest", "hist_gradient_boosting"])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_every_estimator_round_trips(trained, penguins: pd.DataFrame, kind: str, task: str) -> None:
    """TRUSTED_TYPES covers every estimator of the registry for both tasks, and the loaded
    artifact predicts what the pipeline predicts (for classifiers: from one predict_proba pass)."""
    result, folder = trained(kind, task)
    loaded = load_artifact(folder)
    assert loaded.compiled is not None, "the preprocessing compiles for every estimator"
    assert loaded.numpy_only, "trees compile too"
    valid = validate(loaded.spec, penguins.drop(columns=[loaded.spec.target.name])).valid
    X = valid.frame()[loaded.spec.feature_names]
    predicted = loaded.predict(valid)
    np.testing.assert_array_equal(predicted.labels, result.pipeline.predict(X))
    if task == "classification":
        np.testing.assert_allclose(
            predicted.probabilities, result.pipeline.predict_proba(X), rtol=1e-12, atol=1e-12
        )


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_compiled_form_predicts_like_the_pipeline(
    species_config, body_mass_config, penguins: pd.DataFrame, tmp_path: Path, task: str
) -> None:
    config = species_config if task == "classification" else body_mass_config
    result = train(config)
    loaded = load_artifact(save_result(result, tmp_path / task))
    assert loaded.compiled is not None
    assert loaded.compiled.estimator is not None
    valid = validate(loaded.spec, penguins).valid
    predicted = loaded.predict(valid)
    labels, proba = predicted.labels, predicted.probabilities
    X = valid.frame()[loaded.spec.feature_names]
    if task == "classification":
        np.testing.assert_allclose(proba, result.pipeline.predict_proba(X), rtol=1e-12, atol=1e-15)
        assert labels.tolist() == result.pipeline.predict(X).tolist()
    else:
        assert proba is None
        np.testing.assert_allclose(labels, result.pipeline.predict(X), rtol=1e-12)


def test_compiled_artifact_predicts_without_scikit_learn(
    saved: Path, penguins: pd.DataFrame
) -> None:
    """What keeps a serving process's start-up short: no scikit-learn, SciPy or pandas."""
    row = penguins.drop(columns=["species"]).head(1).to_dict(orient="records")[0]
    script = f"""
import sys
from features import validate
from model import load_artifact
artifact = load_artifact({str(saved)!r})
labels = artifact.predict(validate(artifact.spec, [{row!r}]).valid).labels
heavy = sorted({{"sklearn", "scipy", "pandas", "skops", "pyarrow"}} & set(sys.modules))
print(labels[0], heavy)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == ["Adelie", "[]"], out.stdout + out.stderr


def test_malformed_compiled_form_is_refused(copy: Path) -> None:
    raw = json.loads((copy / INFERENCE_FILE).read_text())
    raw["estimator"]["kind"] = "polynomial"
    (copy / INFERENCE_FILE).write_text(json.dumps(raw))
    rehash(copy)
    with pytest.raises(ArtifactError, match=r"inference\.json: malformed compiled model"):
        load_artifact(copy)


def test_artifact_without_compiled_form_predicts_with_scikit_learn(
    species_result: TrainResult, penguins: pd.DataFrame, tmp_path: Path
) -> None:
    """An artifact whose preprocessing does not compile: the whole skops pipeline predicts,
    and the version covers pipeline.skops."""
    path = write_artifact(
        tmp_path / "plain", species_result.pipeline, manifest_for(species_result), "card"
    )
    loaded = load_artifact(path)
    assert loaded.compiled is None
    assert loaded.manifest.model_version_covers[-1] == "pipeline.skops"
    assert loaded.version == expected_version(loaded.manifest.model_dump(mode="json"))
    X = penguins.drop(columns=["species"])
    np.testing.assert_array_equal(
        loaded.predict(validate(loaded.spec, X).valid).probabilities,
        species_result.pipeline.predict_proba(X[loaded.spec.feature_names]),
    )


def test_the_same_config_data_and_lock_give_the_same_version(
    species_config, tmp_path: Path, penguins: pd.DataFrame
) -> None:
    """Two trainings of one config: one model version (the skops files differ in their
    bytes), the same predictions; another fitted model: another version."""
    first = load_artifact(save_result(train(species_config), tmp_path / "first"))
    again = load_artifact(save_result(train(species_config), tmp_path / "again"))
    assert sha256_file(first.path / PIPELINE_FILE) != sha256_file(again.path / PIPELINE_FILE)
    assert again.version == first.version
    valid = validate(first.spec, penguins).valid
    np.testing.assert_array_equal(
        first.predict(valid).probabilities, again.predict(valid).probabilities
    )
    other = species_config.model_copy(
        update={"estimator": species_config.estimator.model_copy(update={"C": 0.5})}
    )
    assert load_artifact(save_result(train(other), tmp_path / "other")).version != first.version


def _reordered_classes(manifest: dict) -> None:
    manifest["classes"] = list(reversed(manifest["classes"]))


def _changed_description(manifest: dict) -> None:
    manifest["feature_spec"]["features"][0]["description"] = "changed"


def _changed_option(manifest: dict) -> None:
    manifest["config"]["estimator"]["C"] = 7.0


def _changed_data(manifest: dict) -> None:
    manifest["data"]["sha256"] = "0" * 64


def _narrower_cover(manifest: dict) -> None:
    manifest["model_version_covers"] = manifest["model_version_covers"][1:]


def _better_metrics(manifest: dict) -> None:
    manifest["metrics"]["balanced_accuracy"] = 1.0 - manifest["metrics"]["balanced_accuracy"] / 2


def _steadier_cross_validation(manifest: dict) -> None:
    manifest["cv_metrics"]["accuracy"]["std"] = 0.0


@pytest.mark.parametrize(
    "tamper",
    [
        _reordered_classes,
        _changed_description,
        _changed_option,
        _changed_data,
        _narrower_cover,
        _better_metrics,
        _steadier_cross_validation,
    ],
)
def test_changing_what_the_version_covers_is_refused(copy: Path, tamper) -> None:
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    tamper(manifest)
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=r"does not match what the artifact holds|classes"):
        load_artifact(copy)


def test_a_rewritten_compiled_form_is_refused_under_its_version(copy: Path) -> None:
    """Rewriting inference.json (its hash updated in the manifest) once mislabelled every
    prediction under an unchanged version; now the version no longer matches."""
    raw = json.loads((copy / INFERENCE_FILE).read_text())
    raw["estimator"]["intercept"][0] += 5.0
    (copy / INFERENCE_FILE).write_text(json.dumps(raw))
    rehash(copy)
    with pytest.raises(ArtifactError, match="does not match what the artifact holds"):
        load_artifact(copy)
    (copy / INFERENCE_FILE).unlink()  # dropping it: the skops pipeline would predict
    rehash(copy)
    with pytest.raises(ArtifactError, match="does not match what the artifact holds"):
        load_artifact(copy)


def test_the_model_card_is_not_covered(copy: Path, artifact: Artifact) -> None:
    (copy / "MODEL_CARD.md").write_text("rewritten\n")
    rehash(copy)
    assert load_artifact(copy).version == artifact.version


def test_deeply_nested_compiled_form_is_refused(copy: Path) -> None:
    depth = 100_000
    (copy / INFERENCE_FILE).write_text("[" * depth + "]" * depth)
    rehash(copy)
    with pytest.raises(ArtifactError, match=r"inference\.json: malformed compiled model") as info:
        load_artifact(copy)
    assert "nested too deeply" in str(info.value)


@pytest.mark.parametrize(
    "version",
    [
        True,
        1.0,
        "1",
        float(FORMAT_VERSION),  # equal to it, but not the integer
        float(FORMAT_VERSION + 1),
        str(FORMAT_VERSION),
        f"{FORMAT_VERSION}.0",
    ],
    ids=repr,
)
def test_format_version_must_be_the_integer(copy: Path, version: object) -> None:
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = version
    (copy / "manifest.json").write_text(json.dumps(manifest))
    refusal = f"artifact format version {version!r} is not supported"
    with pytest.raises(ArtifactError, match=re.escape(refusal)):
        load_artifact(copy)


def test_changed_metrics_show_under_another_version(copy: Path, artifact: Artifact) -> None:
    """Who rewrites the metrics must rewrite the version: the claim is not the published one."""
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    rewrite_manifest(copy, metrics={**manifest["metrics"], "rmse": 0.0})
    assert load_artifact(copy).version != artifact.version


@pytest.mark.parametrize(
    ("name", "task"), [("penguins-species", "regression"), ("penguins-sex", "classification")]
)
def test_a_name_or_task_that_is_not_the_config_s_or_spec_s_is_refused(
    copy: Path, name: str, task: str
) -> None:
    """The version does not cover them: they are checked against the config and the spec,
    which it covers (so a renamed model is a retrained one)."""
    rewrite_manifest(copy, model_name=name, task=task)
    with pytest.raises(ArtifactError) as refused:
        load_artifact(copy)
    assert str(refused.value) == (
        f"{copy / MANIFEST_FILE}: model_name {name!r} and task {task!r} are not the config's "
        "'penguins-species' and the feature spec's 'classification'; the manifest was changed"
    )


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda m: m["versions"].pop("model"), "versions: Value error, names no model version"),
        (lambda m: m.__setitem__("versions", "0.1.0"), "versions: Input should be a valid dict"),
        (lambda m: m["versions"].__setitem__("model", 1), "versions.model: Input should be a"),
        (lambda m: m.__setitem__("model_name", 5), "model_name: Input should be a valid string"),
        (lambda m: m.pop("files"), "files: Field required"),
        (lambda m: m.__setitem__("classes", "Adelie"), "classes: Input should be a valid list"),
        (lambda m: m.__setitem__("created_at", "yesterday"), "created_at: Input should be a"),
    ],
    ids=["no model version", "versions text", "version number", "name", "files", "classes", "time"],
)
def test_a_missing_or_ill_typed_manifest_field_is_one_line(
    copy: Path, edit: Callable[[dict], object], problem: str
) -> None:
    """Not a KeyError from deep inside (versions.model once was one, in model info and serve)."""
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    edit(manifest)
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError) as refused:
        load_artifact(copy)
    message = str(refused.value)
    assert message.startswith(f"{copy / MANIFEST_FILE}: malformed manifest: 1 problem(s), first: ")
    assert problem in message
    assert "\n" not in message


# --- found by mutation testing ----------------------------------------------------------------


def test_missing_features_version_is_refused(copy: Path) -> None:
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    del manifest["versions"]["features"]
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    expected = f"{copy}: trained with features (unknown), but features {features.__version__} is"
    with pytest.raises(ArtifactError, match=re.escape(expected)):
        load_artifact(copy)


@pytest.mark.parametrize("content", [b"neither a pickle nor a zip", b""])
def test_pipeline_that_is_no_zip_is_refused_at_once(copy: Path, content: bytes) -> None:
    """Even when the compiled form predicts and loading the pipeline waits."""
    (copy / PIPELINE_FILE).write_bytes(content)
    rehash(copy)
    with pytest.raises(ArtifactError, match=r"pipeline\.skops: not a skops file"):
        load_artifact(copy)


def test_zip_that_is_no_skops_file_is_refused(copy: Path) -> None:
    with zipfile.ZipFile(copy / PIPELINE_FILE, "w") as archive:
        archive.writestr("notes.txt", "not a pipeline")
    rehash(copy)
    with pytest.raises(ArtifactError, match=r"pipeline\.skops: unreadable skops file: "):
        load_artifact(copy)  # even when the compiled form predicts and the pipeline waits


def test_skops_file_without_a_pipeline_is_refused(copy: Path, artifact: Artifact) -> None:
    estimator = artifact.pipeline[-1]
    sio.dump(estimator, copy / PIPELINE_FILE, compression=zipfile.ZIP_DEFLATED)
    rehash(copy)
    loaded = load_artifact(copy)
    expected = f"holds a {type(estimator).__name__}, expected a scikit-learn Pipeline"
    with pytest.raises(ArtifactError, match=expected):
        _ = loaded.pipeline


def test_manifest_without_the_pipeline_is_refused(copy: Path) -> None:
    (copy / PIPELINE_FILE).unlink()
    rehash(copy)
    with pytest.raises(
        ArtifactError, match=re.escape(f"{copy}: the manifest lists no {PIPELINE_FILE}")
    ):
        load_artifact(copy)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", r"not valid JSON \(Expecting property name .*line 1 column 2"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_unreadable_manifest_says_why(copy: Path, text: str, problem: str) -> None:
    (copy / MANIFEST_FILE).write_text(text)
    with pytest.raises(ArtifactError, match=f"{re.escape(str(copy / MANIFEST_FILE))}: {problem}"):
        load_artifact(copy)


def test_malformed_manifest_names_its_first_problem(copy: Path) -> None:
    edit_manifest(copy, metrics={"accuracy": "high"}, files=5)
    with pytest.raises(ArtifactError) as info:
        load_artifact(copy)
    assert str(info.value) == (
        f"{copy / MANIFEST_FILE}: malformed manifest: 2 problem(s), first: metrics.accuracy: "
        "Input should be a valid number"
    )


def test_feature_spec_errors_name_the_manifest(copy: Path) -> None:
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    edit_manifest(copy, feature_spec={**manifest["feature_spec"], "task": "clustering"})
    with pytest.raises(SpecError, match=f"{re.escape(str(copy / MANIFEST_FILE))}: invalid"):
        load_artifact(copy)
