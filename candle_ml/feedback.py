"""The feedback log: traders' answers, appended durably, read back as human spans.

``append_spans`` is the one writer (the server calls it before answering 201): one ``write``
per call on an ``O_APPEND`` file under an exclusive ``flock`` (several server processes may
write), a torn last line left by a crash cut off first, ``fsync`` (and the directory's on the
first write) before returning. A span that was acknowledged is therefore on disk, whole.

``accept_answers`` holds the rules an answer must meet before it is written (the server's
``POST /feedback`` and anything else that takes answers call it); ``human_spans`` reads what
traders said about a series: exports plus the log, the latest answer per ``id``, as the dataset
stage reads them.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from candle_ml.annotations import ReviewedRange, Span, Tombstone, read_feedback_log, read_human_annotations
from candle_ml.errors import AnnotationError, UnknownAnswer, UnknownSeries
from candle_ml.labels import Skipped, latest_by_id
from candle_ml.patterns import NO_PATTERN

log = logging.getLogger("candle_ml.feedback")

_encoder = msgspec.json.Encoder()
_TAIL_CHUNK = 64 * 1024
_synced_dirs: set[Path] = set()


# The stored candle times of (pair, timeframe), increasing; raises UnknownSeries when none is stored.
TimesOf = Callable[[str, str], np.ndarray]


def accept_answers(
    answers: Sequence[Any], reviewed: Sequence[Any], times_of: TimesOf
) -> tuple[list[Span], list[ReviewedRange]]:
    """Answers (structs with ``Span``'s fields, ``id`` possibly None) and the ranges reviewed
    with them, checked against the stored candles, as the log keeps them: an answer without an
    id gets one. The first broken rule raises, naming the entry, the field and the rule; a
    series that is not stored is ``UnknownSeries``."""
    for i, answer in enumerate(answers):
        _check_answer(f"annotations[{i}]", answer, times_of)
    ranges = [_check_reviewed(f"reviewed[{i}]", r, times_of) for i, r in enumerate(reviewed)]
    spans = [
        Span(**{**msgspec.structs.asdict(a), "id": a.id or f"fb-{uuid.uuid4().hex[:16]}"}) for a in answers
    ]
    return spans, ranges


def _reject(where: str, field: str, message: str, rule: str) -> AnnotationError:
    return AnnotationError(f"{where}.{field}: {message}", field=f"{where}.{field}", rule=rule)


def _stored_times(where: str, item: Any, times_of: TimesOf) -> np.ndarray:
    if item.end_time < item.start_time:
        raise _reject(
            where,
            "end_time",
            f"{item.end_time} is before start_time {item.start_time}",
            "end_time >= start_time",
        )
    try:
        return times_of(item.pair.upper(), item.timeframe)
    except UnknownSeries as exc:
        raise UnknownSeries(f"{where}.pair: {exc}", field=f"{where}.pair", rule="stored series") from None


def _check_answer(where: str, span: Any, times_of: TimesOf) -> None:
    if span.source == "human_correction" and span.model_prediction is None:
        raise _reject(
            where,
            "model_prediction",
            "a correction or dismissal must name the prediction it answers",
            "human_correction needs model_prediction",
        )
    if span.source == "model_confirmed" and span.label == NO_PATTERN:
        raise _reject(
            where,
            "label",
            "a confirmed prediction cannot be O; dismiss it with source human_correction",
            "model_confirmed needs a pattern label",
        )
    times = _stored_times(where, span, times_of)
    for field in ("start_time", "end_time"):
        t = getattr(span, field)
        k = int(np.searchsorted(times, t))
        if k >= times.size or times[k] != t:
            raise _reject(
                where,
                field,
                f"{t} is not the time of a stored {span.pair} {span.timeframe} candle "
                f"(stored: {int(times[0])} to {int(times[-1])})",
                "matches a stored candle",
            )


def _check_reviewed(where: str, r: Any, times_of: TimesOf) -> ReviewedRange:
    """A reviewed range must lie on a stored series, end after it starts and hold candles."""
    times = _stored_times(where, r, times_of)
    if not np.any((times >= r.start_time) & (times <= r.end_time)):
        raise _reject(
            where,
            "start_time",
            f"no stored {r.pair} {r.timeframe} candle between {r.start_time} and {r.end_time}",
            "covers a stored candle",
        )
    return ReviewedRange(r.pair.upper(), r.timeframe, r.start_time, r.end_time, r.labels)


def encode_line(span: Span) -> bytes:
    return _encoder.encode(span) + b"\n"


def _cut_torn_tail(fd: int) -> int:
    """Cut a last line that has no newline (a write torn by a crash); returns the bytes cut.

    Nothing cut was ever acknowledged: a span is acknowledged only after its whole line and
    the fsync, so a partial line belongs to a request that never got its 201.
    """
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return 0
    end = size
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        end = start
    else:
        keep = 0
    os.ftruncate(fd, keep)
    return size - keep


def append_spans(path: Path, spans: list[Span]) -> None:
    """Append spans to the log, one JSON line each, durably (see the module docstring)."""
    append_lines(path, spans)


def append_lines(path: Path, items: list[Any]) -> None:
    """Append msgspec structs as JSON lines, durably: the feedback log's spans, and the reviewed
    ranges beside it (``data/annotations/reviewed.jsonl``)."""
    if not items:
        return
    _locked_append(Path(path), lambda: items)


def undo_answer(path: Path, answer_id: str) -> tuple[Span, Span | None]:
    """Take back the latest answer with ``answer_id``: a tombstone appended durably (read and
    written under the log's lock, so two undos never take back one answer twice). Returns the
    answer taken back and the earlier answer with that id that stands again, if any."""
    found: list[Span] = []  # the answers with that id, the one taken back last

    def tombstone() -> list[Any]:
        answers, _ = read_feedback_log(path)
        same = [s for s in answers if s.id == answer_id]
        if not same:
            raise UnknownAnswer(
                f"no answer with id '{answer_id}' in the feedback log (or it was undone already)",
                field="id",
            )
        found.extend(same)
        return [Tombstone(answer_id, same[-1].pair, same[-1].timeframe)]

    _locked_append(Path(path), tombstone)
    return found[-1], (found[-2] if len(found) > 1 else None)


def replace_answers(path: Path, prefix: str, spans: list[Span]) -> int:
    """Every standing answer whose id starts with ``prefix`` taken back (one tombstone per entry,
    so no earlier version of it stands again), then ``spans`` appended: one durable write under
    the log's lock. What a Label Studio annotation that was created, updated or deleted (``spans``
    empty) leaves in the log is exactly its current regions. Returns the answers taken back."""
    taken = [0]

    def lines() -> list[Any]:
        answers, _ = read_feedback_log(path)
        old = [Tombstone(s.id, s.pair, s.timeframe) for s in answers if s.id and s.id.startswith(prefix)]
        taken[0] = len(old)
        return [*old, *spans]

    _locked_append(Path(path), lines)
    return taken[0]


def _locked_append(path: Path, lines: Callable[[], list[Any]]) -> None:
    """Append what ``lines()`` returns (called with the log locked) as JSON lines, durably."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by close
        cut = _cut_torn_tail(fd)
        if cut:
            log.warning("%s: cut a torn last line of %d bytes (a write interrupted by a crash)", path, cut)
        view = memoryview(b"".join(_encoder.encode(item) + b"\n" for item in lines()))
        while view:  # a regular file takes it in one write; loop in case it does not
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    directory = path.parent.resolve()
    if directory not in _synced_dirs:  # the file's own entry must survive a crash too
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        _synced_dirs.add(directory)


def reviewed_log_for(feedback_log: Path) -> Path:
    """The reviewed ranges' log: ``reviewed.jsonl`` beside the feedback log."""
    return Path(feedback_log).with_name("reviewed.jsonl")


def human_spans(
    human_dir: Path,
    feedback_log: Path,
    pair: str | None = None,
    timeframe: str | None = None,
    start: int | None = None,
    end: int | None = None,
) -> list[Span]:
    """What traders marked (exports, then the log; the latest per ``id``), optionally one
    series and the spans that overlap ``start``..``end``; ordered by time.

    Parsed once per state of the files: every review request asks, and a log of thousands of
    answers takes milliseconds to parse. The state (each file's inode, size and mtime) is taken
    before reading, so a write during the read is seen by the next call."""
    state = _files_state(human_dir, feedback_log)
    with _parsed_lock:
        cached = _parsed.get((human_dir, feedback_log))
    if cached is not None and cached[0] == state:
        spans = cached[1]
    else:
        annotations, _ = read_human_annotations(human_dir, feedback_log)
        spans = [a.span for a in latest_by_id(annotations, Skipped())]
        with _parsed_lock:
            _parsed[(human_dir, feedback_log)] = (state, spans)
    return select_spans(spans, pair, timeframe, start, end)


_parsed: dict[tuple[Path, Path], tuple[tuple[Any, ...], list[Span]]] = {}
_parsed_lock = threading.Lock()


def _files_state(human_dir: Path, feedback_log: Path) -> tuple[Any, ...]:
    """(name, inode, size, mtime) of each export and of the log: any write or replace changes it."""

    def state(path: Path) -> tuple[Any, ...]:
        try:
            st = path.stat()
        except FileNotFoundError:
            return (path.name,)
        return (path.name, st.st_ino, st.st_size, st.st_mtime_ns)

    files = sorted(human_dir.glob("*.json")) if human_dir.is_dir() else []
    return (*(state(p) for p in files), state(feedback_log))


def select_spans(
    spans: list[Span],
    pair: str | None = None,
    timeframe: str | None = None,
    start: int | None = None,
    end: int | None = None,
) -> list[Span]:
    """The spans of one series (pair compared case-insensitively) overlapping ``start``..``end``, by time."""
    out = [
        s
        for s in spans
        if (pair is None or s.pair.upper() == pair.upper())
        and (timeframe is None or s.timeframe == timeframe)
        and (start is None or s.end_time >= start)
        and (end is None or s.start_time <= end)
    ]
    return sorted(out, key=lambda s: (s.pair, s.timeframe, s.start_time, s.end_time))
