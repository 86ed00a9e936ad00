"""The champion alias only moves forward: the comparison on one test split, and what `promote` asks
the registry (a stand-in for MLflow's client here; tests/test_experiments.py runs it on a real store)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from candle_ml.config import MlflowParams
from candle_ml.errors import ModelLoadError
from candle_ml.promotion import compare, promote


def report(macro: float, **f1: float) -> dict:
    return {"span_f1_macro": macro, "per_class_span": {k: {"f1": v, "support": 10} for k, v in f1.items()}}


def test_a_better_version_wins():
    better, lines = compare(report(0.95, doji=0.97, hammer=0.93), report(0.93, doji=0.96, hammer=0.90), 0.05)
    assert better and lines[-1] == "better"
    assert any(line.startswith("hammer") and "+0.0300" in line for line in lines)


def test_a_worse_macro_or_one_collapsed_pattern_loses():
    assert not compare(report(0.92, doji=0.92), report(0.93, doji=0.93), 0.05)[0]
    better, lines = compare(report(0.96, doji=0.99, hammer=0.85), report(0.93, doji=0.93, hammer=0.93), 0.05)
    assert not better and "hammer dropped more than 0.05" in lines[-1]
    assert compare(report(0.96, doji=0.99, hammer=0.85), report(0.93, doji=0.93, hammer=0.93), 0.10)[0]


def test_equal_is_not_better():
    assert not compare(report(0.93, doji=0.93), report(0.93, doji=0.93), 0.05)[0]


class Registry:
    """The three registry calls `promote` makes, on a dict of versions (MLflow raises for a missing one)."""

    def __init__(self, versions: set[str], champion: str | None):
        self.versions, self.aliases = versions, {"champion": champion} if champion else {}

    def __call__(self, **_uris: str) -> Registry:  # stands in for the MlflowClient class
        return self

    def get_model_version_by_alias(self, name: str, alias: str) -> SimpleNamespace:
        if alias not in self.aliases:
            raise LookupError(f"no alias {alias}")
        return SimpleNamespace(version=self.aliases[alias])

    def get_model_version(self, name: str, version: str) -> SimpleNamespace:
        if version not in self.versions:
            raise LookupError(f"Model Version (name={name}, version={version}) not found")
        return SimpleNamespace(version=version)

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self.aliases[alias] = version


def never_scored(*_: object) -> dict:
    raise AssertionError("scored a version no comparison needs")


CFG = MlflowParams(registered_model="candle-patterns", champion_alias="champion")


def test_asking_for_the_champion_scores_nothing(monkeypatch):
    monkeypatch.setattr("mlflow.MlflowClient", Registry({"1", "2"}, champion="2"))
    assert promote(CFG, "sqlite:///x.db", "2", never_scored, never_scored) == (
        True,
        ["version 2 already is @champion; nothing to move"],
    )


def test_the_first_champion_needs_no_scores_but_an_existing_version(monkeypatch):
    registry = Registry({"1"}, champion=None)
    monkeypatch.setattr("mlflow.MlflowClient", registry)
    with pytest.raises(ModelLoadError, match=r"models:/candle-patterns/7 from sqlite:///x.db: .*not found"):
        promote(CFG, "sqlite:///x.db", "7", never_scored, never_scored)
    assert registry.aliases == {}
    moved, lines = promote(CFG, "sqlite:///x.db", "1", never_scored, never_scored)
    assert moved and lines[-1] == "@champion -> version 1" and registry.aliases == {"champion": "1"}
