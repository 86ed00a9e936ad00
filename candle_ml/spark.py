"""A Spark session for candle-ml's Spark engine (the ``spark`` extra: ``pip install '.[spark]'``,
and Java 17 or 21: Debian's ``openjdk-17-jre-headless``).

``master`` is ``local[N]`` on one machine (the tests, and a first try) or a cluster's URL
(``spark://host:7077``, ``yarn``, ``k8s://…``). Nothing here starts a cluster; in local mode
the driver binds to loopback only.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import MutableMapping
from typing import Any

from candle_ml.errors import CandleMLError

log = logging.getLogger("candle_ml.spark")


class SparkUnavailable(CandleMLError):
    """pyspark or Java is missing."""


def local_worker_python(environ: MutableMapping[str, str]) -> str:
    """The interpreter local Python workers run: ``PYSPARK_PYTHON`` when the user set it, else this
    one (the venv with polars and candle-ml). Spark's own default is the ``python3`` on PATH, which
    need not have them: ``.venv/bin/candle-ml`` without an activated venv failed its workers with
    ``No module named 'polars'``. pyspark reads the variable when the context starts, so it is set
    in ``environ``; a cluster's workers keep the cluster's setting."""
    return environ.setdefault("PYSPARK_PYTHON", sys.executable)


def session(master: str = "local[*]", app_name: str = "candle-ml") -> Any:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkUnavailable(
            "the Spark engine needs pyspark: pip install 'candle-ml[spark]' (and Java 17+)"
        ) from None
    # pyspark 4.3 warns that pandas 3 is not fully supported; the batch tests check our answers
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        # pair=…/timeframe=… folders are names: left to itself Spark reads timeframe=1d as the
        # double 1.0 (Java's "1d" literal) and a numeric ticker as a number
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
    )
    if master.startswith("local"):
        # one machine: loopback only, and shuffle partitions for its cores (not 200 tiny tasks)
        cores = master.removeprefix("local").strip("[]").split(",")[0]
        n = (os.cpu_count() or 2) if cores in ("", "*") else int(cores)
        builder = (
            builder.config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.sql.shuffle.partitions", str(2 * n))
        )
        local_worker_python(os.environ)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # typically no Java: Spark's own message says so
        raise SparkUnavailable(f"Spark did not start ({master}): {type(exc).__name__}: {exc}") from None
    spark.sparkContext.setLogLevel("ERROR")
    return spark
