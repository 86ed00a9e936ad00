"""Import TA-Lib once, with an error that says how to install it."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from candle_ml.errors import TalibMissingError


def import_talib() -> ModuleType:
    try:
        import talib
        from talib import abstract  # noqa: F401  (fails when the C library is missing)
    except ImportError as exc:
        raise TalibMissingError(
            f"TA-Lib cannot be imported ({exc}). Install it with `pip install ta-lib` "
            "(PyPI wheels for Linux/macOS/Windows bundle the C library); when building from source, "
            "install the TA-Lib C library first (https://ta-lib.org/install/)."
        ) from None
    return talib


def talib_abstract() -> Any:
    """TA-Lib's abstract API (``Function``, the function list), typed loosely: it ships no stubs for it."""
    import_talib()
    from talib import abstract

    return abstract
