"""Chart patterns (head-and-shoulders, double tops, triangles, ...) from a published definition.

Lo, Mamaysky & Wang, "Foundations of Technical Analysis" (J. Finance 55(4), 2000), section II:
slide a window of ``window`` candles over the closes, smooth each window with a Gaussian kernel
regression, take the local extrema of the smoothed price (the close nearest each turn, within one
candle, is the extremum's price) and apply rules to five consecutive extrema E1..E5:

- head_and_shoulders: E1 a maximum, E3 > E1 and E3 > E5, E1 and E5 within 1.5 % of their mean,
  E2 and E4 within 1.5 % of theirs; inverse_head_and_shoulders: the mirror (E1 a minimum).
- broadening_top: E1 a maximum, E1 < E3 < E5, E2 > E4; broadening_bottom: the mirror.
- triangle_top: E1 a maximum, E1 > E3 > E5, E2 < E4; triangle_bottom: the mirror.
- rectangle_top: E1 a maximum, the three tops within 0.75 % of their mean, the two bottoms
  within 0.75 % of theirs, the lowest top above the highest bottom; rectangle_bottom: the mirror.
- double_top: E1 (the window's first extremum) a maximum and the highest later maximum Ea at
  least 22 candles after it, within 1.5 % of E1's price; double_bottom: the mirror.

A pattern's span runs from its first extremum's candle to its last. Where the paper picks the
kernel bandwidth by cross-validation per window (and scales it by 0.3), this uses one fixed
``bandwidth`` in candles: the same smoothing for every window, so a span does not depend on
which other candles happened to share its window.

What the labeller needs to see: a span is reported by the first window that holds the whole
pattern with ``confirm`` candles after its last extremum (so the turn is settled) and in which
that extremum is still the window's last; so labelling a span uses candles up to ``window``
before its end and ``confirm`` after it, never more. Adding candles later never changes a span
already found (a test checks this).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from candle_ml.errors import PatternError

FIVE_POINT = (
    "head_and_shoulders",
    "inverse_head_and_shoulders",
    "broadening_top",
    "broadening_bottom",
    "triangle_top",
    "triangle_bottom",
    "rectangle_top",
    "rectangle_bottom",
)
CHART_PATTERNS = (*FIVE_POINT, "double_top", "double_bottom")

DOUBLE_GAP = 22  # candles between the two tops (bottoms) of a double top (bottom)
WINDOW_BLOCK = 20_000  # windows smoothed at once (~6 MB of float64 for 38-candle windows)


@dataclass(frozen=True)
class ChartRules:
    window: int = 38  # candles each kernel regression sees (the paper: l + d = 35 + 3 days)
    confirm: int = 3  # candles after the last extremum before a pattern counts as complete
    bandwidth: float = 1.5  # Gaussian kernel bandwidth, in candles
    near: float = 0.015  # "within 1.5 % of their average"
    near_rectangle: float = 0.0075


def check_chart_patterns(labels: list[str]) -> list[str]:
    unknown = [x for x in labels if x not in CHART_PATTERNS]
    if unknown:
        raise PatternError(
            f"autolabel.chart_patterns: unknown {', '.join(unknown)} (known: {', '.join(CHART_PATTERNS)})"
        )
    return list(labels)


@dataclass(frozen=True)
class ChartSpan:
    label: str
    start: int  # row of the first extremum
    end: int  # row of the last extremum
    found_at: int  # the row the pattern was confirmed on (end + the candles it waited for)


@dataclass(frozen=True)
class Extremum:
    row: int
    price: float
    is_max: bool


def kernel(window: int, bandwidth: float) -> np.ndarray:
    """Nadaraya-Watson weights: smoothed = prices @ kernel.T, one row per position in the window."""
    pos = np.arange(window)
    w = np.exp(-0.5 * ((pos[:, None] - pos[None, :]) / bandwidth) ** 2)
    return w / w.sum(axis=1, keepdims=True)


def turns(close: np.ndarray, rules: ChartRules) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The turns of every window's smoothed close, each at the close nearest it (one candle
    either way), computed for all windows at once: ``(bounds, rows, is_max)``, window ``w``'s
    turns being ``rows[bounds[w]:bounds[w + 1]]``."""
    n, width = close.size, rules.window
    # einsum, not @: BLAS threads left spinning after a small matmul slow the classifier that follows.
    smoothed = np.einsum("wj,ij->wi", sliding_window_view(close, width), kernel(width, rules.bandwidth))
    step = np.sign(np.diff(smoothed, axis=1))
    w, j = np.nonzero(step[:, :-1] * step[:, 1:] < 0)  # row-major: by window, then position
    is_max = step[w, j] > 0
    centre = w + j + 1
    lo = np.maximum(centre - 1, w)
    hi = np.minimum(centre + 1, w + width - 1)
    candidates = lo[:, None] + np.arange(3)
    sign = np.where(is_max, 1.0, -1.0)[:, None]
    values = np.where(candidates <= hi[:, None], close[np.minimum(candidates, n - 1)] * sign, -np.inf)
    rows = lo + values.argmax(axis=1)  # the first highest close (lowest, for a bottom)
    bounds = np.searchsorted(w, np.arange(smoothed.shape[0] + 1))
    return bounds, rows, is_max


def _near(values: list[float], tolerance: float) -> bool:
    mean = float(np.mean(values))
    return all(abs(v - mean) <= tolerance * mean for v in values)


