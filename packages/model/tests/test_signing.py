"""Signed artifacts with real Ed25519 keys made here: signing, verifying before anything else
is read, and refusing unsigned, wrongly signed or changed-after-signing artifacts."""

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from model import ArtifactError, load_artifact
from model.cli import main
from model.manifest import MANIFEST_FILE, sha256_file
from model.signing import SIGNATURE_FILE, key_id, public_key, sign_artifact
from model.testing import key_pair

from .test_cli import info_rows, one_line_error


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    return {name: key_pair(tmp_path, name) for name in ("ours", "theirs")}


def test_sign_then_verify_before_loading(
    copy: Path, keys: dict[str, tuple[Path, Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    (private, public), (_, other) = keys["ours"], keys["theirs"]
    assert main(["info", str(copy)]) == 0
    assert info_rows(capsys.readouterr().out)["signature"] == "none"
    assert main(["sign", str(copy), "--key", str(private)]) == 0
    assert "signed with key id" in capsys.readouterr().out
    assert load_artifact(copy, public).version == load_artifact(copy).version

    assert main(["info", str(copy), "--public-key", str(public)]) == 0
    verified = info_rows(capsys.readouterr().out)["signature"]
    assert verified.startswith("verified with ")
    assert verified.endswith(f"(key id {key_id(public_key(public))})")
    assert main(["info", str(copy)]) == 0
    assert info_rows(capsys.readouterr().out)["signature"].startswith("present, not verified")

    assert main(["info", str(copy), "--public-key", str(other)]) == 1
    line = one_line_error(capsys.readouterr().err)
    assert "the signature does not verify with the public key" in line
    assert "signed by another key" in line


def test_an_unsigned_artifact_is_refused_when_a_key_is_given(
    copy: Path, keys: dict[str, tuple[Path, Path]]
) -> None:
    with pytest.raises(ArtifactError, match=r"not signed \(no signature\.json\), and a signature"):
        load_artifact(copy, keys["ours"][1])


@pytest.mark.parametrize("change", ["card", "manifest", "signature"])
def test_a_change_after_signing_is_refused(
    copy: Path, keys: dict[str, tuple[Path, Path]], change: str
) -> None:
    private, public = keys["ours"]
    sign_artifact(copy, private)
    if change == "card":  # and its hash in the manifest, as an attacker would
        (copy / "MODEL_CARD.md").write_text("rewritten\n")
        manifest = json.loads((copy / MANIFEST_FILE).read_text())
        manifest["files"]["MODEL_CARD.md"] = sha256_file(copy / "MODEL_CARD.md")
        (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
        load_artifact(copy)  # intact by its hashes: only the signature tells
    elif change == "manifest":
        text = (copy / MANIFEST_FILE).read_text()
        (copy / MANIFEST_FILE).write_text(text.replace('"task"', ' "task"', 1))
    else:
        signature = json.loads((copy / SIGNATURE_FILE).read_text())
        signature["signature"] = "not base64!"
        (copy / SIGNATURE_FILE).write_text(json.dumps(signature))
    with pytest.raises(ArtifactError, match=r"does not verify|not a signature this package"):
        load_artifact(copy, public)


def test_train_signs_and_a_signed_artifact_is_replaceable(
    in_workspace: Path, tmp_path: Path, keys: dict[str, tuple[Path, Path]]
) -> None:
    private, public = keys["ours"]
    output = tmp_path / "signed"
    argv = ["train", "--config", "configs/penguins_species.toml", "--output", str(output)]
    assert main([*argv, "--sign", str(private)]) == 0
    first = load_artifact(output, public)
    assert main(argv) == 0  # retrained over it, unsigned now
    assert not (output / SIGNATURE_FILE).exists()
    with pytest.raises(ArtifactError, match="not signed"):
        load_artifact(output, public)
    assert load_artifact(output).version == first.version


@pytest.mark.parametrize("bad", ["public", "missing", "garbage"])
def test_a_key_that_cannot_sign_stops_training_at_once(
    in_workspace: Path,
    tmp_path: Path,
    keys: dict[str, tuple[Path, Path]],
    capsys: pytest.CaptureFixture[str],
    bad: str,
) -> None:
    key = {"public": keys["ours"][1], "missing": tmp_path / "nope.pem"}.get(bad)
    if key is None:
        key = tmp_path / "garbage.pem"
        key.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    output = tmp_path / "never"
    argv = ["train", "--config", "configs/penguins_species.toml", "--output", str(output)]
    assert main([*argv, "--sign", str(key)]) == 1
    line = one_line_error(capsys.readouterr().err)
    assert str(key) in line
    assert not output.exists()


def test_the_public_key_must_be_ed25519(copy: Path, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415

    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = tmp_path / "ec.pub"
    pem.write_bytes(
        other.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(ArtifactError, match="not an Ed25519 public key"):
        load_artifact(copy, pem)


@pytest.mark.parametrize(
    ("broken", "parse_error"),
    [
        (MANIFEST_FILE, r"manifest\.json: not valid JSON"),
        ("inference.json", r"inference\.json: malformed compiled model"),
        ("pipeline.skops", r"pipeline\.skops: not a skops file"),
    ],
)
def test_nothing_is_parsed_before_the_signature_verifies(
    copy: Path, keys: dict[str, tuple[Path, Path]], broken: str, parse_error: str
) -> None:
    """A file that would fail to parse, in an artifact signed by another key: the refusal
    names the signature, so the signature was checked before that file was parsed."""
    (_, public), (other, _) = keys["ours"], keys["theirs"]
    (copy / broken).write_text("{ not parsable", encoding="utf-8")
    if broken != MANIFEST_FILE:  # the hashes made consistent again, as an attacker would
        manifest = json.loads((copy / MANIFEST_FILE).read_text())
        assert broken in manifest["files"]
        manifest["files"][broken] = sha256_file(copy / broken)
        (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    sign_artifact(copy, other)
    with pytest.raises(ArtifactError, match=parse_error):  # what parsing it would say
        load_artifact(copy)
    with pytest.raises(ArtifactError) as refused:
        load_artifact(copy, public)
    message = str(refused.value)
    assert "the signature does not verify with the public key" in message
    assert "signed by another key" in message
    assert broken not in message
