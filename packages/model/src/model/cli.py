"""`model` command: train, evaluate and inspect artifacts.

Exit codes: 0 success, 1 an error the message explains, 2 bad usage, 3 quality gate failed,
130 interrupted, 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from features import SpecError
from model.bundled import (
    default_artifact_dir,
    load_artifact_or_default,
    source_tree_bundle_dir,
)
from model.config import TrainConfig
from model.exceptions import ModelError, QualityGateError
from model.manifest import sha256_file
from model.predictor import Artifact
from model.signing import SIGNATURE_FILE, key_id, private_key, sign_artifact
from model.signing import public_key as load_public_key
from model.store import check_replaceable, load_artifact

DEFAULT_CONFIG = Path("configs/penguins_species.toml")

# No markup or highlighting: names, paths and messages are printed exactly as they are.
out = Console(soft_wrap=True, markup=False, highlight=False)
err = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)


def _metrics_table(
    title: str, metrics: dict[str, float], cv: dict[str, dict[str, float]] | None = None
) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("holdout" if cv is not None else "value", justify="right")
    if cv is not None:
        table.add_column("CV mean ± std", justify="right")
    for name, value in metrics.items():
        row = [name, f"{value:.4f}"]
        if cv is not None:
            row.append(f"{cv[name]['mean']:.4f} ± {cv[name]['std']:.4f}")
        table.add_row(*row)
    return table


@contextmanager
def _progress(name: str, started: float) -> Iterator[Callable[[str], None]]:
    """What training is doing: a live status line on a terminal, else one plain line per
    step on stderr (logs, CI), each with the time since ``started``."""

    def line(step: str) -> str:
        return f"{name} {time.perf_counter() - started:6.1f}s  {step}"

    if not err.is_terminal:
        yield lambda step: err.print(line(step))
        return
    with err.status(f"training {name}…") as status:
        yield lambda step: status.update(line(step))


def _config_path(given: Path | None) -> Path:
    if given is None and not DEFAULT_CONFIG.is_file():
        msg = (
            f"no --config given and {DEFAULT_CONFIG} is not in the current directory; "
            "run from the workspace root or pass --config PATH"
        )
        raise ModelError(msg)
    return given or DEFAULT_CONFIG


def _train(args: argparse.Namespace) -> int:
    # Plain `model train` makes *the* default model: the one bundled in the package.
    bundle = args.bundle or (args.config is None and args.output is None)
    if args.sign is not None:
        private_key(args.sign)  # a key that cannot sign stops here, before training
    return _train_into(_config_path(args.config), args.output, bundle=bundle, sign=args.sign)


def _bundle(args: argparse.Namespace) -> int:
    """The default model, into the installed package or a source tree that a build ships."""
    output = None if args.source_tree is None else source_tree_bundle_dir(args.source_tree)
    return _train_into(_config_path(args.config), output, bundle=True)


def _train_into(
    config_path: Path, output: Path | None, *, bundle: bool, sign: Path | None = None
) -> int:
    config = TrainConfig.from_toml(config_path)
    config.preflight()  # config mistakes stop here, in well under a second
    from model.saving import save_result  # noqa: PLC0415 - scikit-learn: only to train
    from model.training import train  # noqa: PLC0415

    if output is None:
        output = default_artifact_dir() if bundle else Path("artifacts") / config.name
    check_replaceable(output)  # before training, not after
    started = time.perf_counter()
    with _progress(config.name, started) as progress:
        result = train(config, progress=progress)
    seconds = time.perf_counter() - started
    report = result.report
    out.print(
        Text.assemble(
            (config.name, "bold"),
            f": {config.estimator.kind} on {report.n_rows} rows "
            f"({report.n_invalid} rejected by validation) in {seconds:.1f}s",
        )
    )
    if report.n_invalid or report.ignored_columns:
        out.print(report.summary())
    out.print(_metrics_table("metrics", result.metrics, result.cv_metrics))
    failures = config.gate.failures(result.metrics)
    if failures:
        msg = "quality gate failed, no artifact written: " + "; ".join(failures)
        raise QualityGateError(msg)
    save_result(result, output)
    if sign is not None:
        out.print(f"signed with key id {sign_artifact(output, sign)}")
    artifact = load_artifact(output)
    role = " (the default artifact: `serving serve` and `model info` use it)" if bundle else ""
    out.print(
        Text.assemble("artifact ", (artifact.name, "bold"), f" {artifact.version} written to ")
        + Text(f"{output}{role}")
    )
    out.print(f"predicts with {result.inference}")
    return 0


def _data_file(args: argparse.Namespace, artifact: Artifact) -> Path:
    """``--data``, else the training data the manifest names (untrusted: checked)."""
    if args.data is not None:
        return Path(args.data)
    named = artifact.manifest.config.get("data")
    if named is None:
        msg = f"{artifact.path}: the manifest names no training data; pass --data FILE"
        raise ModelError(msg)
    if not isinstance(named, str):
        msg = f"{artifact.path}: the manifest's training data is not a path; pass --data FILE"
        raise ModelError(msg)
    return Path(named)


def _evaluate(args: argparse.Namespace) -> int:
    from model.data import read_table  # noqa: PLC0415 - pyarrow: only here
    from model.evaluation import evaluate_artifact  # noqa: PLC0415

    artifact = load_artifact_or_default(args.artifact)
    data = _data_file(args, artifact)
    metrics, report = evaluate_artifact(artifact, read_table(data, artifact.spec))
    out.print(
        f"{artifact.name} {artifact.version} on {data}: {report.n_valid} rows scored, "
        f"{report.n_invalid} rejected; predicted with {_inference(artifact)}, as served"
    )
    if report.n_invalid:
        out.print(report.summary())
    if sha256_file(data) == artifact.manifest.data.get("sha256"):
        out.print(
            "note: this is the data the model was trained on (its holdout is only part of "
            "it): these metrics overstate how well it does on new data"
        )
    out.print(_metrics_table("metrics", metrics))
    return 0


def _inference(artifact: Artifact) -> str:
    if artifact.compiled is None:
        return "scikit-learn"
    if artifact.compiled.estimator is None:
        return "NumPy preprocessing (inference.json) + scikit-learn estimator"
    return "NumPy (inference.json)"


def _sign(args: argparse.Namespace) -> int:
    artifact = load_artifact(args.artifact)  # only a sound artifact gets signed
    out.print(f"{artifact.path}: signed with key id {sign_artifact(artifact.path, args.key)}")
    return 0


def _signature(artifact: Artifact, public_key: Path | None) -> str:
    if public_key is not None:
        return f"verified with {public_key} (key id {key_id(load_public_key(public_key))})"
    if (artifact.path / SIGNATURE_FILE).is_file():
        return "present, not verified (pass --public-key KEY)"
    return "none"


def _info(args: argparse.Namespace) -> int:
    artifact = load_artifact_or_default(args.artifact, args.public_key)
    m = artifact.manifest
    table = Table(
        show_header=False, title=Text(f"{m.model_name} {m.model_version}"), title_justify="left"
    )
    table.add_column(style="bold")
    table.add_column()
    data = m.data
    rows = {
        "path": str(artifact.path),
        "digest": f"{artifact.digest} (sha256 of manifest.json)",
        "task": f"{m.task} (target {artifact.spec.target.name})",
        "estimator": str(m.config.get("estimator", "-")),
        "features": ", ".join(artifact.spec.feature_names),
        "classes": ", ".join(m.classes or []) or "-",
        "inference": _inference(artifact),
        "created": f"{m.created_at.isoformat()} (git {m.git_commit or 'unknown'})",
        "data": f"{data.get('file', '-')}: {data.get('rows', '?')} rows, "
        f"sha256 {str(data.get('sha256', '-'))[:16]}…",
        "metrics": ", ".join(f"{k} {v:.4f}" for k, v in m.metrics.items()) or "-",
        "versions": ", ".join(f"{k} {v}" for k, v in m.versions.items()),
        "files": ", ".join(f"{k} {v[:12]}…" for k, v in m.files.items()),
        "signature": _signature(artifact, args.public_key),
    }
    for key, value in rows.items():
        table.add_row(key, Text(value))
    out.print(table)
    return 0


def _schema(args: argparse.Namespace) -> int:
    from model.schema import write_schema  # noqa: PLC0415 - only for this command

    write_schema(markdown=args.markdown, output=args.output)
    return 0


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    root = argparse.ArgumentParser(prog="model", description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="command", required=True)

    train_cmd = commands.add_parser("train", help="train, evaluate and write an artifact")
    train_cmd.add_argument(
        "--config", type=Path, help=f"training config (default {DEFAULT_CONFIG})"
    )
    where = train_cmd.add_mutually_exclusive_group()
    where.add_argument(
        "--output",
        type=Path,
        help="artifact directory (default: with no --config, the bundled default artifact; "
        "with --config, artifacts/NAME)",
    )
    where.add_argument(
        "--bundle",
        action="store_true",
        help="write into the installed model package, as its default artifact",
    )
    train_cmd.add_argument(
        "--sign", type=Path, metavar="KEY", help="sign the artifact with this Ed25519 key (PEM)"
    )
    train_cmd.set_defaults(run=_train)

    bundle_cmd = commands.add_parser(
        "bundle", help="train the default model into the package: what a release ships"
    )
    bundle_cmd.add_argument(
        "--config", type=Path, help=f"training config (default {DEFAULT_CONFIG})"
    )
    bundle_cmd.add_argument(
        "--source-tree",
        type=Path,
        metavar="PACKAGE_DIR",
        help="the model package's folder (packages/model): bundle into its sources, which the "
        "next build ships (default: into the installed package)",
    )
    bundle_cmd.set_defaults(run=_bundle)

    evaluate_cmd = commands.add_parser("evaluate", help="re-score an artifact on a table")
    evaluate_cmd.add_argument("artifact", type=Path, nargs="?", help="default: the bundled one")
    evaluate_cmd.add_argument("--data", type=Path, help="CSV or Parquet (default: training data)")
    evaluate_cmd.set_defaults(run=_evaluate)

    info_cmd = commands.add_parser("info", help="print an artifact's manifest")
    info_cmd.add_argument("artifact", type=Path, nargs="?", help="default: the bundled one")
    info_cmd.add_argument(
        "--public-key", type=Path, help="Ed25519 public key (PEM): the signature must verify"
    )
    info_cmd.set_defaults(run=_info)

    sign_cmd = commands.add_parser("sign", help="sign an artifact with an Ed25519 key")
    sign_cmd.add_argument("artifact", type=Path, help="artifact directory")
    sign_cmd.add_argument("--key", type=Path, required=True, help="Ed25519 private key (PEM)")
    sign_cmd.set_defaults(run=_sign)

    schema_cmd = commands.add_parser(
        "schema", help="print the training config's JSON Schema (for editors) or its reference"
    )
    schema_cmd.add_argument(
        "--markdown", action="store_true", help="the Markdown reference instead of the schema"
    )
    schema_cmd.add_argument("--output", type=Path, help="write to this file (default: stdout)")
    schema_cmd.set_defaults(run=_schema)
    return root


class TerminatedError(Exception):
    """SIGTERM arrived; raised in the main thread so a half-written artifact is removed."""


def _stop(_signum: int, _frame: object) -> None:
    raise TerminatedError


def _fail(message: str) -> None:
    err.print(Text.assemble(("error:", "red"), " ", message))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``model`` console script."""
    args = parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        return int(args.run(args))
    except QualityGateError as error:
        _fail(str(error))
        return 3
    except (ModelError, SpecError) as error:
        _fail(str(error))
    except KeyboardInterrupt:
        _fail("interrupted; no artifact was written")
        return 130
    except TerminatedError:
        _fail("stopped by SIGTERM; no artifact was written")
        return 143
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 1


if __name__ == "__main__":
    sys.exit(main())
