"""A Label Studio ML backend under ``/label-studio`` (the URL given to Label Studio is
``http://HOST:PORT/label-studio``), speaking the protocol of Label Studio's
``label-studio-ml-backend`` (``label_studio_ml/api.py``) as Label Studio 1.23 calls it:

- ``GET /health`` (and ``/``), ``POST /setup`` (when the backend is added, and before predicting),
  ``GET /metrics``;
- ``POST /predict``: the model's spans on each task's candles, as that task's prediction;
- ``POST /webhook``: an annotation created, updated or deleted goes into the feedback log (as
  ``POST /feedback`` writes it: durable before the answer), the task's candles kept so the next
  ``dvc repro`` trains on them; ``START_TRAINING`` says what to run.

Optional Basic Auth (``candle-ml serve --label-studio-auth USER:PASSWORD``), as the reference
backend offers. Setup: docs/label-studio.md.
"""

from __future__ import annotations

import base64
import hmac
import threading
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import msgspec
import numpy as np
from litestar import Controller, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.handlers import BaseRouteHandler
from litestar.params import Body
from litestar.status_codes import HTTP_200_OK

from candle_ml.errors import CandleMLError
from candle_ml.feedback import append_lines, replace_answers, reviewed_log_for
from candle_ml.label_studio import (
    LabelMap,
    TaskSeries,
    annotation_prefix,
    annotation_spans,
    parse_label_config,
    prediction_result,
    task_reviewed,
    task_series,
)
from candle_ml.loading import LoadedModel
from candle_ml.prediction import predict_frame
from candle_ml.stored_series import predict_stored
from serve.errors import NotAuthorized
from serve.limits import WorkLimiter
from serve.model_store import ModelStore
from serve.schemas import errors, strict_json
from serve.series_cache import SeriesCache

ANNOTATION_EVENTS = {"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED"}
DELETE_EVENTS = {"ANNOTATIONS_DELETED", "ANNOTATION_DELETED"}


class StudioSetup(msgspec.Struct):
    schema: str  # the project's label config
    project: str | int | None = None
    hostname: str = ""
    access_token: str = ""
    extra_params: Any = None


class StudioPredict(msgspec.Struct):
    tasks: list[dict[str, Any]]
    label_config: str
    project: str | int | None = None
    params: dict[str, Any] | None = None


class StudioEvent(msgspec.Struct):
    action: str
    annotation: dict[str, Any] | list[dict[str, Any]] | None = None
    annotations: list[dict[str, Any]] | None = None
    task: dict[str, Any] | list[dict[str, Any]] | None = None
    project: dict[str, Any] | None = None


class StudioCounts:
    """What Label Studio asked for since the server started (``GET /label-studio/metrics``)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, what: str, n: int = 1) -> None:
        with self._lock:
            self._counts[what] += n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def _counts(state: State) -> StudioCounts:
    counts: StudioCounts = state.setdefault("label_studio_counts", StudioCounts())
    return counts


def basic_auth(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """401 unless the request carries ``--label-studio-auth`` USER:PASSWORD as Basic Auth (when set)."""
    credentials: str | None = connection.app.state.settings.label_studio_auth
    if not credentials:
        return
    expected = base64.b64encode(credentials.encode()).decode()
    scheme, _sep, sent = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not hmac.compare_digest(sent.strip().encode(), expected.encode()):
        raise NotAuthorized(
            "Label Studio backend: Basic Auth required (the user and password given to candle-ml serve "
            "--label-studio-auth; in Label Studio: the model's Basic Authentication)",
            field="Authorization",
            rule="basic auth",
        )


def _version(model: LoadedModel) -> str:
    return f"{model.name}@{model.version}"


def predict_task(model: LoadedModel, series_cache: SeriesCache, series: TaskSeries, checkpoint: Any) -> Any:
    """The model's spans on a task: in the context of the stored series when the task is a stretch
    of one (its first candles then have their history), else on the task's candles alone."""
    held = series_cache.stored.candles.get((series.pair, series.timeframe))  # one snapshot
    times = series.times
    if held is not None:
        held_times = held["time"].to_numpy()
        idx = np.searchsorted(held_times, times)
        inside = bool(np.all(idx < held.height)) and np.array_equal(held_times[idx], times)
        if inside and held[idx.tolist()].equals(series.candles):
            return predict_stored(
                model,
                held,
                series.pair,
                series.timeframe,
                int(times[0]),
                int(times[-1]),
                checkpoint=checkpoint,
            )
    return predict_frame(model, series.candles, checkpoint=checkpoint)


