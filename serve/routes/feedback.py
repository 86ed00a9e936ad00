"""``POST /feedback`` (a trader's answers, appended durably), ``DELETE /feedback/{id}`` (undo one:
a tombstone) and ``GET /feedback`` (what traders marked)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import Body, FromPath
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from candle_ml.feedback import (
    accept_answers,
    append_lines,
    append_spans,
    human_spans,
    reviewed_log_for,
    undo_answer,
)
from serve.queries import END, PAIR, START, TIMEFRAME
from serve.schemas import (
    AnnotationSpan,
    AnswerUndone,
    FeedbackRequest,
    FeedbackStored,
    errors,
    strict_json,
    to_wire,
)
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
        # an opened chart's candles go to data/raw/ before its answers are acknowledged
        series_cache.keep_answered(
            {(s.pair, s.timeframe) for s in spans} | {(r.pair, r.timeframe) for r in reviewed}
        )
        append_spans(feedback_log, spans)
        append_lines(reviewed_log_for(feedback_log), reviewed)
        return FeedbackStored(len(spans), [s.id for s in spans if s.id is not None])

    @delete(
        "/{answer_id:str}",
        responses=errors(e404="no answer with that id in the feedback log (or it was undone already)"),
        status_code=HTTP_200_OK,
        sync_to_thread=True,
        summary="Undo a trader's answer: a tombstone in the feedback log, durable before the 200",
        description="Takes back the latest answer with this id (the review page's Undo). The dataset, "
        "the review page and live precision then read the log without it; an earlier answer with the "
        "same id stands again. Undoing twice takes back two answers, never one twice (the log is locked).",
    )
    def undo(self, answer_id: FromPath[str], feedback_log: NamedDependency[Path]) -> AnswerUndone:
        undone, restored = undo_answer(feedback_log, answer_id)
        return AnswerUndone(to_wire(undone), to_wire(restored) if restored else None)

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
