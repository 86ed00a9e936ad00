"""Span annotations: one format for human exports, the feedback log and programmatic labels.

``{"id", "pair", "timeframe", "start_time", "end_time", "label", "confidence",
"source", "model_prediction"}``; a file holds ``{"annotations": [...]}`` or a bare
list; the feedback log holds one span per line. Errors name file, entry and field.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import msgspec

from candle_ml.errors import AnnotationError

log = logging.getLogger(__name__)

Source = Literal["human", "human_correction", "model_confirmed", "programmatic"]
HUMAN_SOURCES = frozenset({"human", "human_correction", "model_confirmed"})


class Span(msgspec.Struct, omit_defaults=False):
    pair: str
    timeframe: str
    start_time: int
    end_time: int
    label: str
    id: str | None = None
    confidence: float = 1.0
    source: Source = "human"
    # The prediction a correction or dismissal answers (label string or the prediction object).
    model_prediction: str | dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.end_time < self.start_time:
            raise ValueError(f"end_time {self.end_time} is before start_time {self.start_time}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence {self.confidence} must be within [0, 1]")
        if not self.label.strip():
            raise ValueError("label must not be empty")
        if not self.pair.strip() or not self.timeframe.strip():
            raise ValueError("pair and timeframe must not be empty")

    @property
    def is_human(self) -> bool:
        return self.source in HUMAN_SOURCES


class Tombstone(msgspec.Struct, forbid_unknown_fields=True):
    """A feedback-log line that takes back the latest answer with id ``undo`` (the review page's
    Undo, Label Studio's deleted annotation): readers drop that answer, and an earlier answer
    with the same id, if any, stands again."""

    undo: str
    pair: str
    timeframe: str


class ReviewedRange(msgspec.Struct, omit_defaults=True):
    """A stretch of a series a trader went through looking for ``labels`` (None: every label they
    mark): an unmarked candle inside it is a negative of those labels. Outside every reviewed
    range an unmarked candle may be a pattern nobody looked at (candle_ml/own_labels.py)."""

    pair: str
    timeframe: str
    start_time: int
    end_time: int
    labels: list[str] | None = None

    def __post_init__(self) -> None:
        if self.end_time < self.start_time:
            raise ValueError(f"end_time {self.end_time} is before start_time {self.start_time}")
        if not self.pair.strip() or not self.timeframe.strip():
            raise ValueError("pair and timeframe must not be empty")

    def covers(self, label: str) -> bool:
        return self.labels is None or label in self.labels


class AnnotationFile(msgspec.Struct):
    annotations: list[Span]
    # Optional: the ranges the trader reviewed (exports from the review page carry them).
    reviewed: list[ReviewedRange] = msgspec.field(default_factory=list)


_span_decoder = msgspec.json.Decoder(Span)
_file_decoder = msgspec.json.Decoder(AnnotationFile | list[Span])


def _where(exc: msgspec.ValidationError) -> str:
    # msgspec says "... - at `$.annotations[3].start_time`"; turn that into "entry 3, field start_time".
    text = str(exc)
    msg, _, path = text.partition(" - at `")
    path = path.rstrip("`")
    if msg.startswith("Invalid enum value") and path.endswith(".source"):
        msg += f" (allowed: {', '.join(get_args(Source))})"
    if not path:
        return msg
    if path.startswith("$.reviewed"):
        return f"reviewed range {path[len('$.reviewed') :].strip('[]').partition(']')[0]}: {msg}"
    parts = path.replace("$.annotations", "$").lstrip("$")
    if parts.startswith("["):
        idx, _, rest = parts[1:].partition("]")
        fld = rest.lstrip(".")
        return f"entry {idx}{f', field {fld}' if fld else ''}: {msg}"
    return f"{parts.lstrip('.')}: {msg}"


def read_annotation_export(path: Path) -> AnnotationFile:
    """An export: its spans and the ranges it says the trader reviewed (none for a bare list)."""
    try:
        decoded = _file_decoder.decode(Path(path).read_bytes())
    except msgspec.ValidationError as exc:
        raise AnnotationError(f"{path}: {_where(exc)}") from None
    except msgspec.DecodeError as exc:
        raise AnnotationError(f"{path}: not valid JSON ({exc})") from None
    return decoded if isinstance(decoded, AnnotationFile) else AnnotationFile(decoded)


def read_annotation_file(path: Path) -> list[Span]:
    return read_annotation_export(path).annotations


_reviewed_decoder = msgspec.json.Decoder(ReviewedRange)


def read_reviewed(human_dir: Path, reviewed_log: Path) -> list[ReviewedRange]:
    """Every reviewed range: the exports' (sorted by file name), then the review page's log
    (one range per line; a torn last line, from a crash, is skipped as in the feedback log)."""
    out: list[ReviewedRange] = []
    for path in sorted(human_dir.glob("*.json")) if human_dir.is_dir() else []:
        out += read_annotation_export(path).reviewed
    return out + read_reviewed_log(reviewed_log)


def read_reviewed_log(reviewed_log: Path) -> list[ReviewedRange]:
    """The review page's reviewed ranges, one per line (absent: none; a torn last line skipped)."""
    return _read_jsonl(Path(reviewed_log), _reviewed_decoder, str)[0]


def read_feedback_log(path: Path) -> tuple[list[Span], int]:
    """Read the append-only feedback log; returns (spans, torn_lines_skipped), with every answer a
    tombstone took back left out (``Tombstone``: the latest earlier answer with its id).

    A last line that is not valid JSON is a write torn by a crash: skipped with a
    warning. Anything malformed before it is an error naming the line.
    """
    entries, torn = _read_jsonl(Path(path), _FeedbackLine(), _where)
    return undone_applied(entries), torn


def undone_applied(entries: list[Span | Tombstone]) -> list[Span]:
    """The answers in log order, each tombstone having removed the latest earlier answer with its id."""
    spans: list[Span | None] = []
    latest: dict[str, list[int]] = {}  # id -> positions in spans, oldest first
    for entry in entries:
        if isinstance(entry, Tombstone):
            stack = latest.get(entry.undo)
            if stack:
                spans[stack.pop()] = None
            continue
        if entry.id is not None:
            latest.setdefault(entry.id, []).append(len(spans))
        spans.append(entry)
    return [s for s in spans if s is not None]


class _FeedbackLine:
    """Decodes a feedback-log line: an answer (a Span) or a tombstone (``{"undo": id, ...}``)."""

    _tombstone = msgspec.json.Decoder(Tombstone)

    def decode(self, line: bytes) -> Span | Tombstone:
        if b'"undo"' in line and b'"start_time"' not in line:
            return self._tombstone.decode(line)
        return _span_decoder.decode(line)


def _read_jsonl(path: Path, decoder: Any, describe: Any) -> tuple[list[Any], int]:
    """One struct per line of an append-only log (the feedback log, the reviewed ranges);
    returns (items, torn last lines skipped). ``describe`` words a validation error."""
    if not path.exists():
        return [], 0
    lines = path.read_bytes().split(b"\n")
    items: list[Any] = []
    torn = 0
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            items.append(decoder.decode(line))
        except msgspec.ValidationError as exc:
            raise AnnotationError(f"{path} line {i + 1}: {describe(exc)}") from None
        except msgspec.DecodeError as exc:
            if i == last:
                log.warning("%s line %d: incomplete last line skipped (torn write): %s", path, i + 1, exc)
                torn += 1
                continue
            raise AnnotationError(f"{path} line {i + 1}: not valid JSON ({exc})") from None
    return items, torn


def write_annotation_file(path: Path, spans: list[Span], **extra: Any) -> None:
    """Write ``{"annotations": [...], **extra}`` (extra keys carry stage metadata)."""
    payload = {"annotations": spans, **extra}
    Path(path).write_bytes(msgspec.json.format(msgspec.json.encode(payload), indent=1))


@dataclass
class Annotation:
    span: Span
    origin: str  # "x.json entry 3", "feedback.jsonl #7", "autolabel"
    from_feedback: bool = False  # an answer from the feedback log (not an export)


def read_human_annotations(human_dir: Path, feedback_file: Path) -> tuple[list[Annotation], int]:
    """Human exports (sorted by file name) then the feedback log, in order: later answers win."""
    out: list[Annotation] = []
    files = sorted(human_dir.glob("*.json")) if human_dir.is_dir() else []
    for path in files:
        out += [Annotation(sp, f"{path.name} entry {i}") for i, sp in enumerate(read_annotation_file(path))]
    feedback, torn = read_feedback_log(feedback_file)
    out += [Annotation(sp, f"{feedback_file.name} #{i}", from_feedback=True) for i, sp in enumerate(feedback)]
    bad = [a for a in out if a.span.source == "programmatic"]
    if bad:
        raise AnnotationError(
            f"{bad[0].origin}: field source: 'programmatic' is reserved for the autolabel stage"
        )
    return out, torn


class AutolabelOutput(msgspec.Struct):
    annotations: list[Span]
    label_priority: list[str]  # candlestick labels, the winner first where spans overlap
    coverage: dict[str, dict[str, int | None]]
    chart_labels: list[str] = msgspec.field(default_factory=list)  # chart-pattern labels


def read_autolabel(path: Path) -> AutolabelOutput:
    return msgspec.json.decode(path.read_bytes(), type=AutolabelOutput)
