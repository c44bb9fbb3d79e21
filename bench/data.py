"""A seeded generator of penguins-shaped tables of any size: real rows resampled with noise,
plus a small share of invalid rows, written in chunks so 10M rows fit in little memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench.common import ROOT

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


def penguins_like(n_rows: int, *, seed: int, invalid_share: float = 0.01) -> pd.DataFrame:
    """``n_rows`` rows resampled from data/penguins.csv, numbers jittered by ~2%, and about
    ``invalid_share`` of rows broken (out of range, or a category the spec refuses)."""
    rng = np.random.default_rng(seed)
    base = pd.read_csv(ROOT / "data" / "penguins.csv").drop(columns=["year"])
    frame = base.iloc[rng.integers(0, len(base), n_rows)].reset_index(drop=True)
    for column in NUMERIC:
        frame[column] = frame[column] * rng.normal(1.0, 0.02, n_rows)
    broken = rng.random(n_rows) < invalid_share
    half = broken & (rng.random(n_rows) < 0.5)
    frame.loc[half, "bill_depth_mm"] = -1.0
    frame.loc[broken & ~half, "sex"] = "unknown"
    return frame


def write_parquet(path: Path, n_rows: int, *, seed: int, chunk_rows: int = 1_000_000) -> Path:
    """Write ``n_rows`` generated rows to ``path`` chunk by chunk."""
    writer: pq.ParquetWriter | None = None
    try:
        for index, start in enumerate(range(0, n_rows, chunk_rows)):
            chunk = penguins_like(min(chunk_rows, n_rows - start), seed=seed + index)
            table = pa.Table.from_pandas(chunk, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    return path
