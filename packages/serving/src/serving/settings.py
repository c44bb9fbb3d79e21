"""Service settings: command-line flags or ``SERVING_*`` environment variables."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_CHUNK_ROWS = 200_000
"""Rows per chunk for batch scoring (``serving score --chunk-rows``); bounds memory."""

DEFAULT_MAX_REJECT_SHARE = 0.05
"""``serving score`` exits non-zero (code 4) when more than this share of rows is rejected, so
a scheduled job whose every row was rejected (a missing column, a wrong delimiter) fails."""


SERVICE_LINK = re.compile(r"SERVING_(SERVICE_(HOST|PORT)(_\w+)?|PORT_\d+_(TCP|UDP|SCTP)(_\w+)?)")
"""The variables Kubernetes sets in every pod for a Service named ``serving`` (service links)."""


class Settings(BaseSettings):
    """Every knob of the service; ``SERVING_ARTIFACT=/models/x serving serve`` and so on."""

    model_config = SettingsConfigDict(env_prefix="SERVING_", extra="ignore", frozen=True)

    artifact: Path | None = Field(
        None, description="artifact directory; default: the one bundled in the installed model"
    )
    artifact_digest: str | None = Field(
        None,
        pattern="^[0-9a-f]{64}$",
        description="sha256 of the artifact's manifest.json (`model info` shows it): any other "
        "artifact is refused; `serve` sets it for its workers, so all serve the one it verified",
    )
    public_key: Path | None = Field(
        None,
        description="Ed25519 public key (PEM): the artifact's signature must verify with it "
        "before anything else of it is read; unsigned or wrongly signed artifacts are refused",
    )
    host: str = Field("127.0.0.1", description="bind address")
    port: int = Field(8000, ge=0, le=65535, description="port (0: any free port)")
    workers: int = Field(1, ge=1, le=64, description="worker processes")
    max_records: int = Field(1000, ge=1, description="records per request; more gets 413")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="request body limit; more gets 413")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="log level: critical, error, warning, info or debug"
    )

    header_timeout: float = Field(
        10.0, gt=0, description="seconds a connection may take to send a request's head"
    )
    body_timeout: float = Field(
        30.0, gt=0, description="seconds a request may take to send its body"
    )
    keep_alive_timeout: int = Field(
        5, ge=1, description="seconds an idle keep-alive connection stays open"
    )
    max_connections: int = Field(
        1000, ge=1, description="open connections at most; beyond it, new requests get 503"
    )

    @model_validator(mode="after")
    def _no_unknown_variables(self) -> Settings:
        """A ``SERVING_*`` variable that names no setting is an error: a misspelt
        ``SERVING_ARTIFACTS`` would otherwise serve the bundled model without a word.
        Kubernetes' service links for a Service named ``serving`` are left alone."""
        known = {f"SERVING_{name.upper()}" for name in type(self).model_fields}
        unknown = sorted(
            name
            for name in os.environ
            if name.upper().startswith("SERVING_")
            and name.upper() not in known
            and not SERVICE_LINK.fullmatch(name.upper())
        )
        if unknown:
            msg = (
                f"unknown environment variable(s) {', '.join(unknown)}: no such setting; the "
                f"settings are {', '.join(sorted(known))}"
            )
            raise ValueError(msg)
        return self

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        """``INFO`` is ``info``."""
        return value.lower() if isinstance(value, str) else value
