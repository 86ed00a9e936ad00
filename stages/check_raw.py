"""Stage ``check_raw``: every candle file in ``data/raw/`` read, validated and named before
``ingest`` runs.

DVC removes a stage's outputs before it runs it, so a bad file found by ``ingest`` itself would
cost ``data/candles/`` (and a ``dvc checkout`` to get it back). Found here, ``dvc repro`` stops
before ``ingest`` with the file, the row and the rule, and the stored series stay as they were.
Writes ``reports/raw_check.json``: each file, the series it becomes and its candle count.
"""

from __future__ import annotations

from pathlib import Path

import typer

from candle_ml import paths
from candle_ml.config import IngestParams, load_section
from candle_ml.ingest import check_raw
from candle_ml.stageio import run_stage, write_json


def main(params_file: Path = typer.Option(paths.PARAMS, "--params", help="params.yaml to read")) -> None:
    def run() -> None:
        write_json(
            paths.report_file("raw_check"), check_raw(load_section("ingest", IngestParams, params_file))
        )

    run_stage(run)


if __name__ == "__main__":
    typer.run(main)
