"""candle-ml: shared library code for the DVC stages (stages/) and the server (serve/)."""

__version__ = "0.1.0"
