"""``python -m candle_ml.cli``: the library's commands (``candle-ml`` adds ``serve``)."""

from candle_ml.cli import app

app()
