"""The feature spec's JSON Schema and reference: generated from the models, committed, in use."""

import json
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from pydantic import ValidationError

from features import FeatureSpec, json_schema, json_schema_text
from features.cli import main
from features.schema import spec_reference

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = "schemas/feature-spec.schema.json"
REFERENCE = "docs/spec-reference.md"
EXAMPLES = sorted((ROOT / "configs").glob("*.features.toml"))


def described(schema: dict[str, Any]) -> list[str]:
    """Tables and keys of ``schema`` without a description (empty: all described)."""
    tables = {schema["title"]: schema, **schema["$defs"]}
    missing = [name for name, table in tables.items() if not table.get("description")]
    for name, table in tables.items():
        missing += [
            f"{name}.{key}" for key, p in table["properties"].items() if not p.get("description")
        ]
    return missing


def test_committed_schema_is_the_models(workspace: Path) -> None:
    committed = (workspace / SCHEMA).read_text(encoding="utf-8")
    assert committed == json_schema_text(FeatureSpec), (
        f"{SCHEMA} differs from the models; regenerate it: uv run features schema --output {SCHEMA}"
    )


def test_committed_reference_is_the_models(workspace: Path) -> None:
    committed = (workspace / REFERENCE).read_text(encoding="utf-8")
    assert committed == spec_reference(), (
        f"{REFERENCE} differs from the models; regenerate it: "
        f"uv run features schema --markdown --output {REFERENCE}"
    )


def test_every_table_and_key_is_described() -> None:
    assert described(json_schema(FeatureSpec)) == []


def test_reference_has_a_section_and_a_row_per_table_and_key() -> None:
    schema, reference = json_schema(FeatureSpec), spec_reference()
    for name, table in {"FeatureSpec": schema, **schema["$defs"]}.items():
        section = reference.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
        for key in table["properties"]:
            assert f"\n| `{key}` |" in section, f"{name}.{key}"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_specs_name_the_schema_and_pass_it(path: Path, workspace: Path) -> None:
    directive = path.read_text(encoding="utf-8").splitlines()[0]
    assert directive == f"#:schema ../{SCHEMA}"  # Taplo: relative to the TOML file
    assert (path.parent / directive.removeprefix("#:schema ")).resolve() == workspace / SCHEMA
    validator = jsonschema_rs.validator_for(json.loads((workspace / SCHEMA).read_text()))
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert [error.message for error in validator.iter_errors(data)] == []


def broken(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Specs with one mistake each, that a key-by-key check can see. (The schema is the stricter
    of the two where pydantic coerces: it refuses ``nullable = "yes"``, which pydantic reads as
    true.)"""
    island, *rest = spec["features"]
    return {
        "unknown key": {**spec, "colour": "red"},
        "unknown kind": {**spec, "features": [{**island, "kind": "text"}, *rest]},
        "no categories": {**spec, "features": [{**island, "categories": []}, *rest]},
        "bad name": {**spec, "features": [{**island, "name": "2nd island"}, *rest]},
        "not a bool": {**spec, "features": [{**island, "nullable": "maybe"}, *rest]},
        "unknown choice": {**spec, "task": "ranking"},
        "missing target": {k: v for k, v in spec.items() if k != "target"},
    }


@pytest.mark.parametrize("mistake", broken({"features": [{}]}).keys())
def test_schema_and_models_refuse_the_same_mistakes(mistake: str, workspace: Path) -> None:
    spec = tomllib.loads((workspace / "configs" / "penguins_species.features.toml").read_text())
    case = broken(spec)[mistake]
    assert not jsonschema_rs.validator_for(json_schema(FeatureSpec)).is_valid(case)
    with pytest.raises(ValidationError):
        FeatureSpec.model_validate(case)


def test_command_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema(FeatureSpec)


def test_command_writes_the_reference(tmp_path: Path) -> None:
    output = tmp_path / "docs" / "reference.md"
    assert main(["schema", "--markdown", "--output", str(output)]) == 0
    assert output.read_text(encoding="utf-8") == spec_reference()


def test_command_names_an_output_it_cannot_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "a-file" / "schema.json"
    output.parent.write_text("")
    assert main(["schema", "--output", str(output)]) == 1
    assert capsys.readouterr().err.startswith(f"error: {output}: cannot write:")


def test_command_is_installed() -> None:
    (script,) = metadata.entry_points(group="console_scripts", name="features")
    assert script.value == "features.cli:main"
