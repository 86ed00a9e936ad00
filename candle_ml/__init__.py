"""candle-ml: the library under the DVC stages (stages/) and the server (serve/); it imports neither."""

__version__ = "0.1.0"
