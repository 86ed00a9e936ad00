"""Shared helpers: small hand-made candle series where the right answer is known."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from candle_ml.candles import CANDLE_SCHEMA

DAY = 86_400
T0 = 1_500_000_000 - (1_500_000_000 % DAY)  # a UTC midnight


def make_candles(rows: list[tuple[float, float, float, float]], volume: float = 1000.0, start: int = T0) -> pl.DataFrame:
    """(open, high, low, close) rows -> canonical candles, one per day."""
    arr = np.asarray(rows, dtype=np.float64)
    n = len(arr)
    return pl.DataFrame(
        {
            "time": start + DAY * np.arange(n, dtype=np.int64),
            "open": arr[:, 0],
            "high": arr[:, 1],
            "low": arr[:, 2],
            "close": arr[:, 3],
            "volume": np.full(n, volume),
        },
        schema=CANDLE_SCHEMA,
    )


def quiet_history(n: int, price: float = 100.0, seed: int = 0) -> list[tuple[float, float, float, float]]:
    """Ordinary mid-size candles alternating in colour, no pattern intended."""
    rng = np.random.default_rng(seed)
    rows = []
    p = price
    for i in range(n):
        body = 0.5 + 0.2 * rng.random()
        o = p
        c = p + body if i % 2 == 0 else p - body
        rows.append((o, max(o, c) + 0.4, min(o, c) - 0.4, c))
        p = c
    return rows


@pytest.fixture
def candles_factory():
    return make_candles
