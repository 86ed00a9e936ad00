"""``POST /feedback`` (a trader's answers, appended durably) and ``GET /feedback`` (what traders marked)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

import numpy as np
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import Body
from litestar.status_codes import HTTP_201_CREATED
from msgspec.structs import asdict

from candle_ml.annotations import ReviewedRange, Span
from candle_ml.errors import AnnotationError, UnknownSeries
from candle_ml.feedback import append_lines, append_spans, human_spans, reviewed_log_for
from candle_ml.patterns import NO_PATTERN
from serve.queries import END, PAIR, START, TIMEFRAME
from serve.schemas import (
    AnnotationSpan,
    FeedbackRequest,
    FeedbackSpan,
    FeedbackStored,
    ReviewedBody,
    errors,
    strict_json,
    to_wire,
)
from serve.series_cache import SeriesCache


def _reject(i: int, field: str, message: str, rule: str) -> AnnotationError:
    return AnnotationError(
        f"annotations[{i}].{field}: {message}", field=f"annotations[{i}].{field}", rule=rule
    )


def check_answer(i: int, span: FeedbackSpan, cache: SeriesCache) -> None:
    """The rules beyond the body's types; every failure names the entry, the field and the rule."""
    if span.end_time < span.start_time:
        raise _reject(
            i, "end_time", f"{span.end_time} is before start_time {span.start_time}", "end_time >= start_time"
        )
    if span.source == "human_correction" and span.model_prediction is None:
        raise _reject(
            i,
            "model_prediction",
            "a correction or dismissal must name the prediction it answers",
            "human_correction needs model_prediction",
        )
    if span.source == "model_confirmed" and span.label == NO_PATTERN:
        raise _reject(
            i,
            "label",
            "a confirmed prediction cannot be O; dismiss it with source human_correction",
            "model_confirmed needs a pattern label",
        )
    try:
        times = cache.times(span.pair.upper(), span.timeframe)
    except UnknownSeries as exc:
        raise _reject(i, "pair", str(exc), "stored series") from None
    for field in ("start_time", "end_time"):
        t = getattr(span, field)
        k = int(np.searchsorted(times, t))
        if k >= times.size or times[k] != t:
            raise _reject(
                i,
                field,
                f"{t} is not the time of a stored {span.pair} {span.timeframe} candle "
                f"(stored: {int(times[0])} to {int(times[-1])})",
                "matches a stored candle",
            )


def check_reviewed(i: int, r: ReviewedBody, cache: SeriesCache) -> ReviewedRange:
    """A reviewed range must lie on a stored series, end after it starts and hold candles."""

    def reject(field: str, message: str, rule: str) -> AnnotationError:
        return AnnotationError(f"reviewed[{i}].{field}: {message}", field=f"reviewed[{i}].{field}", rule=rule)

    if r.end_time < r.start_time:
        raise reject(
            "end_time", f"{r.end_time} is before start_time {r.start_time}", "end_time >= start_time"
        )
    try:
        times = cache.times(r.pair.upper(), r.timeframe)
    except UnknownSeries as exc:
        raise reject("pair", str(exc), "stored series") from None
    if not np.any((times >= r.start_time) & (times <= r.end_time)):
        raise reject(
            "start_time",
            f"no stored {r.pair} {r.timeframe} candle between {r.start_time} and {r.end_time}",
            "covers a stored candle",
        )
    return ReviewedRange(r.pair.upper(), r.timeframe, r.start_time, r.end_time, r.labels)


class FeedbackController(Controller):
    path = "/feedback"
    tags = ["feedback"]

    @post(
        responses=errors(
            e400="malformed body, wrong type, unknown field, more than 1,000 spans",
            e422="a span breaks a rule: end before start, a correction without model_prediction, "
            "a series not stored, a time that is no stored candle; a reviewed range ends before it "
            "starts, is on a series not stored or holds no candle",
        ),
        dto=strict_json(FeedbackRequest),
        return_dto=None,
        status_code=HTTP_201_CREATED,
        sync_to_thread=True,
        summary="Store a trader's answers (confirm, correct, dismiss, new); durable before the 201",
        description="Appended to the feedback log under an exclusive lock and fsynced before answering. "
        "Resending the same id is idempotent: the dataset keeps the latest answer per id. `reviewed`: "
        "the ranges the trader went through while answering (the review page sends the chart's visible "
        "range), appended to `reviewed.jsonl` beside the log; an unmarked candle inside one is a negative "
        "of a trader's own label, elsewhere it may be a pattern nobody looked at.",
    )
    def store(
        self,
        data: Annotated[FeedbackRequest, Body()],
        series_cache: NamedDependency[SeriesCache],
        feedback_log: NamedDependency[Path],
    ) -> FeedbackStored:
        for i, answer in enumerate(data.annotations):
            check_answer(i, answer, series_cache)
        reviewed = [check_reviewed(i, r, series_cache) for i, r in enumerate(data.reviewed)]
        # Same fields: the answer as sent, with an id where it came without one.
        spans = [Span(**{**asdict(a), "id": a.id or f"fb-{uuid.uuid4().hex[:16]}"}) for a in data.annotations]
        append_spans(feedback_log, spans)
        append_lines(reviewed_log_for(feedback_log), reviewed)
        return FeedbackStored(len(spans), [s.id for s in spans if s.id is not None])

    @get(
        responses=errors(e400="bad pair, timeframe, start or end"),
        sync_to_thread=True,
        summary="Human spans of a series (exports and feedback, the latest per id)",
    )
    def read(
        self,
        human_dir: NamedDependency[Path],
        feedback_log: NamedDependency[Path],
        pair: Annotated[str, PAIR],
        timeframe: Annotated[str, TIMEFRAME],
        start: Annotated[int | None, START] = None,
        end: Annotated[int | None, END] = None,
    ) -> list[AnnotationSpan]:
        return [to_wire(s) for s in human_spans(human_dir, feedback_log, pair, timeframe, start, end)]