class LabelStudioController(Controller):
    path = "/label-studio"
    tags = ["label-studio"]
    guards = [basic_auth]

    @get(
        ["/", "/health"],
        sync_to_thread=False,
        summary="Label Studio: is the backend up (and which model it serves)",
    )
    def health(self, store: NamedDependency[ModelStore]) -> dict[str, Any]:
        loaded = store.current
        return {
            "status": "UP",
            "model_class": "candle-ml",
            "model_version": _version(loaded) if loaded else None,
        }

    @post(
        "/setup",
        status_code=HTTP_200_OK,
        sync_to_thread=False,  # parses a short XML: no thread needed
        dto=strict_json(StudioSetup),
        return_dto=None,
        responses=errors(e400="malformed body", e422="a label config candle-ml cannot read"),
        summary="Label Studio: the project's label config checked (when the backend is added)",
    )
    def setup(
        self, data: Annotated[StudioSetup, Body()], model: NamedDependency[LoadedModel], state: State
    ) -> dict[str, Any]:
        labels = LabelMap(parse_label_config(data.schema), model.bundle.meta.label_names)
        _counts(state).add("setup")
        return {
            "model_version": _version(model),
            "labels_predicted": sorted(labels.to_studio.values()),
            "labels_left_out": labels.left_out,  # ours the config lacks: never predicted there
            "labels_learned_from_marks": labels.new,  # theirs the model does not know yet
        }

    @get("/metrics", sync_to_thread=False, summary="Label Studio: what it asked for since the server started")
    def metrics(self, state: State) -> dict[str, int]:
        return _counts(state).snapshot()

    @post(
        "/predict",
        status_code=HTTP_200_OK,
        dto=strict_json(StudioPredict),
        return_dto=None,
        responses=errors(
            e400="malformed body",
            e422="a label config candle-ml cannot read; one task alone whose candles break a rule",
            e503="busy",
        ),
        summary="Label Studio: the model's spans on each task's candles, as its predictions",
    )
    async def predict(
        self,
        data: Annotated[StudioPredict, Body()],
        model: NamedDependency[LoadedModel],
        series_cache: NamedDependency[SeriesCache],
        work: NamedDependency[WorkLimiter],
        state: State,
    ) -> dict[str, Any]:
        labels = LabelMap(parse_label_config(data.label_config), model.bundle.meta.label_names)
        version = _version(model)

        def run(checkpoint: Any) -> list[dict[str, Any]]:
            results = []
            for i, task in enumerate(data.tasks):
                try:
                    series = task_series(task, labels.config, f"tasks[{i}]")
                    answer = predict_task(model, series_cache, series, checkpoint)
                    results.append(prediction_result(answer.spans, labels, series, version))
                except CandleMLError as exc:
                    if len(data.tasks) == 1:
                        raise
                    # one task Label Studio cannot be given predictions for does not stop the rest
                    results.append({"result": [], "score": 0.0, "model_version": version, "error": str(exc)})
            return results

        results = await work.run(run)
        _counts(state).add("predicted_tasks", len(results))
        return {"results": results, "model_version": version}

    @post(
        "/webhook",
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        dto=strict_json(StudioEvent),
        return_dto=None,
        responses=errors(
            e400="malformed body",
            e409="the task's candles disagree with a stored series of that name",
            e422="a label config or task candle-ml cannot read; a region holding no candle",
        ),
        summary="Label Studio: an annotation created, updated or deleted (durable before the 200)",
    )
    def webhook(
        self,
        data: Annotated[StudioEvent, Body()],
        series_cache: NamedDependency[SeriesCache],
        feedback_log: NamedDependency[Path],
        state: State,
    ) -> dict[str, Any]:
        event = data
        project = (event.project or {}).get("id")
        if event.action in ANNOTATION_EVENTS:
            return self._annotated(event, project, series_cache, feedback_log, _counts(state))
        if event.action in DELETE_EVENTS:
            gone = [a.get("id") for a in (event.annotations or _listed(event.annotation))]
            taken = sum(replace_answers(feedback_log, annotation_prefix(project, a), []) for a in gone)
            _counts(state).add("annotations_deleted", len(gone))
            return {"status": "ok", "annotations": len(gone), "spans_taken_back": taken}
        if event.action == "START_TRAINING":
            _counts(state).add("start_training")
            return {
                "status": "ok",
                "message": "candle-ml trains in its pipeline: run `dvc repro` (the annotations are in "
                "the feedback log already), then POST /model/reload",
            }
        return {"status": "Unknown event"}

    def _annotated(
        self,
        event: StudioEvent,
        project: Any,
        series_cache: SeriesCache,
        feedback_log: Path,
        counts: StudioCounts,
    ) -> dict[str, Any]:
        config = (event.project or {}).get("label_config")
        if not isinstance(config, str):
            raise CandleMLError("webhook: project.label_config missing (send the payload)", field="project")
        cfg = parse_label_config(config)
        annotations, tasks = _listed(event.annotation), _listed(event.task)
        by_id = {t.get("id"): t for t in tasks}
        stored = 0
        for annotation in annotations:
            task = by_id.get(annotation.get("task"), tasks[0] if len(tasks) == 1 else None)
            if task is None:
                raise CandleMLError(f"webhook: no task {annotation.get('task')} in the payload", field="task")
            series, spans = annotation_spans(annotation, task, cfg, project)
            series_cache.keep_task(series.pair, series.timeframe, series.candles)  # before the 200
            replace_answers(feedback_log, annotation_prefix(project, annotation.get("id")), spans)
            if not annotation.get("was_cancelled"):  # a task gone through (a skipped one was not)
                append_lines(reviewed_log_for(feedback_log), [task_reviewed(series, cfg)])
            stored += len(spans)
        counts.add("annotations_stored", len(annotations))
        return {"status": "ok", "annotations": len(annotations), "spans": stored}


def _listed(value: dict[str, Any] | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
