"""Typed views of ``params.yaml``.

Each stage parses only its own section into a msgspec ``Struct`` at the edge and
passes it down explicitly. Unknown keys are rejected so a typo in params.yaml is
an error that names the key, not a silently ignored setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec
import yaml

from candle_ml.chart.patterns import ChartRules
from candle_ml.errors import ConfigError
from candle_ml.paths import PARAMS as PARAMS_FILE
from candle_ml.timeframes import parse_timeframe


class Options(msgspec.Struct, forbid_unknown_fields=True):
    """Base of every config struct: an unknown key is an error naming it, not a silent default."""


class IngestParams(Options):
    # Symbols of bokeh_sampledata.stocks to ingest (real daily OHLCV, 2000-2013).
    bundled: list[str] = msgspec.field(default_factory=lambda: ["AAPL", "GOOG", "IBM", "MSFT", "FB"])
    bundled_timeframe: str = "1d"
    # Candle files dropped here are ingested too: any layout candle_ml.candle_formats knows, named
    # {PAIR}_{TIMEFRAME} or as the platform named it (candle_ml.series_names), or mapped in `names`.
    raw_dir: str = "data/raw"
    names: dict[str, str] = msgspec.field(default_factory=dict)  # file name -> PAIR_TIMEFRAME
    # Timezone that naive timestamps in raw files are in (aware ones are converted).
    naive_timezone: str = "UTC"
    # The time column of raw files when its name is none of the usual ones (Date, Datetime, ...).
    time_column: str | None = None
    on_invalid: Literal["error", "drop"] = "error"
    # Training-only augmentation: "mirror" adds each series reflected upside down
    # (bullish <-> bearish shapes); "gapless" adds each series with every open at the previous
    # close (how index and 24-hour markets print). TA-Lib labels them afresh; the dataset stage
    # keeps only their train-split rows, so validation and test stay real data.
    augment: list[Literal["mirror", "gapless"]] = msgspec.field(default_factory=list)


class IndicatorSpec(Options):
    name: str
    params: dict[str, int | float] = msgspec.field(default_factory=dict)


class FeaturizeParams(Options):
    indicators: list[IndicatorSpec] = msgspec.field(default_factory=list)
    # Candles averaged for the scale that makes candle features price-free;
    # 10 matches TA-Lib's own candle-size averages.
    scale_window: int = 10
    # "path/to/file.py:function" or "package.module:function" entries.
    custom: list[str] = msgspec.field(default_factory=list)
    # Served predictions need enough history for exponential indicators to agree with
    # the whole-series values within this relative tolerance (measured by the stage).
    convergence_tolerance: float = 1e-6
    # Longer candles each series is resampled into for context (candle_ml/timeframes.py), e.g.
    # [4h, 1d] for hourly data; each must be longer than every series' own timeframe.
    higher_timeframes: list[str] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        if self.scale_window < 1:
            raise ValueError("featurize.scale_window must be >= 1")
        for i, tf in enumerate(self.higher_timeframes):
            if parse_timeframe(tf) is None:
                raise ValueError(
                    f"featurize.higher_timeframes[{i}]: '{tf}' is not a timeframe of the form "
                    "<n>s|m|h|d|w (e.g. 4h, 1d, 1w)"
                )
        if len(set(self.higher_timeframes)) != len(self.higher_timeframes):
            raise ValueError("featurize.higher_timeframes: a timeframe is listed twice")
        if not 0 < self.convergence_tolerance < 1:
            raise ValueError("featurize.convergence_tolerance must be between 0 and 1")


class ChartRulesParams(Options):
    """The chart rules' settings a user may change; their defaults are the rules' own."""

    window: int = ChartRules.window  # candles each kernel regression sees
    confirm: int = ChartRules.confirm  # candles after a pattern's last turn before it counts as complete
    bandwidth: float = ChartRules.bandwidth  # Gaussian kernel bandwidth, in candles

    @property
    def rules(self) -> ChartRules:
        """The one place params become the rules every stage, the CLI and the batch apply."""
        return ChartRules(window=self.window, confirm=self.confirm, bandwidth=self.bandwidth)

    def __post_init__(self) -> None:
        if self.window < 10 or self.confirm < 1 or self.confirm >= self.window or self.bandwidth <= 0:
            raise ValueError("autolabel.chart: window >= 10, 1 <= confirm < window, bandwidth > 0")


class AutolabelParams(Options):
    # TA-Lib CDL* function names; earlier entries win where spans overlap.
    patterns: list[str] = msgspec.field(default_factory=list)
    # Chart patterns (candle_ml/chart/patterns.py, Lo-Mamaysky-Wang rules) labelled as spans too;
    # the autolabel stage checks the names.
    chart_patterns: list[str] = msgspec.field(default_factory=list)
    chart: ChartRulesParams = msgspec.field(default_factory=ChartRulesParams)


class SplitParams(Options):
    method: Literal["temporal", "random"] = "temporal"
    train: float = 0.7
    val: float = 0.15
    test: float = 0.15

    def __post_init__(self) -> None:
        for name in ("train", "val", "test"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"dataset.split.{name} must be within [0, 1]")
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"dataset.split.train + val + test must be 1.0, got {total:g}")


class DatasetParams(Options):
    encoding: Literal["end", "window", "bio"] = "end"
    window_size: int = 3
    context: int = 0
    min_confidence: float = 0.5
    merge: Literal["human_priority", "programmatic_priority", "both"] = "human_priority"
    # Negative (O) windows per positive window; 0 or less keeps every unannotated candle.
    negative_ratio: float = 1.0
    seed: int = 42
    # Feature columns (fnmatch patterns) fed to the model, in this order.
    features: list[str] = msgspec.field(default_factory=lambda: ["*_rel", "body_direction"])
    split: SplitParams = msgspec.field(default_factory=SplitParams)
    # A human span of a label the rules know moves onto that rule's span when both its ends are
    # within this many candles of the rule's (0: never); see candle_ml.labels.snap_to_rules.
    snap_to_rules: int = 2
    # A human label whose spans are this long (median, in candles) or longer is a chart pattern:
    # the chart model learns it instead of the per-candle model.
    chart_min_candles: int = 10
    # A trader's own label (one the rules do not know) is learned from marks as people make them
    # (candle_ml.own_labels): the true last candle of a fresh mark is looked for this many candles
    # either side of the marked one (0: ends stay as marked).
    end_tolerance: int = 2
    # Feature columns (fnmatch patterns) the model also reads when the data has a trader's own
    # label; the rules' labels never choose them (train.top_inputs ranks the rest for them).
    own_label_features: list[str] = msgspec.field(default_factory=lambda: ["setup_*"])
    # Without a reviewed range for a series, a trader looked at this many candles either side of
    # each of its marks; unmarked candles there are negatives of its label, further away only
    # those the label's own model finds unlike it.
    reviewed_around_marks: int = 10

    def __post_init__(self) -> None:
        if self.window_size < 1:
            raise ValueError("dataset.window_size must be >= 1")
        if self.context < 0:
            raise ValueError("dataset.context must be >= 0")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError("dataset.min_confidence must be within [0, 1]")
        if not self.features:
            raise ValueError("dataset.features must list at least one column pattern")


class XGBoostParams(Options):
    n_estimators: int = 400  # an upper bound: early stopping on the val split picks the round
    max_depth: int = 6
    learning_rate: float = 0.3
    subsample: float = 0.9
    colsample_bytree: float = 0.8
    min_child_weight: float = 1.0
    reg_lambda: float = 1.0
    early_stopping_rounds: int = 40
    n_jobs: int | None = None  # None: all cores
    # one_output_per_tree: a tree per class per round | multi_output_tree: one tree per round
    # whose leaves hold every class's score (fewer trees to walk when predicting)
    multi_strategy: Literal["one_output_per_tree", "multi_output_tree"] = "one_output_per_tree"
    max_bin: int = 256  # histogram bins per feature


class XGBoostSparkParams(XGBoostParams):
    """``xgboost`` trained on Spark (candle_ml/models/xgboost_spark.py): the same knobs, plus where."""

    master: str = "local[*]"  # local[N] on one machine, or the cluster's URL (spark://, yarn, k8s://)
    num_workers: int = 1  # Spark tasks XGBoost trains with (one per executor core is typical)


class RandomForestParams(Options):
    n_estimators: int = 300
    max_depth: int | None = None
    min_samples_leaf: int = 1
    max_features: str | float | None = 0.1
    n_jobs: int | None = -1


class ChartModelParams(Options):
    """The chart-pattern classifier (candle_ml/chart/model.py): XGBoost over proposals."""

    n_estimators: int = 400  # upper bound: early stopping on the val split picks the round
    max_depth: int = 4
    learning_rate: float = 0.1
    early_stopping_rounds: int = 40
    # multi_output_tree: one tree per round whose leaves score every label (better on the test
    # split and holdouts than a tree per label, and half the serving time) | one_output_per_tree
    multi_strategy: Literal["one_output_per_tree", "multi_output_tree"] = "multi_output_tree"


class TrainParams(Options):
    model_type: str = "xgboost"
    class_weight: Literal["balanced", "none"] = "balanced"
    # Rows a trader labeled (exports, feedback) weigh this many times a TA-Lib-labeled row.
    human_weight: float = 20.0
    seed: int = 42
    device: Literal["cpu", "cuda"] = "cpu"
    # The model reads only the N window columns (feature@offset) that a quick XGBoost fit (a tree
    # per class per round) gains most from; 0: every column. Fewer columns: faster fits and windows.
    top_inputs: int = 0
    # A column whose feature needs more history than this (a slow indicator: ADX ~290 candles) is
    # read only when it wins on validation: a quick fit with it must beat the same fit without it
    # (the next fast columns instead): the rules' labels by over 2 standard errors of log loss, a
    # trader's own label by 0.02 of its own F1. Otherwise a pattern that needs no trend would
    # leave a short chart unlabelled. 0: no limit.
    max_history: int = 30
    # ...plus, for each trader's own label (one no rule knows), this many of the columns telling
    # most for it alone: with 30 shared by 15 labels, a 5-candle setup got too few.
    own_inputs: int = 20
    xgboost: XGBoostParams = msgspec.field(default_factory=XGBoostParams)
    xgboost_spark: XGBoostSparkParams = msgspec.field(default_factory=XGBoostSparkParams)
    random_forest: RandomForestParams = msgspec.field(default_factory=RandomForestParams)
    chart: ChartModelParams = msgspec.field(default_factory=ChartModelParams)
    # temperature: rescale confidences so 0.8 means right ~80 % of the time, fitted on the val
    # split's candles (candle_ml/calibration.py) | none: the model's own probabilities.
    calibration: Literal["temperature", "none"] = "temperature"
    # A predicted pattern whose (calibrated) confidence is below its threshold becomes O: one
    # global value, and per-label ones that override it (e.g. {doji: 0.6}).
    threshold: float = 0.0
    thresholds: dict[str, float] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.human_weight <= 0:
            raise ValueError("train.human_weight must be > 0")
        if self.top_inputs < 0:
            raise ValueError("train.top_inputs must be >= 0 (0: every input column)")
        if self.own_inputs < 0:
            raise ValueError("train.own_inputs must be >= 0")
        if self.max_history < 0:
            raise ValueError("train.max_history must be >= 0 (0: no limit)")
        for name, value in {"threshold": self.threshold, **self.thresholds}.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"train.thresholds: {name} {value} must be within [0, 1]")


class EvaluateParams(Options):
    # A predicted span matches a reference span of the same label when their
    # intersection-over-union exceeds this.
    min_overlap: float = 0.5
    top_features: int = 25  # bars in feature_importance.png


class HoldoutParams(Options):
    # Series the model never trained on, scored against TA-Lib's signals on them
    # (candle_ml/holdout.py lists the sources); empty: the stage writes no scores.
    series: list[str] = msgspec.field(default_factory=list)


class LearningCurveParams(Options):
    # Budgets of spans per label a simulated trader marks; each trains one model (empty: skip).
    spans_per_class: list[int] = msgspec.field(default_factory=list)
    headline: int = 100  # the budget whose scores go to metrics/curve.json
    review_range: int = 60  # candles the trader reviews at a time before moving elsewhere
    jitter: int = 2  # each marked boundary is up to this many candles off, either way
    miss: float = 0.10  # share of the patterns reviewed that are not marked
    mislabel: float = 0.05  # share of the marked spans given another label
    seed: int = 42
    # A trader's own patterns, defined outside the library ("path/to/file.py:function", True on
    # each occurrence's last candle, its `length` attribute the candles it covers), each marked by
    # every simulated trader below and scored against its complete truth (candle_ml/own_curve.py).
    own_patterns: list[str] = msgspec.field(default_factory=list)
    traders: list[str] = msgspec.field(
        default_factory=lambda: [
            "exact",
            "ends_1",
            "ends_2",
            "skims_60",
            "reviews_60",
            "marks_100_ends_1",
            "mislabels_5",
        ]
    )

    def __post_init__(self) -> None:
        if any(n < 1 for n in self.spans_per_class):
            raise ValueError("learning_curve.spans_per_class must list budgets >= 1")
        if self.review_range < 1 or self.jitter < 0:
            raise ValueError("learning_curve.review_range must be >= 1 and jitter >= 0")
        if not (0.0 <= self.miss < 1.0 and 0.0 <= self.mislabel < 1.0):
            raise ValueError("learning_curve.miss and mislabel must be within [0, 1)")


class OutcomesParams(Options):
    # Forward returns after each pattern vs matched random entries (candle_ml/outcomes.py).
    horizons: list[int] = msgspec.field(default_factory=lambda: [1, 5, 10, 20])  # candles held
    cost: float = 0.001  # round trip, as a share of the entry price (0.001: 10 basis points)
    random_entries: int = 20  # random entries per occurrence, same series, direction and horizon
    match_window: int = 250  # ...within this many candles of it (about a year of daily candles)
    bootstrap: int = 1000  # resamples of date clusters for the confidence interval
    alpha: float = 0.05  # error rate of the grid after correction; 1 - alpha is the interval's level
    power: float = 0.8  # for the minimum detectable effect
    correction: Literal["bh", "holm"] = "bh"  # Benjamini-Hochberg (false discoveries) or Holm (any)
    min_occurrences: int = 30  # fewer: "insufficient data"
    min_clusters: int = 10
    summary_horizon: int = 5  # the horizon shown next to each label (GET /model/labels, review page)
    seed: int = 42

    def __post_init__(self) -> None:
        if not self.horizons or any(h < 1 for h in self.horizons):
            raise ValueError("outcomes.horizons must list horizons >= 1 candle")
        if self.summary_horizon not in self.horizons:
            raise ValueError(f"outcomes.summary_horizon {self.summary_horizon} must be one of horizons")
        if not (0.0 < self.alpha < 1.0 and 0.0 < self.power < 1.0):
            raise ValueError("outcomes.alpha and power must be within (0, 1)")
        if self.cost < 0 or self.random_entries < 1 or self.match_window < 1 or self.bootstrap < 100:
            raise ValueError(
                "outcomes: cost must be >= 0, random_entries and match_window >= 1, bootstrap >= 100"
            )
        if self.min_occurrences < 2 or self.min_clusters < 2:
            raise ValueError("outcomes.min_occurrences and min_clusters must be >= 2")


class MlflowParams(Options):
    experiment: str = "candle-ml"
    registered_model: str = ""  # empty: log the model, do not register it
    alias: str = "candidate"  # moves to every workspace run's version (not to queued experiments')
    # Moves only to a version that beats the current champion on the same test split.
    champion_alias: str = "champion"
    max_pattern_drop: float = 0.05  # ...with no pattern's span F1 lower than the champion's by more
    required: bool = False  # False: warn and go on when the tracking store is unreachable


S = TypeVar("S", bound=msgspec.Struct)


def read_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found (run from the repository root)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def parse_section(data: dict[str, Any], section: str, cls: type[S], path: Path = PARAMS_FILE) -> S:
    """Convert one params section into its Struct; errors name the key path."""
    try:
        return msgspec.convert(data.get(section) or {}, cls)
    except msgspec.ValidationError as exc:
        # msgspec reports "... - at `$.split.train`"; point at params.yaml's key instead.
        msg = str(exc).replace("`$", f"`{section}")
        raise ConfigError(f"{path}: section '{section}': {msg}") from None


def load_section(section: str, cls: type[S], path: Path = PARAMS_FILE) -> S:
    return parse_section(read_params(path), section, cls, path)
