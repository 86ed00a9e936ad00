"""Each label's direction and chart colour: what the review page draws, and which way a trade on
the pattern goes (candle_ml/outcomes.py). Bullish labels in greens, bearish in reds, the rest in
blues; ``O`` is grey. Kept in the bundle's ``labels`` so the page and the model agree."""

from __future__ import annotations

from typing import Literal

import msgspec

from candle_ml.patterns import NO_PATTERN, PATTERNS

Direction = Literal["bullish", "bearish", "other"]
TALIB_NAMES = frozenset(info.name for info in PATTERNS.values())  # bare names: spinning_top is no top


def direction(label: str) -> Direction:
    """A candlestick label by its prefix (``bullish_``/``bearish_``); a chart pattern by where it
    turns: a top or a head-and-shoulders ends an uptrend (bearish), a bottom or an inverse one a
    downtrend (bullish), a trader's own chart labels named alike included."""
    if label.startswith("bullish_"):
        return "bullish"
    if label.startswith("bearish_"):
        return "bearish"
    if label in TALIB_NAMES:
        return "other"
    if label.startswith("inverse_") or label.endswith("_bottom"):
        return "bullish"
    if label.endswith("_top") or label == "head_and_shoulders":
        return "bearish"
    return "other"


# Chart colours by direction, each label the next shade of its direction's palette.
_BULLISH = ["#26a69a", "#2e7d32", "#66bb6a", "#00897b", "#9ccc65", "#43a047", "#1b5e20", "#80cbc4"]
_BEARISH = ["#ef5350", "#c62828", "#ff7043", "#ad1457", "#e57373", "#d84315", "#b71c1c", "#f48fb1"]
_NEUTRAL = ["#42a5f5", "#7e57c2", "#ffca28", "#26c6da", "#5c6bc0", "#ab47bc", "#ffa726", "#8d6e63"]


class Label(msgspec.Struct):
    """A label the model predicts and its chart colour (also the body of ``GET /model/labels``)."""

    name: str
    color: str


def label_colors(names: list[str]) -> list[Label]:
    """The candle model's labels: ``O`` grey, the rest the next shade of their direction."""
    shades = iter(_shaded([n for n in names if n != NO_PATTERN], 0))
    return [Label(n, "#9e9e9e") if n == NO_PATTERN else next(shades) for n in names]


def chart_label_colors(names: list[str]) -> list[Label]:
    """Chart patterns that end an uptrend (tops, head-and-shoulders) in bearish reds, those that
    end a downtrend (bottoms, inverse head-and-shoulders) in bullish greens, the rest in blues;
    from each palette's fourth shade, after the candlestick labels' first ones."""
    return _shaded(names, 3)


def _shaded(names: list[str], first: int) -> list[Label]:
    """Each name the next shade of its direction's palette, from shade ``first``."""
    palettes = {"bullish": _BULLISH, "bearish": _BEARISH, "other": _NEUTRAL}
    counters = dict.fromkeys(palettes, first)
    out = []
    for name in names:
        kind = direction(name)
        palette = palettes[kind]
        out.append(Label(name, palette[counters[kind] % len(palette)]))
        counters[kind] += 1
    return out
