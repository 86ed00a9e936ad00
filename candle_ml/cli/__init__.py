"""The ``candle-ml`` command line: the commands a trader or engineer runs by hand.

The pipeline itself runs through DVC (``dvc repro``). Here: checking files before they
go into ``data/``, listing the patterns, predicting a file offline with exactly the server's
code, the outcome report (do the patterns matter?) on a trader's own series, and Label
Studio projects by files (``import``, ``label-studio config|tasks``).
``candle-ml serve`` is added by ``serve.cli`` (the library knows no HTTP).

The commands live in ``files.py`` and ``reports.py``; this module is the app that lists them.
"""

from __future__ import annotations

import typer

from candle_ml.cli.common import user_errors
from candle_ml.cli.files import batch, check, patterns, predict
from candle_ml.cli.label_studio import import_export, studio
from candle_ml.cli.reports import history, outcomes, promote, report

__all__ = ["app", "user_errors"]

app = typer.Typer(
    help="candle-ml: candlestick-pattern ML backend (pipeline: `dvc repro`).", no_args_is_help=True
)


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version

        from candle_ml import __version__

        try:  # the installed distribution's, which pip and bug reports see
            typer.echo(f"candle-ml {version('candle-ml')}")
        except Exception:  # run from a source tree that is not installed
            typer.echo(f"candle-ml {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """candle-ml: candlestick-pattern ML backend (pipeline: `dvc repro`)."""


for command in (check, patterns, predict, batch, outcomes, history, report, promote):  # --help's order
    app.command()(command)
app.command("import")(import_export)
app.add_typer(studio, name="label-studio")
