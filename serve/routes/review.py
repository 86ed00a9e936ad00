"""``POST /disagreements``, ``GET /review`` and ``GET /review/queue``: the model against the traders."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import Body, Parameter
from litestar.status_codes import HTTP_200_OK

from candle_ml.errors import UnknownSeries
from candle_ml.feedback import human_spans, select_spans
from candle_ml.history import HistoryWriter
from candle_ml.loading import LoadedModel
from candle_ml.prediction import Checkpoint, extent, respond
from candle_ml.review import Kind, TimedSpan, disagreements, review_queue, timeframe_seconds
from serve.history import remember
from serve.limits import WorkLimiter, admit
from serve.queries import END, PAIR, START, TIMEFRAME
from serve.schemas import (
    BUSY,
    CONFIDENCE,
    AnnotationSpan,
    Disagreement,
    DisagreementsRequest,
    DisagreementsResponse,
    PredictedSpan,
    QueueItem,
    QueueResponse,
    ReviewResponse,
    errors,
    strict_json,
    to_wire,
)
from serve.series_cache import SeriesCache

T = TypeVar("T")
MIN_CONFIDENCE = Parameter(ge=0.0, le=1.0, description=CONFIDENCE.description)


def _grid(pair: str | None, timeframe: str | None, cache: SeriesCache) -> dict[str, Any]:
    """How to count candles: the stored series' times, else a regular grid of its timeframe."""
    if pair and timeframe:
        try:
            return {"times": cache.times(pair.upper(), timeframe)}
        except UnknownSeries:
            pass
    return {"step": timeframe_seconds(timeframe or "")}


def timed(name: str, started: float, body: T) -> Response[T]:
    """``body`` with a ``Server-Timing`` header: the milliseconds since ``started`` (perf_counter)."""
    return Response(
        body, headers={"Server-Timing": f"{name};dur={(time.perf_counter() - started) * 1000:.1f}"}
    )


def wire(found: list[tuple[Kind, TimedSpan | None, TimedSpan | None]]) -> list[Disagreement]:
    """The pure function's result as response structs (its spans are the request's or ours)."""
    return [
        Disagreement(k, cast(AnnotationSpan | None, h), cast(PredictedSpan | None, p)) for k, h, p in found
    ]


class ReviewController(Controller):
    tags = ["review"]

    @post(
        "/disagreements",
        responses=errors(
            e400="malformed body",
            e422="spans on a series that is not stored, with no timeframe to count its candles by",
        ),
        dto=strict_json(DisagreementsRequest),
        return_dto=None,
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        summary="Where traders and the model disagree: missed by either, or a different label",
    )
    def compare(
        self, data: Annotated[DisagreementsRequest, Body()], series_cache: NamedDependency[SeriesCache]
    ) -> DisagreementsResponse:
        pair = data.pair or (data.human[0].pair if data.human else None)
        timeframe = data.timeframe or (data.human[0].timeframe if data.human else None)
        # no span, nothing to count candles of: an empty answer whatever the series
        grid = _grid(pair, timeframe, series_cache) if data.human or data.predicted else {}
        found, summary = disagreements(data.human, data.predicted, **grid)
        return DisagreementsResponse(wire(found), summary)

    @get(
        "/review",
        responses=errors(
            e400="bad query parameter",
            e404="series not stored",
            e422="series shorter than the model's history",
            e503=BUSY,
        ),
        summary="Predictions, human spans and disagreements of a stored series range, in one answer",
        guards=[admit],
    )
    async def review(
        self,
        model: NamedDependency[LoadedModel],
        series_cache: NamedDependency[SeriesCache],
        human_dir: NamedDependency[Path],
        feedback_log: NamedDependency[Path],
        work: NamedDependency[WorkLimiter],
        history: NamedDependency[HistoryWriter | None],
        pair: Annotated[str, PAIR],
        timeframe: Annotated[str, TIMEFRAME],
        start: Annotated[int | None, START] = None,
        end: Annotated[int | None, END] = None,
        min_confidence: Annotated[float, MIN_CONFIDENCE] = 0.0,
    ) -> Response[ReviewResponse]:
        started = time.perf_counter()
        series_cache.series(pair, timeframe)  # 404 before queueing for a slot

        def review_range(checkpoint: Checkpoint) -> ReviewResponse:
            full = series_cache.get(model, pair, timeframe)
            checkpoint()
            window = full.window(start, end)
            answer = respond(
                model,
                full.times[window],
                full.labels[window],
                full.confidence[window],
                min_confidence,
                full.chart_in(window),
                full.confirm,
            )
            human = [to_wire(s) for s in human_spans(human_dir, feedback_log, pair, timeframe, start, end)]
            predicted = [
                PredictedSpan(s.start_time, s.end_time, s.label, s.avg_confidence, s.candles)
                for s in answer.spans
            ]
            found, summary = disagreements(human, predicted, full.times)
            assert isinstance(answer.predictions, list)  # the per-candle form (not columns)
            return ReviewResponse(
                pair,
                timeframe,
                answer.predictions,
                answer.spans,
                human,
                wire(found),
                summary,
                answer.model_info,
            )

        answer = await work.run(review_range)
        response = timed("review", started, answer)
        # what the review page shows a trader: the spans whose answers make the live precision
        response.headers["X-Request-ID"] = remember(
            history, "/review", extent(answer.predictions), answer.spans, answer.model_info, pair, timeframe
        )
        return response

    @get(
        "/review/queue",
        responses=errors(
            e400="bad query parameter",
            e404="series not stored",
            e422="the series asked for is shorter than the model's history",
            e503=BUSY,
        ),
        summary="Predicted spans nobody answered yet, least sure first (the active-learning queue)",
        guards=[admit],
    )
    async def queue(
        self,
        model: NamedDependency[LoadedModel],
        series_cache: NamedDependency[SeriesCache],
        human_dir: NamedDependency[Path],
        feedback_log: NamedDependency[Path],
        work: NamedDependency[WorkLimiter],
        pair: Annotated[str | None, PAIR] = None,
        timeframe: Annotated[str | None, TIMEFRAME] = None,
        limit: Annotated[int, Parameter(ge=1, le=1000)] = 20,
    ) -> Response[QueueResponse]:
        started = time.perf_counter()
        series = [
            (p, t)
            for p, t in sorted(series_cache.stored.candles)
            if (pair is None or p == pair.upper()) and (timeframe is None or t == timeframe)
        ]
        if pair is not None and not series:
            raise UnknownSeries(f"no stored series {pair} {timeframe or ''}".strip(), field="pair")

        need = model.bundle.meta.min_history + 1
        if pair is None:  # a series too short for the model has nothing to ask about
            series = [(p, t) for p, t in series if series_cache.series(p, t).height >= need]

        def rank(checkpoint: Checkpoint) -> QueueResponse:
            answered = human_spans(human_dir, feedback_log)  # read once for every series
            items: list[QueueItem] = []
            for p, t in series:
                checkpoint()
                full = series_cache.get(model, p, t)
                items += review_queue(p, t, full, select_spans(answered, p, t))
            items.sort(key=lambda q: (q.score, q.pair, q.start_time))
            return QueueResponse(items[:limit], len(items), model.summary)

        return timed("queue", started, await work.run(rank))
