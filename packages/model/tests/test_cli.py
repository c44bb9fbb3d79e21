import json
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from sklearn import metrics

import model
import model.training
from model import ArtifactError, load_artifact, load_default
from model.cli import main
from model.manifest import (
    INFERENCE_FILE,
    MANIFEST_FILE,
    PIPELINE_FILE,
    model_version,
    sha256_file,
)
from model.testing import bundle_set_aside, rewrite_manifest

DEEP = 100_000  # JSON nesting far past the recursion limit


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the tables rich printed, as stripped cells."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in text.splitlines()
        if line.startswith("│")
    ]


def printed_metrics(text: str) -> dict[str, list[str]]:
    """A metrics table: name to its printed values (holdout, then CV for `model train`)."""
    return {name: values for name, *values in table_rows(text)}


def info_rows(text: str) -> dict[str, str]:
    """`model info`'s table, key to value, wrapped values joined back with a space."""
    rows: dict[str, str] = {}
    key = ""
    for name, value in table_rows(text):
        key = name or key
        rows[key] = f"{rows[key]} {value}" if name == "" else value
    return rows


PROGRESS = re.compile(r"^\S+ +\d+\.\ds  (.*)$")  # `model train`'s step lines off a terminal


def one_line_error(stderr: str) -> str:
    """The single ``error:`` line a refusal prints after any progress lines (never a
    traceback)."""
    lines = [line for line in stderr.strip().splitlines() if not PROGRESS.match(line)]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


def edit_manifest(path: Path, **changes: object) -> None:
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    (path / MANIFEST_FILE).write_text(json.dumps({**manifest, **changes}))


