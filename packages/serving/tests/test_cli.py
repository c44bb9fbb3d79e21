import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from features import FeatureSpec
from features.testing import sample_frame
from model import sign_artifact
from model.testing import key_pair, rewrite_manifest
from serving.cli import _settings, main, parser
from serving.settings import Settings
from serving.testing import ServerProcess

from .conftest import ROOT


def test_score_command(
    artifact_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "scores.parquet"
    code = main(
        [
            "score",
            str(ROOT / "data" / "penguins.csv"),
            str(output),
            "--artifact",
            str(artifact_path),
            "--chunk-rows",
            "64",
        ]
    )
    assert code == 0
    assert "344 input rows = 344 scored + 0 rejected" in capsys.readouterr().out
    assert len(pd.read_parquet(output)) == 344


def test_score_command_errors(
    artifact_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "score",
            str(tmp_path / "nope.csv"),
            str(tmp_path / "out.csv"),
            "--artifact",
            str(artifact_path),
        ]
    )
    assert code == 1
    assert "nope.csv: input file not found" in capsys.readouterr().err
    assert main(["score", "a.csv", "b.csv", "--artifact", str(tmp_path)]) == 1
    assert "not a model artifact" in capsys.readouterr().err


def test_a_required_signature_is_checked_before_scoring_or_serving(
    artifact_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--public-key (or SERVING_PUBLIC_KEY): an unsigned or wrongly signed artifact is
    refused with one line and nothing is written or served; a signed one is used."""
    (private, public), (_, other) = key_pair(tmp_path, "ours"), key_pair(tmp_path, "theirs")
    artifact = tmp_path / "artifact"
    shutil.copytree(artifact_path, artifact)
    source, output = ROOT / "data" / "penguins.csv", tmp_path / "scores.csv"
    score = ["score", str(source), str(output), "--artifact", str(artifact)]

    assert main([*score, "--public-key", str(public)]) == 1
    assert "not signed (no signature.json), and a signature is required" in capsys.readouterr().err
    assert not output.exists()
    serve = ["serve", "--artifact", str(artifact), "--port", "0", "--public-key", str(public)]
    assert main(serve) == 1
    assert "not signed" in capsys.readouterr().err

    sign_artifact(artifact, private)
    monkeypatch.setenv("SERVING_PUBLIC_KEY", str(other))
    assert main(score) == 1
    assert "the signature does not verify with the public key" in capsys.readouterr().err
    assert not output.exists()
    monkeypatch.setenv("SERVING_PUBLIC_KEY", str(public))
    assert main(score) == 0
    assert "344 input rows = 344 scored + 0 rejected" in capsys.readouterr().out


def test_bad_settings_are_an_error(artifact_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--artifact", str(artifact_path), "--port", "70000"]) == 1
    assert "invalid settings" in capsys.readouterr().err


HEADER = "island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex\n"
GOOD = "Dream,39.1,18.7,181,3750,male\n"
BAD = "Dream,39.1,18.7,181,3750,x\n"


def _write_cases(tmp: Path, penguins: pd.DataFrame) -> dict[str, tuple[Path, Path, str]]:
    """Malformed inputs and outputs: (input, output, what the message must say)."""
    good = tmp / "good.csv"
    penguins.to_csv(good, index=False)
    (tmp / "dup.csv").write_text(HEADER.strip() + ",sex\n" + GOOD.strip() + ",female\n")
    (tmp / "empty.csv").write_bytes(b"")
    (tmp / "ragged.csv").write_text(HEADER + GOOD + GOOD.strip() + ",extra,cells\n")
    (tmp / "latin1.csv").write_bytes((HEADER + GOOD.replace("Dream", "Dr\xe9am")).encode("latin-1"))
    (tmp / "garbage.parquet").write_bytes(b"PAR1" + bytes(range(256)) * 4)
    nested = penguins.head(1).drop(columns=["island"]).assign(island=[["Dream"]])
    nested.to_parquet(tmp / "nested.parquet")
    penguins.drop(columns=["sex"]).to_csv(tmp / "no_sex.csv", index=False)
    penguins.assign(colour="black").to_csv(tmp / "colour.csv", index=False)
    (tmp / "semicolons.csv").write_text(HEADER.replace(",", ";") + GOOD.replace(",", ";"))
    (tmp / "folder.csv").mkdir()
    brackets = tmp / "[old]"
    brackets.mkdir()
    return {
        "repeated column": (tmp / "dup.csv", tmp / "o.csv", "column 'sex': appears 2 times"),
        "empty file": (tmp / "empty.csv", tmp / "o.csv", "cannot read as csv"),
        "ragged rows": (tmp / "ragged.csv", tmp / "o.csv", "cannot read as csv"),
        "not UTF-8": (tmp / "latin1.csv", tmp / "o.csv", "cannot read as csv"),
        "not parquet": (tmp / "garbage.parquet", tmp / "o.csv", "cannot read as parquet"),
        "nested column": (  # rejected rows, and their CSV rejects file cannot hold a list
            tmp / "nested.parquet",
            tmp / "o.csv",
            "o.rejects.csv: cannot write as csv: Unsupported Type:list",
        ),
        "missing column": (tmp / "no_sex.csv", tmp / "o.csv", "column 'sex': column missing"),
        "unknown column": (
            tmp / "colour.csv",
            tmp / "o.csv",
            "column 'colour': unknown column (not in the spec)",
        ),
        "semicolons": (tmp / "semicolons.csv", tmp / "o.csv", "column 'island': column missing"),
        "output is a folder": (good, tmp / "folder.csv", "the output path is a folder"),
        "rejects would be the input": (
            tmp / "o.rejects.csv",
            tmp / "o.csv",
            "the rejects file would overwrite the input",
        ),
        "markup in a path": (brackets / "[/red]x.csv", tmp / "o.csv", "[old]/[/red]x.csv: input"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "repeated column",
        "empty file",
        "ragged rows",
        "not UTF-8",
        "not parquet",
        "nested column",
        "missing column",
        "unknown column",
        "semicolons",
        "output is a folder",
        "rejects would be the input",
        "markup in a path",
    ],
)
def test_score_errors_are_one_line(
    artifact_path: Path,
    tmp_path: Path,
    penguins: pd.DataFrame,
    capsys: pytest.CaptureFixture[str],
    case: str,
) -> None:
    source, output, message = _write_cases(tmp_path, penguins)[case]
    if case == "rejects would be the input":
        penguins.to_csv(source, index=False)
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["score", str(source), str(output), "--artifact", str(artifact_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1, err
    assert err.startswith("error: "), err
    assert message in err
    assert source.name in err or output.name in err or f"{output.stem}.rejects.csv" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written or left


def test_a_refused_input_names_every_problem_on_one_line(
    artifact_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.csv"
    source.write_text(HEADER.replace(",", ";") + GOOD.replace(",", ";"))
    argv = ["score", str(source), str(tmp_path / "out.csv"), "--artifact", str(artifact_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"error: {source}: input refused: column 'island': column missing; ")
    for name in ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"):
        assert f"column {name!r}: column missing" in err
    assert "unknown column (not in the spec)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_keep_carries_columns(
    artifact_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "scores.csv"
    argv = ["score", str(ROOT / "data" / "penguins.csv"), str(output)]
    argv += ["--artifact", str(artifact_path), "--keep", "species, year"]
    assert main(argv) == 0
    scored = pd.read_csv(output)
    assert scored.columns.tolist()[:4] == ["row", "species", "year", "prediction"]
    penguins = pd.read_csv(ROOT / "data" / "penguins.csv")
    assert scored["species"].tolist() == penguins["species"].tolist()
    assert scored["year"].tolist() == penguins["year"].tolist()
    assert (scored["prediction"] == scored["species"]).mean() > 0.95
    capsys.readouterr()
    assert main([*argv[:-1], "year,tag"]) == 1
    err = capsys.readouterr().err
    assert "--keep names column(s) the file does not have: tag" in err


@pytest.mark.parametrize("value", ["a,,b", ",", "a, "])
def test_keep_must_name_columns(capsys: pytest.CaptureFixture[str], value: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["score", "a.csv", "b.csv", "--keep", value])
    assert exit_.value.code == 2
    assert f"expected column names separated by commas, got {value!r}" in capsys.readouterr().err


def test_sigterm_leaves_no_output_or_partial_file(artifact_path: Path, tmp_path: Path) -> None:
    spec = FeatureSpec.from_toml(ROOT / "configs" / "penguins_species.features.toml")
    source = tmp_path / "big.csv"
    sample_frame(spec, 300_000, seed=1, target=False).to_csv(source, index=False)
    output = tmp_path / "scores.parquet"
    command = [sys.executable, "-m", "serving.cli", "score", str(source), str(output)]
    command += ["--artifact", str(artifact_path), "--chunk-rows", "1000"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".*.partial")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be stopped"
    time.sleep(0.3)  # some chunks written
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143
    assert err.strip() == "error: stopped by SIGTERM; no output was written"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("deep", "manifest.json: not valid JSON (nested too deeply)"),
        ("not json", "manifest.json: not valid JSON"),
        ("folder", "artifact directory not found"),
    ],
)
def test_serve_refuses_a_damaged_artifact_in_one_line(
    artifact_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    damage: str,
    message: str,
) -> None:
    copy = tmp_path / "artifact"
    shutil.copytree(artifact_path, copy)
    manifest = copy / "manifest.json"
    if damage == "deep":
        manifest.write_text("[" * 100_000 + "]" * 100_000)
    elif damage == "not json":
        manifest.write_text("{[/red] not json")
    else:
        copy = tmp_path / "[old]" / "artifact"
    assert main(["serve", "--artifact", str(copy), "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"error: {copy}")
    assert message in err


def test_serve_prints_manifest_text_literally(artifact_path: Path, tmp_path: Path) -> None:
    """Console markup in a manifest ([/red], [bold]) is text, not markup: the service starts."""
    copy = tmp_path / "artifact"
    shutil.copytree(artifact_path, copy)
    config = json.loads((copy / "manifest.json").read_text())["config"]
    name = "[/red]species[bold]"  # the config's name too: the manifest's must be it
    rewrite_manifest(copy, model_name=name, config={**config, "name": name})
    with ServerProcess(["--artifact", str(copy)], log=tmp_path / "s.log") as server:
        assert server.request("/ready")[1]["model"] == "[/red]species[bold]"
    assert "serving [/red]species[bold] " in (tmp_path / "s.log").read_text()


@pytest.mark.parametrize(
    ("text", "limit", "code", "rejected"),
    [
        (HEADER + GOOD + BAD, "0.5", 0, 1),  # 1 of 2 rejected: at the limit
        (HEADER + GOOD + BAD, "0.49", 4, 1),
        (HEADER + GOOD * 30 + BAD, None, 0, 1),  # 1 of 31 under the default 5%
        (HEADER + GOOD * 10 + BAD, None, 4, 1),  # 1 of 11 over it
        (HEADER + GOOD, "0", 0, 0),
    ],
)
def test_too_many_rejects_is_a_failure_after_writing_both_files(
    artifact_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    limit: str | None,
    code: int,
    rejected: int,
) -> None:
    """A scheduled job whose rows are (nearly) all rejected must not report success."""
    source, output = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text(text)
    argv = ["score", str(source), str(output), "--artifact", str(artifact_path)]
    assert main([*argv, *(["--max-reject-share", limit] if limit else [])]) == code
    err = capsys.readouterr().err
    rows = len(text.splitlines()) - 1
    assert len(pd.read_csv(output)) == rows - rejected
    if rejected:
        assert len(pd.read_csv(tmp_path / "out.rejects.csv")) == rejected
    if code:
        share = rejected / rows
        assert err.startswith(
            f"error: {rejected} of {rows} rows rejected ({share:.1%} > --max-reject-share"
        )
    else:
        assert err == ""


@pytest.mark.parametrize("value", ["-0.1", "1.5", "abc"])
def test_max_reject_share_must_be_a_share(
    artifact_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["score", "a.csv", "b.csv", "--max-reject-share", value])
    assert exit_.value.code == 2
    assert f"expected a share between 0 and 1, got {value!r}" in capsys.readouterr().err


def test_a_bad_setting_from_the_environment_is_one_line(
    artifact_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SERVING_LOG_LEVEL", "bogus")
    assert main(["serve", "--artifact", str(artifact_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: invalid settings: log_level: Input should be 'critical'")


def test_a_full_disk_is_one_line(artifact_path: Path, tmp_path: Path) -> None:
    """A write that fails (here: past a file-size limit, as on a full disk) is a one-line
    error naming the output, and leaves nothing behind."""
    spec = FeatureSpec.from_toml(ROOT / "configs" / "penguins_species.features.toml")
    source = tmp_path / "in.csv"
    sample_frame(spec, 20_000, seed=3, target=False).to_csv(source, index=False)
    script = f"""
import resource, signal, sys
from serving.cli import _settings, main, parser
from serving.settings import Settings
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
limit = {source.stat().st_size}
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.exit(main(["score", {str(source)!r}, {str(tmp_path / "out.csv")!r},
               "--artifact", {str(artifact_path)!r}, "--chunk-rows", "1000"]))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"error: {tmp_path / 'out.csv'}: cannot write: ")
    assert result.stderr.count("\n") == 1
    assert "File too large" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_is_a_flag_and_a_variable(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI is derived from the settings: each has `--name-with-dashes` on `serve`, and a
    flag wins over its SERVING_* variable, which wins over the default."""
    field = Settings.model_fields[name]
    flag, variable = f"--{name.replace('_', '-')}", f"SERVING_{name.upper()}"
    samples = {int: ("7", "9"), float: ("7.5", "9.5"), str: ("0.0.0.0", "::1")}
    special = {
        "port": ("8081", "8082"),
        "max_body_bytes": ("4096", "8192"),
        "log_level": ("debug", "error"),
        "artifact_digest": ("0" * 64, "f" * 64),
    }
    first, second = special.get(name) or samples.get(field.annotation, ("/a", "/b"))  # type: ignore[arg-type]
    monkeypatch.setenv(variable, first)
    from_variable = _settings(parser().parse_args(["serve"]))
    from_flag = _settings(parser().parse_args(["serve", flag, second]))
    assert str(getattr(from_variable, name)) == first
    assert str(getattr(from_flag, name)) == second
    assert flag in subprocess_help("serve")


def subprocess_help(command: str) -> str:
    """`serving COMMAND --help`, as a user sees it."""
    return subprocess.run(
        [sys.executable, "-m", "serving.cli", command, "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def test_an_unknown_serving_variable_is_an_error(
    artifact_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelt SERVING_ARTIFACTS once served the bundled model and exited 0."""
    monkeypatch.setenv("SERVING_ARTIFACTS", str(artifact_path))
    assert main(["serve", "--port", "0"]) == 1
    error = capsys.readouterr().err
    assert "unknown environment variable(s) SERVING_ARTIFACTS: no such setting" in error
    assert "SERVING_ARTIFACT," in error
    monkeypatch.delenv("SERVING_ARTIFACTS")
    # Kubernetes' service links for a Service named "serving" are not settings, and not errors.
    monkeypatch.setenv("SERVING_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("SERVING_PORT_8000_TCP_ADDR", "10.0.0.1")
    assert Settings().port == 8000


def test_a_port_that_cannot_be_bound_has_its_own_exit_code(artifact_path: Path) -> None:
    """Not 1 (an error the message explains) nor 3 (`model`'s failed quality gate): 5."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "serving.cli", "serve", "--artifact", str(artifact_path),
             "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )  # fmt: skip
    assert result.returncode == 5, result.stderr
    assert f"error: could not serve on http://127.0.0.1:{port}: the address is in use" in (
        result.stderr
    )
