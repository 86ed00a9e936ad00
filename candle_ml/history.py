"""The prediction history: every prediction the server returned, and what traders said of it.

The server hands each answered prediction (model version, series, candle range, the spans with
their confidences, a request id, when) to ``HistoryWriter.record``, which never blocks and never
fails the request: records wait in a bounded queue that one background thread writes to SQLite
(WAL mode) in batches. A full queue or an unwritable store drops the record and counts it
(``missed``, in ``GET /health``). Retention deletes predictions older than ``retention_days`` and,
past ``max_mb``, the oldest until the file fits.

What traders said of the spans shown, per label and model version, is candle_ml/live_precision.py.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

log = logging.getLogger("candle_ml.history")

SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    served_at INTEGER NOT NULL,          -- Unix milliseconds
    route TEXT NOT NULL,
    model_version TEXT NOT NULL,
    pair TEXT,
    timeframe TEXT,
    start_time INTEGER,                  -- the candles predicted, Unix seconds
    end_time INTEGER,
    candles INTEGER NOT NULL,
    spans BLOB NOT NULL                  -- zlib(msgpack([[label, kind, start, end, confidence], ...]))
);
-- Each distinct span a trader was shown, once however often it was shown: what live precision joins
-- with the answers. last_shown (Unix ms) keeps it under the same retention as the predictions.
CREATE TABLE IF NOT EXISTS shown (
    model_version TEXT NOT NULL,
    pair TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    label TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    end_time INTEGER NOT NULL,
    last_shown INTEGER NOT NULL,
    PRIMARY KEY (model_version, pair, timeframe, label, start_time, end_time)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS predictions_series ON predictions (pair, timeframe, end_time);
CREATE INDEX IF NOT EXISTS predictions_served ON predictions (served_at);
"""


class ShownSpan(msgspec.Struct):
    label: str
    kind: str  # candlestick | chart
    start_time: int
    end_time: int
    confidence: float


class PredictionRecord(msgspec.Struct):
    request_id: str
    served_at: int  # Unix milliseconds
    route: str  # /predict, /predict/batch, /review
    model_version: str
    pair: str | None
    timeframe: str | None
    start_time: int | None
    end_time: int | None
    candles: int
    spans: list[ShownSpan]


def pack(spans: list[ShownSpan]) -> bytes:
    """A prediction's spans, compressed: the same labels repeat in every answer."""
    return zlib.compress(msgspec.msgpack.encode([msgspec.structs.astuple(x) for x in spans]), 6)


def unpack(blob: bytes) -> list[ShownSpan]:
    return [ShownSpan(*x) for x in msgspec.msgpack.decode(zlib.decompress(blob))]


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=5.0, check_same_thread=False)
    con.execute("PRAGMA auto_vacuum=INCREMENTAL")  # before anything is written: deletes can shrink it
    con.execute("PRAGMA journal_mode=WAL")  # readers (GET /history, the CLI) never block the writer
    con.execute("PRAGMA synchronous=NORMAL")  # a crash loses at most the last batch, never corrupts
    _migrate_v1(con)
    con.executescript(SCHEMA)
    return con


def _migrate_v1(con: sqlite3.Connection) -> None:
    """Stores written by the first release kept one row per span in a ``spans`` table: fold each
    prediction's spans into its compressed column and the ``shown`` table, so no record is lost."""
    columns = {r[1] for r in con.execute("PRAGMA table_info(predictions)")}
    if not columns or "spans" in columns:
        return
    con.executescript(SCHEMA)  # the shown table; the old predictions table stays as it is
    with con:
        con.execute("ALTER TABLE predictions ADD COLUMN spans BLOB NOT NULL DEFAULT x''")
        by_id: dict[int, list[ShownSpan]] = {}
        for pid, *span in con.execute(
            "SELECT prediction_id, label, kind, start_time, end_time, confidence FROM spans ORDER BY rowid"
        ):
            by_id.setdefault(pid, []).append(ShownSpan(*span))
        rows = con.execute("SELECT id, served_at, model_version, pair, timeframe FROM predictions").fetchall()
        for pid, served_at, version, pair, timeframe in rows:
            spans = by_id.get(pid, [])
            con.execute("UPDATE predictions SET spans = ? WHERE id = ?", (pack(spans), pid))
            if pair is not None and timeframe is not None:
                _remember_shown(con, version, pair, timeframe, served_at, spans)
        con.execute("DROP TABLE spans")
    log.info("prediction history: moved %d predictions to the compressed layout", len(rows))


def write(con: sqlite3.Connection, records: Iterable[PredictionRecord]) -> int:
    """Insert records in one transaction; returns how many."""
    n = 0
    with con:
        for r in records:
            con.execute(
                "INSERT INTO predictions (request_id, served_at, route, model_version, pair, timeframe,"
                " start_time, end_time, candles, spans) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    r.request_id,
                    r.served_at,
                    r.route,
                    r.model_version,
                    r.pair,
                    r.timeframe,
                    r.start_time,
                    r.end_time,
                    r.candles,
                    pack(r.spans),
                ),
            )
            if r.pair is not None and r.timeframe is not None:
                _remember_shown(con, r.model_version, r.pair, r.timeframe, r.served_at, r.spans)
            n += 1
    return n


def _remember_shown(
    con: sqlite3.Connection, version: str, pair: str, timeframe: str, served_at: int, spans: list[ShownSpan]
) -> None:
    con.executemany(
        "INSERT INTO shown VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE"
        " SET last_shown = max(last_shown, excluded.last_shown)",
        [(version, pair, timeframe, s.label, s.start_time, s.end_time, served_at) for s in spans],
    )


