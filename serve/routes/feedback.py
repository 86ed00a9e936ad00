"""``POST /feedback`` (a trader's answers, appended durably) and ``GET /feedback`` (what traders marked)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import Body
from litestar.status_codes import HTTP_201_CREATED

from candle_ml.feedback import accept_answers, append_lines, append_spans, human_spans, reviewed_log_for
from serve.queries import END, PAIR, START, TIMEFRAME
from serve.schemas import AnnotationSpan, FeedbackRequest, FeedbackStored, errors, strict_json, to_wire
from serve.series_cache import SeriesCache


class FeedbackController(Controller):
    path = "/feedback"
    tags = ["feedback"]

    @post(
        responses=errors(
            e400="malformed body, wrong type, unknown field, more than 1,000 spans",
            e404="a span or a reviewed range on a series that is not stored",
            e422="a span breaks a rule: end before start, a correction without model_prediction, "
            "a time that is no stored candle; a reviewed range ends before it starts or holds no candle",
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
        spans, reviewed = accept_answers(data.annotations, data.reviewed, series_cache.times)
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
