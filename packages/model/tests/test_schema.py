"""The training config's JSON Schema and reference: generated from the models, committed, in
use (`model schema`)."""

import json
import tomllib
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from pydantic import ValidationError

from features import json_schema_text
from model import TrainConfig
from model.cli import main
from model.schema import config_reference, config_schema

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = "schemas/training-config.schema.json"
REFERENCE = "docs/config-reference.md"
CONFIGS = ROOT / "configs"
EXAMPLES = sorted(set(CONFIGS.glob("*.toml")) - set(CONFIGS.glob("*.features.toml")))


def test_committed_schema_is_the_models(workspace: Path) -> None:
    committed = (workspace / SCHEMA).read_text(encoding="utf-8")
    assert committed == json_schema_text(TrainConfig), (
        f"{SCHEMA} differs from the models; regenerate it: uv run model schema --output {SCHEMA}"
    )


def test_committed_reference_is_the_models(workspace: Path) -> None:
    committed = (workspace / REFERENCE).read_text(encoding="utf-8")
    assert committed == config_reference(), (
        f"{REFERENCE} differs from the models; regenerate it: "
        f"uv run model schema --markdown --output {REFERENCE}"
    )


def test_every_table_and_key_is_described() -> None:
    schema = config_schema()
    tables = {schema["title"]: schema, **schema["$defs"]}
    missing = [name for name, table in tables.items() if not table.get("description")]
    for name, table in tables.items():
        keys = table["properties"].items()
        missing += [f"{name}.{key}" for key, p in keys if not p.get("description")]
    assert missing == []


def test_reference_documents_every_estimator() -> None:
    reference = config_reference()
    for kind in ("linear", "random_forest", "hist_gradient_boosting"):
        assert f'Chosen by `kind = "{kind}"`.' in reference


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_configs_name_the_schema_and_pass_it(path: Path, workspace: Path) -> None:
    directive = path.read_text(encoding="utf-8").splitlines()[0]
    assert directive == f"#:schema ../{SCHEMA}"  # Taplo: relative to the TOML file
    assert (path.parent / directive.removeprefix("#:schema ")).resolve() == workspace / SCHEMA
    validator = jsonschema_rs.validator_for(config_schema())
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert [error.message for error in validator.iter_errors(data)] == []


def broken(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Configs with one mistake each, that a key-by-key check can see."""
    return {
        "unknown key": {**config, "epochs": 3},
        "unknown estimator": {**config, "estimator": {"kind": "svm"}},
        "foreign option": {**config, "estimator": {"kind": "linear", "n_estimators": 5}},
        "out of range": {**config, "test_size": 1.5},
        "bad name": {**config, "name": "Penguins Species"},
        "unknown gate": {**config, "gate": {"min_f1": 0.9}},
        "missing data": {k: v for k, v in config.items() if k != "data"},
    }


@pytest.mark.parametrize("mistake", broken({}).keys())
def test_schema_and_models_refuse_the_same_mistakes(mistake: str, workspace: Path) -> None:
    config = tomllib.loads((workspace / "configs" / "penguins_species.toml").read_text())
    case = broken(config)[mistake]
    assert not jsonschema_rs.validator_for(config_schema()).is_valid(case)
    with pytest.raises(ValidationError):
        TrainConfig.model_validate(case)


def test_command_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == config_schema()


def test_command_writes_the_reference(tmp_path: Path) -> None:
    output = tmp_path / "docs" / "reference.md"
    assert main(["schema", "--markdown", "--output", str(output)]) == 0
    assert output.read_text(encoding="utf-8") == config_reference()


def test_command_names_an_output_it_cannot_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "a-file" / "schema.json"
    output.parent.write_text("")
    assert main(["schema", "--output", str(output)]) == 1
    assert f"error: {output}: cannot write:" in capsys.readouterr().err
