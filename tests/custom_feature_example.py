"""A custom feature used by the tests: ``featurize.custom: [tests.custom_feature_example:log_volume]``."""

import numpy as np
import polars as pl


def log_volume(frame: pl.DataFrame) -> pl.Series:
    return pl.Series("log_volume", np.log1p(frame["volume"].to_numpy()))
