"""The one table of TA-Lib candlestick patterns: label name, span length, direction.

TA-Lib writes a CDL* signal on the *last* candle of a pattern and has no API for
how many candles the pattern covers (``_Lookback()`` counts the history its
averages need, not the span), so the span length lives here, once.
"""

from __future__ import annotations

import difflib
from typing import NamedTuple

from candle_ml.errors import PatternError


class PatternInfo(NamedTuple):
    name: str  # label stem: bullish_<name> / bearish_<name>, or bare <name>
    length: int  # candles the pattern covers, ending at the signal candle
    # Signs TA-Lib can output: "+-" both, "+" bullish only, "-" bearish only,
    # "" no direction (the output only says "present", always +100).
    signs: str

    @property
    def directional(self) -> bool:
        return bool(self.signs)


PATTERNS: dict[str, PatternInfo] = {
    "CDL2CROWS": PatternInfo("two_crows", 3, "-"),
    "CDL3BLACKCROWS": PatternInfo("three_black_crows", 3, "-"),
    "CDL3INSIDE": PatternInfo("three_inside", 3, "+-"),
    "CDL3LINESTRIKE": PatternInfo("three_line_strike", 4, "+-"),
    "CDL3OUTSIDE": PatternInfo("three_outside", 3, "+-"),
    "CDL3STARSINSOUTH": PatternInfo("three_stars_in_south", 3, "+"),
    "CDL3WHITESOLDIERS": PatternInfo("three_white_soldiers", 3, "+"),
    "CDLABANDONEDBABY": PatternInfo("abandoned_baby", 3, "+-"),
    "CDLADVANCEBLOCK": PatternInfo("advance_block", 3, "-"),
    "CDLBELTHOLD": PatternInfo("belt_hold", 1, "+-"),
    "CDLBREAKAWAY": PatternInfo("breakaway", 5, "+-"),
    "CDLCLOSINGMARUBOZU": PatternInfo("closing_marubozu", 1, "+-"),
    "CDLCONCEALBABYSWALL": PatternInfo("concealing_baby_swallow", 4, "+"),
    "CDLCOUNTERATTACK": PatternInfo("counterattack", 2, "+-"),
    "CDLDARKCLOUDCOVER": PatternInfo("dark_cloud_cover", 2, "-"),
    "CDLDOJI": PatternInfo("doji", 1, ""),
    "CDLDOJISTAR": PatternInfo("doji_star", 2, "+-"),
    "CDLDRAGONFLYDOJI": PatternInfo("dragonfly_doji", 1, ""),
    "CDLENGULFING": PatternInfo("engulfing", 2, "+-"),
    "CDLEVENINGDOJISTAR": PatternInfo("evening_doji_star", 3, "-"),
    "CDLEVENINGSTAR": PatternInfo("evening_star", 3, "-"),
    "CDLGAPSIDESIDEWHITE": PatternInfo("gap_side_by_side_white", 3, "+-"),
    "CDLGRAVESTONEDOJI": PatternInfo("gravestone_doji", 1, ""),
    "CDLHAMMER": PatternInfo("hammer", 1, "+"),
    "CDLHANGINGMAN": PatternInfo("hanging_man", 1, "-"),
    "CDLHARAMI": PatternInfo("harami", 2, "+-"),
    "CDLHARAMICROSS": PatternInfo("harami_cross", 2, "+-"),
    "CDLHIGHWAVE": PatternInfo("high_wave", 1, "+-"),
    # +-100 on the breakout candle of inside-bar + false breakout (3 candles);
    # +-200 confirms it up to 3 candles later (see hikkake_confirmation_start).
    "CDLHIKKAKE": PatternInfo("hikkake", 3, "+-"),
    "CDLHIKKAKEMOD": PatternInfo("hikkake_modified", 4, "+-"),
    "CDLHOMINGPIGEON": PatternInfo("homing_pigeon", 2, "+"),
    "CDLIDENTICAL3CROWS": PatternInfo("identical_three_crows", 3, "-"),
    "CDLINNECK": PatternInfo("in_neck", 2, "-"),
    "CDLINVERTEDHAMMER": PatternInfo("inverted_hammer", 1, "+"),
    "CDLKICKING": PatternInfo("kicking", 2, "+-"),
    "CDLKICKINGBYLENGTH": PatternInfo("kicking_by_length", 2, "+-"),
    "CDLLADDERBOTTOM": PatternInfo("ladder_bottom", 5, "+"),
    "CDLLONGLEGGEDDOJI": PatternInfo("long_legged_doji", 1, ""),
    "CDLLONGLINE": PatternInfo("long_line", 1, "+-"),
    "CDLMARUBOZU": PatternInfo("marubozu", 1, "+-"),
    "CDLMATCHINGLOW": PatternInfo("matching_low", 2, "+"),
    "CDLMATHOLD": PatternInfo("mat_hold", 5, "+"),
    "CDLMORNINGDOJISTAR": PatternInfo("morning_doji_star", 3, "+"),
    "CDLMORNINGSTAR": PatternInfo("morning_star", 3, "+"),
    "CDLONNECK": PatternInfo("on_neck", 2, "-"),
    "CDLPIERCING": PatternInfo("piercing", 2, "+"),
    "CDLRICKSHAWMAN": PatternInfo("rickshaw_man", 1, ""),
    "CDLRISEFALL3METHODS": PatternInfo("rise_fall_three_methods", 5, "+-"),
    "CDLSEPARATINGLINES": PatternInfo("separating_lines", 2, "+-"),
    "CDLSHOOTINGSTAR": PatternInfo("shooting_star", 1, "-"),
    "CDLSHORTLINE": PatternInfo("short_line", 1, "+-"),
    "CDLSPINNINGTOP": PatternInfo("spinning_top", 1, "+-"),
    "CDLSTALLEDPATTERN": PatternInfo("stalled_pattern", 3, "-"),
    "CDLSTICKSANDWICH": PatternInfo("stick_sandwich", 3, "+"),
    "CDLTAKURI": PatternInfo("takuri", 1, ""),
    "CDLTASUKIGAP": PatternInfo("tasuki_gap", 3, "+-"),
    "CDLTHRUSTING": PatternInfo("thrusting", 2, "-"),
    "CDLTRISTAR": PatternInfo("tristar", 3, "+-"),
    "CDLUNIQUE3RIVER": PatternInfo("unique_three_river", 3, "+"),
    "CDLUPSIDEGAP2CROWS": PatternInfo("upside_gap_two_crows", 3, "-"),
    "CDLXSIDEGAP3METHODS": PatternInfo("gap_three_methods", 3, "+-"),
}

NO_PATTERN = "O"
HIKKAKE_CONFIRM_WINDOW = 3  # TA-Lib confirms a hikkake at most 3 candles after it


def pattern_info(function_name: str) -> PatternInfo:
    try:
        return PATTERNS[function_name]
    except KeyError:
        close = difflib.get_close_matches(function_name.upper(), PATTERNS, n=3, cutoff=0.6)
        hint = (
            f"; did you mean {', '.join(close)}?"
            if close
            else "; see candle_ml/patterns.py for the supported list"
        )
        raise PatternError(f"unknown TA-Lib pattern '{function_name}'{hint}") from None


def labels_for(function_name: str) -> list[str]:
    """Every label a pattern can produce, bullish first."""
    info = pattern_info(function_name)
    if not info.directional:
        return [info.name]
    return [
        f"{word}_{info.name}" for sign, word in (("+", "bullish"), ("-", "bearish")) if sign in info.signs
    ]


def label_for(function_name: str, signal: int) -> str:
    info = pattern_info(function_name)
    if not info.directional:
        return info.name
    return f"{'bullish' if signal > 0 else 'bearish'}_{info.name}"
