"""Live precision: the spans traders were shown (the prediction history's ``shown`` table) joined
with the feedback log. Per label and model version, how many shown spans were confirmed, corrected
or dismissed: the model's real precision on the chart, the number that decides whether a retrained
model should replace it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import msgspec

from candle_ml.annotations import Span
from candle_ml.history import shown_spans
from candle_ml.patterns import NO_PATTERN


class LabelPrecision(msgspec.Struct):
    """Traders' answers to one label's predicted spans, for one model version."""

    model_version: str
    label: str
    shown: int  # distinct spans shown
    answered: int
    confirmed: int
    corrected: int  # another label
    dismissed: int  # not a pattern
    precision: float | None  # confirmed / answered (null before any answer)


def answer_kind(predicted: str, answer: Span) -> str | None:
    """What a trader's span says of a predicted span of ``predicted`` on the same candles."""
    if answer.model_prediction is not None:
        said = answer.model_prediction
        if (said.get("label") if isinstance(said, dict) else said) != predicted:
            return None  # an answer to another prediction
    if answer.label == predicted:
        return "confirmed"
    return "dismissed" if answer.label == NO_PATTERN else "corrected"


def live_precision(
    shown: Iterable[tuple[str, str, str, str, int, int]], answers: list[Span]
) -> list[LabelPrecision]:
    """Per model version and label: the shown spans traders answered, and how.

    An answer counts for a shown span when it covers the same candles of the same series (a
    trader's span from the review page copies the predicted span's bounds)."""
    by_candles: dict[tuple[str, str, int, int], list[Span]] = {}
    for a in answers:
        by_candles.setdefault((a.pair, a.timeframe, a.start_time, a.end_time), []).append(a)
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for version, pair, timeframe, label, start, end in shown:
        c = counts.setdefault((version, label), {"shown": 0, "confirmed": 0, "corrected": 0, "dismissed": 0})
        c["shown"] += 1
        kinds = [k for a in by_candles.get((pair, timeframe, start, end), []) if (k := answer_kind(label, a))]
        if kinds:
            c[kinds[-1]] += 1  # the latest answer stands
    out = []
    for (version, label), c in sorted(counts.items()):
        answered = c["confirmed"] + c["corrected"] + c["dismissed"]
        out.append(
            LabelPrecision(
                version,
                label,
                c["shown"],
                answered,
                c["confirmed"],
                c["corrected"],
                c["dismissed"],
                round(c["confirmed"] / answered, 4) if answered else None,
            )
        )
    return out


def precision_report(
    history_db: Path, feedback_log: Path, model_version: str | None = None
) -> list[LabelPrecision]:
    """``live_precision`` of the spans in the history (one model version, or all) against the
    feedback log, the latest answer per id."""
    from candle_ml.annotations import read_feedback_log

    answers, _ = read_feedback_log(feedback_log)
    latest = list({(a.id or str(i)): a for i, a in enumerate(answers)}.values())
    return live_precision(shown_spans(history_db, model_version), latest)
