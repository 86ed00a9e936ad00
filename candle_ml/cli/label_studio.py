"""Label Studio by files, for teams that move exports rather than connect the ML backend:
``candle-ml import`` of a Label Studio export into ``data/annotations/human/``, and
``candle-ml label-studio config`` / ``tasks`` to set a project up with pre-annotations
(docs/label-studio.md)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from candle_ml import paths
from candle_ml.cli.common import user_errors

studio = typer.Typer(help="Label Studio projects by files: the label config, tasks with pre-annotations.")


def import_export(
    export: Path = typer.Argument(..., help="Label Studio export: JSON or JSON_MIN of a time-series project"),
    label_config: Path = typer.Option(
        None, help="the project's label config (XML); without it the task fields say where the candles are"
    ),
    human_dir: Path = typer.Option(paths.HUMAN_DIR, help="where the spans go, as label-studio-<name>.json"),
    raw_dir: Path = typer.Option(paths.RAW_DIR, help="where candles of series not ingested yet go"),
    candles_dir: Path = typer.Option(
        paths.CANDLES_DIR, help="the ingested series (their candles are not copied)"
    ),
) -> None:
    """Import a Label Studio export's time-series annotations as human spans for the next `dvc repro`.

    The tasks' candles come along: a series ingest stored must match them; any other is merged
    into data/raw/PAIR_TIMEFRAME.parquet so the next `dvc repro` ingests it.
    """
    from candle_ml.annotations import write_annotation_file
    from candle_ml.label_studio_files import read_studio_export
    from candle_ml.opened_charts import check_same_where_both, merge_for_training
    from candle_ml.stored_series import load_stored

    with user_errors():
        tasks = read_studio_export(export, label_config.read_text() if label_config else None)
        stored = load_stored(candles_dir).candles if candles_dir.is_dir() else {}
        kept = set()
        for task in tasks:
            key = (task.series.pair, task.series.timeframe)
            if key in stored:
                check_same_where_both(
                    stored[key], task.series.candles, f"{export}: {key[0]} {key[1]} as stored"
                )
            elif merge_for_training(raw_dir, *key, task.series.candles) is not None:
                kept.add(key)
        spans = [s for t in tasks for s in t.spans]
        # every task annotated (not skipped) was gone through: its unmarked candles are negatives
        reviewed = [t.reviewed for t in tasks if t.reviewed is not None]
        out = human_dir / f"label-studio-{export.stem}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        write_annotation_file(out, spans, source=str(export), reviewed=reviewed)
    series = sorted({(s.pair, s.timeframe) for s in spans})
    typer.echo(
        f"{len(spans)} spans from {len(tasks)} annotated tasks ({len(reviewed)} reviewed ranges) -> {out}"
    )
    typer.echo(f"series: {', '.join(f'{p} {t}' for p, t in series) or 'none'}")
    if kept:
        typer.echo(f"candles kept for ingest in {raw_dir}: {', '.join(f'{p}_{t}' for p, t in sorted(kept))}")
    typer.echo("next: dvc repro")


@studio.command("config")
def config(
    model: str = typer.Option(str(paths.MODEL_DIR), help="the bundle whose labels the project offers"),
    label: list[str] = typer.Option([], help="a trader's own label to offer too (repeatable)"),
    intraday: bool = typer.Option(False, help="show times with hours (intraday candles)"),
) -> None:
    """Print the label config to paste into a Label Studio project (Settings > Labeling Interface)."""
    from candle_ml.label_studio_files import label_config_xml
    from candle_ml.loading import load_model_from
    from candle_ml.tracking import tracking_uri

    with user_errors():
        labels = load_model_from(model, tracking_uri()).bundle.meta.label_names
    typer.echo(
        label_config_xml([*labels, *(x for x in label if x not in labels)], daily=not intraday), nl=False
    )


@studio.command("tasks")
def tasks(
    pair: str = typer.Argument(..., help="a stored series, e.g. AAPL"),
    timeframe: str = typer.Argument(..., help="e.g. 1d"),
    out: Path = typer.Option(..., "-o", "--out", help="the tasks file to import into Label Studio"),
    size: int = typer.Option(250, min=10, help="candles per task"),
    model: str = typer.Option(str(paths.MODEL_DIR), help="the bundle whose spans pre-annotate the tasks"),
    predictions: bool = typer.Option(True, help="the model's spans as pre-annotations"),
    feedback: bool = typer.Option(True, help="the traders' answers in candle-ml as pre-annotations too"),
    candles_dir: Path = typer.Option(paths.CANDLES_DIR, help="the ingested series"),
) -> None:
    """Write a stored series as Label Studio tasks (Import in the project), pre-annotated."""
    from candle_ml.feedback import human_spans
    from candle_ml.label_studio import LabelMap, parse_label_config
    from candle_ml.label_studio_files import label_config_xml, studio_tasks
    from candle_ml.loading import load_model_from
    from candle_ml.prediction import predict_frame
    from candle_ml.stored_series import load_stored
    from candle_ml.tracking import tracking_uri

    with user_errors():
        loaded = load_model_from(model, tracking_uri())
        candles = load_stored(candles_dir).get(pair, timeframe)
        names = loaded.bundle.meta.label_names
        answers = human_spans(paths.HUMAN_DIR, paths.FEEDBACK_LOG, pair, timeframe) if feedback else []
        offered = [*names, *sorted({s.label for s in answers} - set(names))]
        labels = LabelMap(parse_label_config(label_config_xml(offered)), offered)
        spans = predict_frame(loaded, candles).spans if predictions else None
        made = studio_tasks(
            pair, timeframe, candles, size, labels, spans, f"{loaded.name}@{loaded.version}", answers
        )
        out.write_text(json.dumps(made))
    typer.echo(f"{len(made)} tasks of {size} candles ({candles.height} in all) -> {out}")
