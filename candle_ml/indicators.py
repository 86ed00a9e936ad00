"""TA-Lib indicators as features: each ``featurize.indicators`` entry resolved once to TA-Lib's
function API (unknown names and parameters refused with close matches) and its output columns."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from candle_ml.config import IndicatorSpec
from candle_ml.errors import FeatureError
from candle_ml.talib_api import import_talib, talib_abstract


def _param_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@functools.cache
def _function_info(name: str) -> dict[str, Any]:
    """TA-Lib's description of a function (building it costs ~0.1 ms, paid per request otherwise)."""
    info: dict[str, Any] = talib_abstract().Function(name).info
    return info


@functools.cache
def _indicator_names() -> tuple[str, ...]:
    """TA-Lib's functions that are not candlestick patterns (listed once, not per request)."""
    return tuple(f for f in talib_abstract().__TA_FUNCTION_NAMES__ if not f.startswith("CDL"))


def indicator_columns(
    spec: IndicatorSpec, where: str = "featurize.indicators"
) -> tuple[Callable[[dict[str, np.ndarray]], list[np.ndarray]], list[str]]:
    """Resolve one indicator spec to a TA-Lib abstract function and its output column names."""
    name = spec.name.upper()
    known = _indicator_names()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=4, cutoff=0.5)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise FeatureError(f"{where}: unknown TA-Lib indicator '{spec.name}'{hint}")
    info = _function_info(name)
    unknown = sorted(set(spec.params) - set(info["parameters"]))
    if unknown:
        raise FeatureError(
            f"{where} {name}: unknown parameter(s) {', '.join(unknown)} "
            f"(accepted: {', '.join(info['parameters']) or 'none'})"
        )
    stem = "_".join([name.lower(), *(_param_text(v) for v in spec.params.values())])
    outputs = info["output_names"]
    cols = [stem] if len(outputs) == 1 else [f"{stem}_{o}" for o in outputs]

    # TA-Lib's function API: the same C function as the abstract one, stateless (safe across
    # concurrent requests) and without building a Function object per call (~0.05 ms each).
    fn = getattr(import_talib(), name)
    wanted = [x for v in info["input_names"].values() for x in ([v] if isinstance(v, str) else v)]
    params = {k: (int(v) if float(v).is_integer() else float(v)) for k, v in spec.params.items()}

    def compute(inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            out = fn(*(inputs[x] for x in wanted), **params)
        except Exception as exc:  # TA-Lib reports bad parameter values as generic exceptions
            raise FeatureError(f"{where} {name} {dict(spec.params)}: TA-Lib failed: {exc}") from None
        return list(out) if isinstance(out, tuple | list) else [out]

    return compute, cols


def indicator_features(candles: pl.DataFrame, indicators: list[IndicatorSpec]) -> pl.DataFrame:
    inputs = {
        k: candles[k].to_numpy().astype(np.float64, copy=False)
        for k in ("open", "high", "low", "close", "volume")
    }
    columns = indicator_arrays(inputs, indicators)
    return pl.DataFrame(columns, schema={k: pl.Float64 for k in columns}) if columns else pl.DataFrame()


def indicator_arrays(
    inputs: dict[str, np.ndarray], indicators: list[IndicatorSpec], wanted: set[str] | None = None
) -> dict[str, np.ndarray]:
    """Each indicator's output column(s), by name (``indicator_columns``); with ``wanted``, only
    the indicators that make one of those columns are computed."""
    columns: dict[str, np.ndarray] = {}
    for i, spec in enumerate(indicators):
        compute, cols = indicator_columns(spec, f"featurize.indicators[{i}]")
        if wanted is not None and wanted.isdisjoint(cols):
            continue
        for col, values in zip(cols, compute(inputs), strict=True):
            if col in columns:
                raise FeatureError(
                    f"featurize.indicators[{i}]: column '{col}' is produced twice; remove the duplicate entry"
                )
            columns[col] = values
    return columns
