"""The feedback log: traders' answers, appended durably, read back as human spans.

``append_spans`` is the one writer (the server calls it before answering 201): one ``write``
per call on an ``O_APPEND`` file under an exclusive ``flock`` (several server processes may
write), a torn last line left by a crash cut off first, ``fsync`` (and the directory's on the
first write) before returning. A span that was acknowledged is therefore on disk, whole.

``human_spans`` reads what traders said about a series: exports plus the log, the latest
answer per ``id``, as the dataset stage reads them.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import Any

import msgspec

from candle_ml.annotations import Span, read_human_annotations
from candle_ml.labels import Skipped, latest_by_id

log = logging.getLogger("candle_ml.feedback")

_encoder = msgspec.json.Encoder()
_TAIL_CHUNK = 64 * 1024
_synced_dirs: set[Path] = set()


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
    data = b"".join(_encoder.encode(item) + b"\n" for item in items)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by close
        cut = _cut_torn_tail(fd)
        if cut:
            log.warning("%s: cut a torn last line of %d bytes (a write interrupted by a crash)", path, cut)
        view = memoryview(data)
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
    series and the spans that overlap ``start``..``end``; ordered by time."""
    annotations, _ = read_human_annotations(human_dir, feedback_log)
    return select_spans([a.span for a in latest_by_id(annotations, Skipped())], pair, timeframe, start, end)


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
