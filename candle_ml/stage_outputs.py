"""The listings one stage writes and the next reads, typed and decoded strictly.

``data/candles/index.json`` (ingest), ``data/features/index.json`` (featurize) and
``data/dataset/schema.json`` (dataset) are read by six stages, the server and the evaluation
and training code. Each reader decodes the file into these structs, so a renamed or missing key
fails at the read, naming the file and the field, not later as a ``KeyError`` deep in a stage;
and what an augmented series is (``augmented_from`` set) is said once, here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, TypeVar

import msgspec
import polars as pl

from candle_ml.candles import series_key
from candle_ml.config import ChartRulesParams, FeaturizeParams, SplitParams
from candle_ml.errors import CandleMLError
from candle_ml.paths import INDEX

T = TypeVar("T")


class Listing(msgspec.Struct, forbid_unknown_fields=True):
    """A stage output's JSON: unknown keys are an error, as in params.yaml."""


class SeriesEntry(Listing):
    """One series ingest wrote: ``{PAIR}_{TIMEFRAME}.parquet`` and where it came from."""

    pair: str
    timeframe: str
    file: str
    source: str
    rows: int
    first_time: int
    last_time: int
    augmented_from: str | None  # key of the real series a training-only copy was made from

    @property
    def key(self) -> str:
        return series_key(self.pair, self.timeframe)

    @property
    def is_real(self) -> bool:
        """A series a trader has (not a mirror or gapless copy made for training)."""
        return self.augmented_from is None


class CandlesIndex(Listing):
    series: list[SeriesEntry]

    def real(self) -> list[SeriesEntry]:
        return [e for e in self.series if e.is_real]


class FeatureSeriesEntry(SeriesEntry):
    """One series featurize wrote: its rows after the warm-up was dropped."""

    first_time: int | None  # type: ignore[assignment]  # None when every candle was warm-up
    warmup_rows_dropped: int
    candles_first_time: int  # the first candle's time, before the warm-up was dropped


def features_entry(entry: SeriesEntry, kept: pl.DataFrame, warmup: int) -> FeatureSeriesEntry:
    """``entry``'s series once featurize dropped its first ``warmup`` rows, leaving ``kept``."""
    return FeatureSeriesEntry(
        **msgspec.structs.asdict(entry)
        | {
            "rows": kept.height,
            "first_time": int(kept["time"][0]) if kept.height else None,
            "warmup_rows_dropped": warmup,
            "candles_first_time": entry.first_time,
        }
    )


class FeaturesIndex(Listing):
    series: list[FeatureSeriesEntry]
    feature_columns: list[str]
    config: FeaturizeParams
    history_candles: int  # candles of history after which served features match the whole series'
    history_by_column: dict[str, int]  # the same per column: a model needs only its columns' history
    warmup_by_column: dict[str, int]

    @property
    def warmup(self) -> int:
        """The most warm-up rows any series dropped."""
        return max((e.warmup_rows_dropped for e in self.series), default=0)


def _read(path: Path, kind: type[T], made_by: str) -> T:
    if not path.is_file():
        raise CandleMLError(f"{path}: not found; it is written by the '{made_by}' stage (run `dvc repro`)")
    try:
        return msgspec.json.decode(path.read_bytes(), type=kind)
    except msgspec.DecodeError as exc:
        raise CandleMLError(
            f"{path}: {exc}; it is written by the '{made_by}' stage (run `dvc repro -f {made_by}`)",
            rule=f"{made_by}'s index",
        ) from None


def read_candles_index(candles_dir: Path) -> CandlesIndex:
    return _read(Path(candles_dir) / INDEX, CandlesIndex, "ingest")


def read_features_index(features_dir: Path) -> FeaturesIndex:
    return _read(Path(features_dir) / INDEX, FeaturesIndex, "featurize")


def real_series(candles_dir: Path) -> list[tuple[SeriesEntry, pl.DataFrame]]:
    """Every real series of a candles dir (augmented copies left out) with its candles, in index order."""
    candles_dir = Path(candles_dir)
    return [(e, pl.read_parquet(candles_dir / e.file)) for e in read_candles_index(candles_dir).real()]


class WindowLayout(Listing):
    """The candles a window covers around its anchor."""

    window_size: int
    context: int
    anchor: Literal["end", "centre"]
    before: int  # candles before the anchor
    after: int


class DatasetSchema(Listing):
    """What ``build_dataset`` decided about the rows it encoded."""

    encoding: str
    feature_columns: list[str]
    own_label_features: list[str]  # read for a trader's own labels only
    input_columns: list[str]
    window: WindowLayout
    label_lengths: dict[str, int]  # candles a predicted pattern covers, ending where it is predicted
    labels: list[str]
    label_priority: list[str]
    merge: str
    split: SplitParams
    target_columns: list[str]


class ModelSchema(DatasetSchema):
    """``data/dataset/schema.json``: the dataset's schema plus what a model needs to rebuild its
    inputs from raw candles (the featurize config, the warm-up and history) and the chart rules'
    settings the chart model's proposals were made with."""

    featurize: FeaturizeParams
    warmup: int
    history: int
    history_by_column: dict[str, int]
    warmup_by_column: dict[str, int]
    chart: ChartRulesParams | None = None


def model_schema(
    schema: DatasetSchema, features_index: FeaturesIndex, chart: ChartRulesParams | None = None
) -> ModelSchema:
    """The dataset's schema plus, from the featurize stage's index, the featurize config and the
    history after which features match the whole series, in all and per feature column
    (``training.bundle_meta`` takes the columns the model reads), and the warm-up."""
    return ModelSchema(
        **msgspec.structs.asdict(schema),
        featurize=features_index.config,
        warmup=features_index.warmup,
        history=features_index.history_candles,
        history_by_column=features_index.history_by_column,
        warmup_by_column=features_index.warmup_by_column,
        chart=chart,
    )


def read_model_schema(path: Path) -> ModelSchema:
    return _read(Path(path), ModelSchema, "dataset")