def test_train_default_demo(
    in_workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "species"
    assert main(["train", "--output", str(output)]) == 0
    text = capsys.readouterr().out
    assert "penguins-species: linear on 344 rows (0 rejected by validation)" in text
    assert "balanced_accuracy" in text
    assert f"written to {output}" in text.replace("\n", "")
    assert "predicts with NumPy (inference.json, checked against scikit-learn on" in text
    manifest = load_artifact(output).manifest
    assert manifest.model_name == "penguins-species"
    assert printed_metrics(text) == {
        name: [f"{value:.4f}", f"{cv['mean']:.4f} ± {cv['std']:.4f}"]
        for (name, value), cv in zip(
            manifest.metrics.items(), manifest.cv_metrics.values(), strict=True
        )
    }


def test_train_regression_config(
    in_workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "mass"
    assert (
        main(["train", "--config", "configs/penguins_body_mass.toml", "--output", str(output)]) == 0
    )
    text = capsys.readouterr().out
    assert "(2 rejected by validation)" in text
    assert "body_mass_g: null not allowed (2 rows)" in text
    artifact = load_artifact(output)
    assert artifact.spec.task == "regression"

    data = in_workspace / "data" / "penguins.csv"
    assert main(["evaluate", str(output), "--data", str(data)]) == 0
    evaluated = capsys.readouterr().out
    assert "342 rows scored, 2 rejected" in evaluated
    frame = pd.read_csv(data).dropna(subset=["body_mass_g"])
    pipeline = artifact.pipeline
    y, predicted = frame["body_mass_g"], pipeline.predict(frame[pipeline.feature_names_in_])
    expected = {
        "rmse": metrics.root_mean_squared_error(y, predicted),
        "mae": metrics.mean_absolute_error(y, predicted),
        "r2": metrics.r2_score(y, predicted),
    }
    assert printed_metrics(evaluated) == {name: [f"{v:.4f}"] for name, v in expected.items()}


def test_quality_gate_failure_writes_nothing(
    in_workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "strict.toml"
    text = (in_workspace / "configs" / "penguins_body_mass.toml").read_text()
    text = text.replace("max_rmse = 400.0", "max_rmse = 1.0")
    text = text.replace(
        '"penguins_body_mass.features.toml"',
        repr(str(in_workspace / "configs" / "penguins_body_mass.features.toml")),
    )
    text = text.replace('"../data/penguins.csv"', repr(str(in_workspace / "data" / "penguins.csv")))
    config.write_text(text)
    output = tmp_path / "never"
    assert main(["train", "--config", str(config), "--output", str(output)]) == 3
    error = capsys.readouterr().err
    assert "quality gate failed, no artifact written: rmse" in error
    assert "is not <= 1.0" in error
    assert not output.exists()


def test_no_config_outside_the_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["train"]) == 1
    assert (
        "no --config given and configs/penguins_species.toml is not in the current directory"
        in (capsys.readouterr().err.replace("\n", " "))
    )


def test_info_and_evaluate(
    saved: Path, in_workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`model evaluate` prints what scikit-learn computes from the pipeline's predictions, on
    a copy of the data with every fifth label changed (so the metrics are not all 1 and
    differ from each other)."""
    assert main(["info", str(saved)]) == 0
    info = info_rows(capsys.readouterr().out)
    assert info["task"] == "classification (target species)"
    assert info["classes"] == "Adelie, Chinstrap, Gentoo"
    digest = load_artifact(saved).digest  # what serving's artifact_digest setting takes
    assert info["digest"].replace(" ", "") == f"{digest}(sha256ofmanifest.json)"

    frame = pd.read_csv(in_workspace / "data" / "penguins.csv")
    classes = ["Adelie", "Chinstrap", "Gentoo"]
    shifted = frame["species"].map(lambda c: classes[(classes.index(c) + 1) % 3])
    frame["species"] = frame["species"].where(frame.index % 5 != 0, shifted)
    data = tmp_path / "relabelled.csv"
    frame.to_csv(data, index=False)

    assert main(["evaluate", str(saved), "--data", str(data)]) == 0
    evaluated = capsys.readouterr().out
    assert "344 rows scored, 0 rejected; predicted with NumPy (inference.json), as served" in (
        evaluated.replace("\n", "")
    )
    assert "the data the model was trained on" not in evaluated
    frame = pd.read_csv(data)
    pipeline = load_artifact(saved).pipeline
    y, predicted = frame["species"], pipeline.predict(frame[pipeline.feature_names_in_])
    expected = {
        "accuracy": metrics.accuracy_score(y, predicted),
        "balanced_accuracy": metrics.balanced_accuracy_score(y, predicted),
        "f1_macro": metrics.f1_score(y, predicted, average="macro"),
    }
    assert len({f"{v:.4f}" for v in expected.values()}) == 3
    assert printed_metrics(evaluated) == {name: [f"{v:.4f}"] for name, v in expected.items()}


def test_evaluate_says_when_it_is_the_training_data(
    saved: Path, in_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", str(saved)]) == 0  # the manifest names the training data
    out = capsys.readouterr().out.replace("\n", " ")
    assert "note: this is the data the model was trained on" in out


def test_refused_artifact_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", str(tmp_path)]) == 1
    assert "not a model artifact (no manifest.json)" in capsys.readouterr().err


@pytest.fixture
def no_bundle() -> Iterator[Path]:
    with bundle_set_aside() as bundle:
        yield bundle


def test_plain_train_makes_the_bundled_default(
    no_bundle: Path, in_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ArtifactError, match="no default artifact is bundled"):
        load_default()
    assert main(["train"]) == 0
    assert (
        "(the default artifact: `serving serve` and `model info` use it)" in capsys.readouterr().out
    )
    bundled = load_default()
    assert bundled.path == no_bundle
    assert bundled.name == "penguins-species"
    assert bundled.manifest.versions["model"] == model.__version__
    assert main(["info"]) == 0


def test_bundle_any_config(no_bundle: Path, in_workspace: Path) -> None:
    assert main(["train", "--config", "configs/penguins_body_mass.toml", "--bundle"]) == 0
    assert load_default().name == "penguins-body-mass"


def test_bundle_command_into_the_installed_package_or_a_source_tree(
    no_bundle: Path, in_workspace: Path, tmp_path: Path
) -> None:
    """`model bundle`: the default config into the installed package; with --source-tree,
    into that model package's sources (what a release build ships), the installed one left
    alone."""
    tree = tmp_path / "packages" / "model"
    assert main(["bundle", "--source-tree", str(tree)]) == 0
    staged = load_artifact(tree / "src" / "model" / "default_artifact")
    assert staged.name == "penguins-species"
    assert staged.manifest.versions["model"] == model.__version__
    assert not no_bundle.exists()
    assert main(["bundle", "--config", "configs/penguins_body_mass.toml"]) == 0
    assert load_default().name == "penguins-body-mass"


def user_folder(output: Path, saved: Path) -> None:
    output.mkdir()
    (output / "notes.txt").write_text("my notes\n")


def regular_file(output: Path, saved: Path) -> None:
    output.write_text("my notes\n")


def artifact_and_notes(output: Path, saved: Path) -> None:
    shutil.copytree(saved, output)
    (output / "notes.txt").write_text("my notes\n")


def contents(path: Path) -> dict[str, bytes]:
    """Every file at or under ``path``, by relative name."""
    if path.is_file():
        return {".": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (user_folder, "holds files that are not a model artifact"),
        (regular_file, "exists and is not a folder"),
        (artifact_and_notes, "a model artifact, but it also holds notes.txt"),
    ],
    ids=["user folder", "regular file", "artifact plus user file"],
)
def test_train_refuses_to_replace_what_is_not_an_artifact(
    setup: Callable[[Path, Path], None],
    reason: str,
    saved: Path,
    in_workspace: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    output = tmp_path / "species"
    setup(output, saved)
    before = contents(output)

    def no_training(*_: object, **__: object) -> None:
        pytest.fail("trained before refusing the output")

    monkeypatch.setattr(model.training, "train", no_training)
    assert main(["train", "--output", str(output)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # no metrics table: nothing was trained
    line = one_line_error(captured.err)
    assert f"error: {output}: " in line
    assert reason in line
    assert contents(output) == before
    assert [p.name for p in tmp_path.iterdir()] == ["species"]


@pytest.mark.parametrize("previous", ["empty folder", "artifact"])
def test_train_replaces_a_previous_artifact(
    previous: str,
    saved: Path,
    in_workspace: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = tmp_path / "species"
    if previous == "artifact":
        shutil.copytree(saved, output)
        edit_manifest(output, model_name="the-previous-model")
    else:
        output.mkdir()
    assert main(["train", "--output", str(output)]) == 0
    assert f"written to {output}" in capsys.readouterr().out.replace("\n", "")
    assert load_artifact(output).name == "penguins-species"
    assert sorted(p.name for p in output.iterdir()) == [
        "MODEL_CARD.md",
        "inference.json",
        "manifest.json",
        "pipeline.skops",
    ]
    # Neither the staging folder (.species.partial-*) nor the old one (.species.old-*) is left.
    assert [p.name for p in tmp_path.iterdir()] == ["species"]


def nested_manifest(path: Path) -> None:
    (path / MANIFEST_FILE).write_text("[" * DEEP + "]" * DEEP)


def nested_inference(path: Path) -> None:
    (path / INFERENCE_FILE).write_text("[" * DEEP + "]" * DEEP)
    files = json.loads((path / MANIFEST_FILE).read_text())["files"]
    edit_manifest(path, files={**files, INFERENCE_FILE: sha256_file(path / INFERENCE_FILE)})


def folder_for_pipeline(path: Path) -> None:
    (path / PIPELINE_FILE).unlink()
    (path / PIPELINE_FILE).mkdir()


def no_model_version(path: Path) -> None:
    versions = json.loads((path / MANIFEST_FILE).read_text())["versions"]
    edit_manifest(path, versions={k: v for k, v in versions.items() if k != "model"})


def folder_for_manifest(path: Path) -> None:
    (path / MANIFEST_FILE).unlink()
    (path / MANIFEST_FILE).mkdir()


@pytest.mark.parametrize("command", ["info", "evaluate"])
@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (nested_manifest, "manifest.json: not valid JSON (nested too deeply)"),
        (nested_inference, "inference.json: malformed compiled model (JSON nested too deeply)"),
        (folder_for_pipeline, "pipeline.skops: not a regular file"),
        (folder_for_manifest, "manifest.json: not a regular file"),
        (no_model_version, "manifest.json: malformed manifest: 1 problem(s), first: versions: "),
    ],
    ids=[
        "deep manifest",
        "deep inference.json",
        "folder for pipeline",
        "folder for manifest",
        "no model version",
    ],
)
def test_malformed_artifact_is_a_one_line_error(
    damage: Callable[[Path], None],
    problem: str,
    command: str,
    copy: Path,
    workspace: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    damage(copy)
    data = workspace / "data" / "penguins.csv"
    argv = [command, str(copy)] + (["--data", str(data)] if command == "evaluate" else [])
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    line = one_line_error(captured.err)
    assert f"error: {copy}" in line
    assert problem in line


def test_info_without_optional_sections(
    copy: Path, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hand-made manifest (its version recomputed) with only what loading needs."""
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    for optional in ("data", "cv_metrics", "metrics", "git_commit", "config"):
        del manifest[optional]
    manifest["model_version"] = model_version(
        {**manifest, "config": {}, "data": {}}, manifest["model_version_covers"]
    )
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))

    assert main(["info", str(copy)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    rows = info_rows(captured.out)
    assert rows["estimator"] == "-"
    assert rows["classes"] == "Adelie, Chinstrap, Gentoo"
    assert rows["metrics"] == "-"
    assert rows["data"] == "-: ? rows, sha256 -…"
    assert rows["created"].endswith("(git unknown)")
    assert rows["task"] == "classification (target species)"

    assert main(["evaluate", str(copy)]) == 1  # no data named: the user must pass one
    line = one_line_error(capsys.readouterr().err)
    assert "the manifest names no training data; pass --data FILE" in line
    data = workspace / "data" / "penguins.csv"
    assert main(["evaluate", str(copy), "--data", str(data)]) == 0
    assert "344 rows scored, 0 rejected" in capsys.readouterr().out


@pytest.mark.parametrize("classes", [None, [], ["a", "b"], ["Adelie", "Adelie", "Gentoo"]])
def test_class_names_must_be_the_models(
    copy: Path, capsys: pytest.CaptureFixture[str], classes: list[str] | None
) -> None:
    """The manifest's classes name the probability columns: missing, too few or wrong ones
    would crash or silently mislabel predictions (checked against the model's own, before the
    model version, which covers them too, is)."""
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    manifest["classes"] = classes
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    assert main(["info", str(copy)]) == 1
    line = one_line_error(capsys.readouterr().err)
    assert f"classes {classes} are not the model's ['Adelie', 'Chinstrap', 'Gentoo']" in line


@pytest.mark.parametrize(
    ("command", "name", "data", "literal"),
    [
        ("info", "[/red]", None, "[/red] 0.1.0+"),
        ("evaluate", "[/red]", None, "[/red] 0.1.0+"),
        ("info", "[bold]x", None, "[bold]x 0.1.0+"),
        ("evaluate", "[bold]x", None, "[bold]x 0.1.0+"),
        ("info", None, "[old]", "[old]/penguins.csv: 344 rows"),
        ("evaluate", None, "[old]", "[old]/penguins.csv: 344 rows scored"),
    ],
)
def test_console_markup_in_the_manifest_is_printed_literally(
    command: str,
    name: str | None,
    data: str | None,
    literal: str,
    copy: Path,
    workspace: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    folder = tmp_path / (data or "plain")
    folder.mkdir()
    shutil.copy(workspace / "data" / "penguins.csv", folder)
    if name is not None:  # the config's name too: the manifest's must be it
        manifest |= {"model_name": name, "config": {**manifest["config"], "name": name}}
        rewrite_manifest(copy, model_name=name, config=manifest["config"])
    edit_manifest(
        copy,
        config={**manifest["config"], "data": str(folder / "penguins.csv")},
        data={**manifest["data"], "file": f"{data or 'plain'}/penguins.csv"},
    )
    assert main([command, str(copy)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert literal in captured.out


@pytest.mark.parametrize("named", [5, ["data.csv"], {"file": "data.csv"}])
def test_evaluate_refuses_training_data_that_is_not_a_path(
    named: object, copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    edit_manifest(copy, config={**manifest["config"], "data": named})
    assert main(["evaluate", str(copy)]) == 1
    line = one_line_error(capsys.readouterr().err)
    assert line == f"error: {copy}: the manifest's training data is not a path; pass --data FILE"


def _config(tmp_path: Path, workspace: Path, data: Path, extra: str = "") -> Path:
    spec = workspace / "configs" / "penguins_species.features.toml"
    path = tmp_path / "config.toml"
    path.write_text(
        f'name = "tiny"\nspec = "{spec}"\ndata = "{data}"\ncv_folds = 2\n{extra}\n'
        '[estimator]\nkind = "linear"\n'
    )
    return path


@pytest.mark.parametrize("case", ["header only", "one class", "four rows", "seed too big"])
def test_train_on_data_it_cannot_learn_from_is_one_line(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    penguins = pd.read_csv(workspace / "data" / "penguins.csv").dropna()
    frame = {
        "header only": penguins.head(0),
        "one class": penguins[penguins["species"] == "Adelie"],
        "four rows": penguins.head(4),
        "seed too big": penguins,
    }[case]
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    extra = "seed = 4294967296" if case == "seed too big" else ""
    config = _config(tmp_path, workspace, data, extra)
    assert main(["train", "--config", str(config), "--output", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    if extra:  # a config error lists each problem on a line of its own
        assert err.startswith(f"error: {config}: invalid training config:\n")
        assert "  seed: Input should be less than or equal to 4294967295" in err
    else:
        assert "cannot train on its" in one_line_error(err)
    assert "Traceback" not in err
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("damage", ["not UTF-8", "a folder"])
def test_unreadable_config_or_spec_is_one_line(
    workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    config = tmp_path / "config.toml"
    if damage == "a folder":
        config.mkdir()
    else:
        config.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    assert main(["train", "--config", str(config)]) == 1
    line = one_line_error(capsys.readouterr().err)
    message = "not UTF-8 text" if damage == "not UTF-8" else "cannot read the training config"
    assert f"error: {config}: " in line
    assert message in line


def test_sigterm_during_training_leaves_nothing_and_a_killed_run_is_reclaimed(
    workspace: Path, tmp_path: Path
) -> None:
    """SIGTERM while the artifact is written removes its staging folder (exit 143); what a
    SIGKILL left (staging, and the previous artifact moved aside) is cleaned or put back by the
    next write."""
    output = tmp_path / "artifact"
    code = """
import signal, sys, time
import model.store
from model.cli import main
dump = model.store.write_artifact
def slow(directory, *args, **kwargs):
    original = __import__("skops.io", fromlist=["dump"]).dump
    def dump_then_wait(*a, **k):
        original(*a, **k)
        print("staged", flush=True)
        time.sleep(60)
    sys.modules["skops.io"].dump = dump_then_wait
    return dump(directory, *args, **kwargs)
model.store.write_artifact = slow
sys.exit(main(["train", "--output", sys.argv[1]]))
"""
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(output)],
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("staged"):
            break
    assert list(tmp_path.glob(".artifact.partial-*")), "the write should be under way"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143
    assert one_line_error(err) == "error: stopped by SIGTERM; no artifact was written"
    assert list(tmp_path.iterdir()) == []

    def train_into_output() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "model.cli", "train", "--output", str(output)],
            cwd=workspace,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    assert train_into_output().returncode == 0
    before = json.loads((output / "manifest.json").read_text())["created_at"]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".artifact.partial-{dead.pid}-0badf00d").mkdir()
    aside = tmp_path / f".artifact.old-{dead.pid}-0badf00d"
    aside.mkdir()
    output.rename(aside / "artifact")  # killed between moving the old one aside and the swap
    save = train_into_output()
    assert save.returncode == 0, save.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact"]
    assert json.loads((output / "manifest.json").read_text())["created_at"] >= before


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["info", "{saved}"], ["evaluate", "{saved}"], ["info", "{missing}"]],
    ids=["help", "info", "evaluate", "refused"],
)
def test_commands_on_a_compiled_artifact_never_import_scikit_learn(
    saved: Path, in_workspace: Path, tmp_path: Path, argv: list[str]
) -> None:
    """What keeps them fast: scikit-learn and SciPy (seconds to import) stay out."""
    args = [a.format(saved=saved, missing=tmp_path / "nowhere") for a in argv]
    script = (
        "import sys\nfrom model.cli import main\n"
        f"try:\n    code = main({args!r})\nexcept SystemExit as stop:\n    code = stop.code\n"
        "heavy = sorted({'sklearn', 'scipy', 'skops'} & set(sys.modules))\n"
        "print('heavy:', heavy)\nsys.exit(code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert "heavy: []" in result.stdout, result.stdout + result.stderr
    assert result.returncode == (1 if "nowhere" in " ".join(args) else 0), result.stderr


def test_training_says_what_it_is_doing(in_workspace: Path, tmp_path: Path) -> None:
    """Not on a terminal (logs, CI): one plain line per step on stderr, folds included."""
    argv = ["train", "--config", "configs/penguins_species.toml", "--output", str(tmp_path / "a")]
    result = subprocess.run(
        [sys.executable, "-c", f"import sys\nfrom model.cli import main\nsys.exit(main({argv!r}))"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    steps = [PROGRESS.match(line).group(1) for line in result.stderr.splitlines()]
    assert steps[0].startswith("reading ")
    assert steps[1:6] == [
        f"cross-validation fold {fold} of 5 ({rows} rows)"
        for fold, rows in ((1, 206), (2, 206), (3, 206), (4, 207), (5, 207))
    ]
    assert steps[6] == "fitting on 258 rows, evaluating on 86"
    assert steps[7] == "compiling the NumPy inference path and checking it against scikit-learn"
    assert all(line.startswith("penguins-species ") for line in result.stderr.splitlines())