def five_point_label(e: list[Extremum], rules: ChartRules) -> str | None:
    """The paper's rule that five consecutive extrema satisfy, if any."""
    p = [x.price for x in e]
    top = e[0].is_max
    # Mirror a minimum-first sequence so every rule reads as its "top" form.
    q = p if top else [-x for x in p]
    suffix = "top" if top else "bottom"
    if q[2] > q[0] and q[2] > q[4] and _near([p[0], p[4]], rules.near) and _near([p[1], p[3]], rules.near):
        return "head_and_shoulders" if top else "inverse_head_and_shoulders"
    if q[0] < q[2] < q[4] and q[1] > q[3]:
        return f"broadening_{suffix}"
    if q[0] > q[2] > q[4] and q[1] < q[3]:
        return f"triangle_{suffix}"
    tops, bottoms = [q[0], q[2], q[4]], [q[1], q[3]]
    if (
        _near([p[0], p[2], p[4]], rules.near_rectangle)
        and _near([p[1], p[3]], rules.near_rectangle)
        and min(tops) > max(bottoms)
    ):
        return f"rectangle_{suffix}"
    return None


def double_label(e: list[Extremum], rules: ChartRules) -> tuple[str, int] | None:
    """Double top (bottom): the first extremum and the highest (lowest) later one of its kind."""
    first = e[0]
    same = [x for x in e[1:] if x.is_max == first.is_max]
    if not same:
        return None
    pick: Callable[..., Extremum] = max if first.is_max else min
    second = pick(same, key=lambda x: x.price)
    if second is not same[-1] or second.row - first.row <= DOUBLE_GAP:
        return None  # the pattern completes at the window's last top (bottom), not before
    if not _near([first.price, second.price], rules.near):
        return None
    return ("double_top" if first.is_max else "double_bottom"), e.index(second)


def confirmed_windows(
    close: np.ndarray, rules: ChartRules
) -> Iterator[tuple[int, np.ndarray, np.ndarray, int, int]]:
    """(last row, turn rows, turn kinds, a, b) of every window whose last turn has ``confirm``
    candles after it, its turns being ``rows[a:b]``. Windows are smoothed ``WINDOW_BLOCK`` at a
    time, so memory stays a few MB however long the series."""
    n_windows = close.size - rules.window + 1
    for w0 in range(0, max(n_windows, 0), WINDOW_BLOCK):
        w1 = min(w0 + WINDOW_BLOCK, n_windows)
        bounds, rows, is_max = turns(close[w0 : w1 + rules.window - 1], rules)
        rows = rows + w0
        for first in range(bounds.size - 1):
            a, b = int(bounds[first]), int(bounds[first + 1])
            last_row = w0 + first + rules.window - 1
            if b > a and last_row - rows[b - 1] >= rules.confirm:
                yield last_row, rows, is_max, a, b


def extrema(close: np.ndarray, rows: np.ndarray, is_max: np.ndarray, a: int, b: int) -> list[Extremum]:
    return [Extremum(int(rows[i]), float(close[rows[i]]), bool(is_max[i])) for i in range(a, b)]


def find_chart_patterns(
    close: np.ndarray, labels: list[str], rules: ChartRules | None = None
) -> list[ChartSpan]:
    """Every completed pattern of ``labels`` in a series of closes, in the order found."""
    rules = rules or ChartRules()
    close = np.asarray(close, dtype=np.float64)
    if close.size < rules.window or not labels:
        return []
    wanted = set(labels)
    found: list[ChartSpan] = []
    seen: set[tuple[str, int, int]] = set()
    for last_row, rows, is_max, a, b in confirmed_windows(close, rules):
        ext = extrema(close, rows, is_max, a, b)
        candidates: list[tuple[str, int, int]] = []
        if len(ext) >= 5:
            label = five_point_label(ext[-5:], rules)
            if label:
                candidates.append((label, ext[-5].row, ext[-1].row))
        double = double_label(ext, rules)
        if double and last_row - ext[double[1]].row >= rules.confirm:
            candidates.append((double[0], ext[0].row, ext[double[1]].row))
        for label, start, end in candidates:
            if label not in wanted or (label, start, end) in seen:
                continue
            seen.add((label, start, end))
            found.append(ChartSpan(label, int(start), int(end), int(last_row)))
    return dedupe(found, rules.window)


def dedupe(spans: list[ChartSpan], window: int) -> list[ChartSpan]:
    """One span per pattern: a later window that sees the same pattern with its extrema a candle
    apart (half or more of the two spans shared) does not report it again.

    Spans come in the order found and each lies inside the ``window`` candles before the row it
    was found on, so a kept span found ``window`` or more rows before another ends before that
    one starts: only the recent ones of the same label are compared (linear, not quadratic, in
    the series' length)."""
    kept: list[ChartSpan] = []
    recent: dict[str, deque[ChartSpan]] = {}
    for s in spans:
        near = recent.setdefault(s.label, deque())
        while near and near[0].found_at < s.found_at - window:
            near.popleft()
        if any(
            min(k.end, s.end) - max(k.start, s.start) + 1
            >= 0.5 * (max(k.end, s.end) - min(k.start, s.start) + 1)
            for k in near
        ):
            continue
        kept.append(s)
        near.append(s)
    return kept