def store_bytes(path: Path) -> int:
    """The store's size on disk: the database and its write-ahead log."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def prune(con: sqlite3.Connection, path: Path, retention_days: float, max_mb: float) -> int:
    """Delete what retention says to; returns the predictions deleted."""
    cutoff = int((time.time() - retention_days * 86_400) * 1000)
    with con:
        deleted = con.execute("DELETE FROM predictions WHERE served_at < ?", (cutoff,)).rowcount
        con.execute("DELETE FROM shown WHERE last_shown < ?", (cutoff,))
    while store_bytes(path) > max_mb * 1e6:
        with con:
            oldest = con.execute(
                "DELETE FROM predictions WHERE id IN (SELECT id FROM predictions ORDER BY id LIMIT"
                " max(1, (SELECT count(*) FROM predictions) / 10))"
            ).rowcount
            # spans last shown before the oldest prediction kept go with the predictions
            con.execute(
                "DELETE FROM shown WHERE last_shown < coalesce((SELECT min(served_at) FROM predictions),"
                " 9223372036854775807)"
            )
        shrink(con)
        deleted += oldest
        if not oldest:
            break
    if deleted:
        shrink(con)
    return deleted


def shrink(con: sqlite3.Connection) -> None:
    """Give freed pages back to the file system. executescript steps the pragma to its end (each
    step frees one page; execute() would step once) and the checkpoint empties the WAL."""
    con.executescript("PRAGMA incremental_vacuum;")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


class HistoryWriter:
    """Appends predictions to the store from a background thread; ``record`` never blocks.

    (A plain class, not a dataclass: Litestar would try to convert a dataclass dependency.)"""

    def __init__(
        self, path: Path, retention_days: float = 90.0, max_mb: float = 1000.0, queue_size: int = 10_000
    ) -> None:
        self.path = Path(path)
        self.retention_days = retention_days
        self.max_mb = max_mb
        self.written = 0
        self.missed = 0  # records dropped: the queue was full or the store failed
        self.last_error: str | None = None
        self._queue: queue.Queue[PredictionRecord | None] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> HistoryWriter:
        self._thread = threading.Thread(target=self._run, name="prediction-history", daemon=True)
        self._thread.start()
        return self

    def record(self, rec: PredictionRecord) -> None:
        try:
            self._queue.put_nowait(rec)
        except queue.Full:
            self._miss(1, "the history queue is full (the store is slower than the predictions)")

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop."""
        if self._thread is not None:
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=timeout)
            self._thread.join(timeout)

    def stats(self) -> dict[str, Any]:
        return {"written": self.written, "missed": self.missed, "error": self.last_error}

    def _miss(self, n: int, why: str) -> None:
        with self._lock:
            self.missed += n
            if why != self.last_error:
                log.warning("prediction history: %d record(s) not written: %s", n, why)
            self.last_error = why

    def _run(self) -> None:
        con: sqlite3.Connection | None = None
        last_prune = 0.0
        stop = False
        while not stop:
            batch: list[PredictionRecord] = []
            item = self._queue.get()
            while item is not None:
                batch.append(item)
                if len(batch) >= 500:
                    break
                try:
                    item = self._queue.get(timeout=0.05)
                except queue.Empty:
                    break
            stop = item is None
            if not batch:
                continue
            try:
                con = con or connect(self.path)
                n = write(con, batch)
                with self._lock:
                    self.written += n
                    self.last_error = None
                if time.monotonic() - last_prune > 600:
                    last_prune = time.monotonic()
                    prune(con, self.path, self.retention_days, self.max_mb)
            except (sqlite3.Error, OSError) as exc:
                self._miss(len(batch), f"{self.path}: {type(exc).__name__}: {exc}")
                with contextlib.suppress(Exception):
                    if con is not None:
                        con.close()
                con = None  # reconnect with the next batch
        if con is not None:
            con.close()


def read(
    path: Path,
    pair: str | None = None,
    timeframe: str | None = None,
    start: int | None = None,
    end: int | None = None,
    model_version: str | None = None,
    limit: int = 100,
) -> list[PredictionRecord]:
    """Predictions, newest first, whose candles overlap start..end (Unix seconds)."""
    if not path.is_file():
        return []
    where: list[str] = ["1"]
    args: list[str | int] = []
    for column, value in (("pair", pair), ("timeframe", timeframe), ("model_version", model_version)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if start is not None:
        where.append("end_time >= ?")
        args.append(start)
    if end is not None:
        where.append("start_time <= ?")
        args.append(end)
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    try:
        rows = con.execute(
            "SELECT request_id, served_at, route, model_version, pair, timeframe, start_time, end_time,"
            f" candles, spans FROM predictions WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
    finally:
        con.close()
    names = (
        "request_id",
        "served_at",
        "route",
        "model_version",
        "pair",
        "timeframe",
        "start_time",
        "end_time",
    )
    return [
        PredictionRecord(**dict(zip(names, r[:8], strict=True)), candles=r[8], spans=unpack(r[9]))
        for r in rows
    ]


def shown_spans(path: Path, model_version: str | None = None) -> list[tuple[str, str, str, str, int, int]]:
    """Every distinct span traders were shown: (model version, pair, timeframe, label, start, end)."""
    if not path.is_file():
        return []
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    try:
        sql = "SELECT model_version, pair, timeframe, label, start_time, end_time FROM shown"
        args: tuple[str, ...] = ()
        if model_version is not None:
            sql += " WHERE model_version = ?"
            args = (model_version,)
        return [tuple(r) for r in con.execute(sql, args)]
    finally:
        con.close()
