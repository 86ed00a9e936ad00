"""What higher-timeframe context does for accuracy: the pipeline with and without
``featurize.higher_timeframes``, same data, same params otherwise, in one run.

Each case runs the real stages (ingest -> featurize -> autolabel -> dataset -> train -> evaluate)
in a scratch folder with a copy of params.yaml, twice: the baseline (``higher_timeframes: []``)
and the variant; it prints the test split's metrics side by side and their ratio.

Cases:
- ``intraday``: an hourly series (``--intraday FILE``, a {PAIR}_{TIMEFRAME}.csv|parquet). Without
  it, the EURUSD hourly candles (2017-04 to 2018-02, 5,000 candles) that the ``backtesting``
  package ships as test data are used: ``pip install backtesting`` (AGPL-3.0; only its CSV is
  read, nothing of it is imported or shipped). Variant: ``[4h, 1d]``.
- ``daily``: the bundled daily stocks. Variant: ``[1w]``.

    python bench/higher_timeframes.py                  # both cases, ~6 min on 2 cores
    python bench/higher_timeframes.py --case intraday
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer
import yaml

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("ingest", "featurize", "autolabel", "dataset", "train", "evaluate")
METRICS = ("span_f1_macro", "f1_macro", "accuracy", "worst_span_f1")


def bundled_eurusd() -> Path:
    spec = importlib.util.find_spec("backtesting")
    if spec is None or not spec.submodule_search_locations:
        raise typer.BadParameter(
            "no intraday series: pass --intraday FILE ({PAIR}_1h.csv), or `pip install backtesting` for its "
            "EURUSD hourly test data"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "test" / "EURUSD.csv"


def run_case(work: Path, raw: Path | None, bundled: list[str], higher: list[str]) -> dict:
    """The stages in ``work`` on these series; the evaluate stage's metrics, min_history, seconds."""
    work.mkdir(parents=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["ingest"]["bundled"] = bundled
    params["ingest"]["raw_dir"] = str(raw) if raw else str(work / "raw")
    params["featurize"]["higher_timeframes"] = higher
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = os.environ | {"PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    started = time.perf_counter()
    for stage in STAGES:
        done = subprocess.run(
            [sys.executable, "-m", f"stages.{stage}"], cwd=work, env=env, capture_output=True, text=True
        )
        if done.returncode:
            raise SystemExit(f"{stage} failed in {work}:\n{done.stderr[-3000:]}")
    metrics = json.loads((work / "metrics" / "evaluate.json").read_text())
    bundle = json.loads((work / "models" / "bundle.json").read_text())
    return {
        **{k: metrics.get(k) for k in METRICS},
        "min_history": bundle["min_history"],
        "features": len(bundle["feature_columns"]),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(
    case: list[str] = typer.Option(["intraday", "daily"], help="intraday, daily or both"),
    intraday: Path | None = typer.Option(None, help="an hourly {PAIR}_{TIMEFRAME} file (default: EURUSD_1h)"),
    json_out: Path | None = typer.Option(None, help="also write the results here"),
) -> None:
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="candle-ml-htf-") as tmp:
        root = Path(tmp)
        for name in case:
            if name == "intraday":
                raw = root / "raw"
                raw.mkdir()
                source = intraday or bundled_eurusd()
                shutil.copy(source, raw / (source.name if intraday else "EURUSD_1h.csv"))
                setup: tuple[Path | None, list[str], list[str]] = (raw, [], ["4h", "1d"])
            elif name == "daily":
                setup = (None, ["AAPL", "GOOG", "IBM", "MSFT", "FB"], ["1w"])
            else:
                raise typer.BadParameter(f"--case {name}: intraday or daily")
            raw_dir, bundled, higher = setup
            for variant, timeframes in (("without", []), (f"with {higher}", higher)):
                print(f"{name}: {variant} ...", flush=True)
                results[f"{name} {variant}"] = run_case(
                    root / f"{name}-{len(timeframes)}", raw_dir, bundled, timeframes
                )
    header = f"{'':32}" + "".join(f"{k:>15}" for k in (*METRICS, "min_history", "features", "seconds"))
    print("\n" + header)
    for key, r in results.items():
        cells = "".join(
            f"{r[k]:>15.4f}" if isinstance(r[k], float) else f"{r[k]!s:>15}"
            for k in (*METRICS, "min_history", "features", "seconds")
        )
        print(f"{key:32}{cells}")
    print()
    for name in case:
        base, variant = (r for k, r in results.items() if k.startswith(name + " "))
        for k in ("span_f1_macro", "f1_macro"):
            if base[k] and variant[k] is not None:
                print(f"{name}: {k} with / without higher timeframes  {variant[k] / base[k]:.3f}x")
    if json_out:
        json_out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    typer.run(main)
