"""The ``champion`` alias only moves forward.

Every run registers a version; ``candidate`` follows the workspace's latest. ``champion`` moves to
a version only when it beats the current champion **on the same test split**: the champion is
scored again on the test candles the new version was scored on (the split changes as answers
arrive), and the new one must have a higher span F1 macro with no pattern's span F1 lower by more
than ``mlflow.max_pattern_drop``. ``evaluate`` does this after every run; ``candle-ml promote``
does it by hand (``--force`` to move the alias anyway), printing the comparison either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from candle_ml.config import MlflowParams
from candle_ml.errors import ModelLoadError

if TYPE_CHECKING:
    from candle_ml.bundle import Bundle

log = logging.getLogger("candle_ml.promotion")

Scorer = Callable[["Bundle"], dict[str, Any]]  # a bundle -> its evaluation report on the current test split


def compare(new: dict[str, Any], old: dict[str, Any], max_drop: float) -> tuple[bool, list[str]]:
    """Is ``new`` better than ``old`` (both scored on the same test split)? And the table that says why."""
    lines = [f"{'pattern':28} {'champion':>9} {'new':>9} {'change':>8}"]
    worse = []
    labels = sorted(set(new["per_class_span"]) | set(old["per_class_span"]))
    for label in labels:
        a = old["per_class_span"].get(label, {"f1": 0.0, "support": 0})
        b = new["per_class_span"].get(label, {"f1": 0.0, "support": 0})
        if not (a["support"] or b["support"]):
            continue  # predicted somewhere, never in the test split
        change = b["f1"] - a["f1"]
        flag = "  worse by more than the allowed drop" if change < -max_drop else ""
        if flag:
            worse.append(label)
        lines.append(f"{label:28} {a['f1']:9.4f} {b['f1']:9.4f} {change:+8.4f}{flag}")
    lines.append(
        f"{'span_f1_macro':28} {old['span_f1_macro']:9.4f} {new['span_f1_macro']:9.4f} "
        f"{new['span_f1_macro'] - old['span_f1_macro']:+8.4f}"
    )
    better = new["span_f1_macro"] > old["span_f1_macro"] and not worse
    verdict = (
        "better"
        if better
        else (
            f"not better: {', '.join(worse)} dropped more than {max_drop}"
            if worse
            else "not better: span_f1_macro"
        )
    )
    return better, [*lines, verdict]


def promote(
    cfg: MlflowParams,
    tracking_uri: str,
    version: str,
    report: Callable[[], dict[str, Any]],
    score: Scorer,
    force: bool = False,
) -> tuple[bool, list[str]]:
    """Move ``cfg.champion_alias`` to ``version`` if it beats the champion (or ``force``); returns
    (whether ``version`` is the champion now, the comparison): asking for the version that already
    is the champion is no failure. ``report()`` gives ``version``'s evaluation on the current test
    split; it is called only when there is a champion to compare with (scoring is seconds)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    name, alias = cfg.registered_model, cfg.champion_alias
    try:
        champion = client.get_model_version_by_alias(name, alias)
    except Exception:  # no champion yet (MLflow raises for a missing alias)
        champion = None
    if champion is not None and str(champion.version) == str(version):
        return True, [f"version {version} already is @{alias}; nothing to move"]
    from candle_ml.loading import load_model_from, short  # the bundle's imports (seconds) only now

    if champion is None:
        try:  # the one check a comparison would have made: that the version exists
            client.get_model_version(name, str(version))
        except Exception as exc:  # MLflow raises MlflowException for a missing version
            raise ModelLoadError(f"models:/{name}/{version} from {tracking_uri}: {short(exc)}") from None
        better, lines = True, [f"no @{alias} yet: version {version} becomes it"]
    else:
        old = score(load_model_from(f"models:/{name}/{champion.version}", tracking_uri).bundle)
        better, lines = compare(report(), old, cfg.max_pattern_drop)
        lines.insert(0, f"version {version} against @{alias} (version {champion.version}), same test split:")
    if better or force:
        client.set_registered_model_alias(name, alias, str(version))
        lines.append(f"@{alias} -> version {version}" + (" (forced)" if force and not better else ""))
        return True, lines
    lines.append(f"@{alias} stays at version {champion.version if champion else '-'}")
    return False, lines


def version_of_run(cfg: MlflowParams, tracking_uri: str, run_id: str) -> str | None:
    """The registered version a training run produced (None when it registered none)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    found = client.search_model_versions(f"name='{cfg.registered_model}' and run_id='{run_id}'")
    return str(max(int(v.version) for v in found)) if found else None
