"""dvc.yaml lists exactly the code each stage runs, so `dvc repro` reruns what changed and only that."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PROJECT_PACKAGES = ("candle_ml", "stages", "serve")


def project_imports(path: Path) -> set[str]:
    """Project modules a file imports, as repo-relative paths (transitively)."""
    seen: set[str] = set()
    todo = [path]
    while todo:
        tree = ast.parse(todo.pop().read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if not name.startswith(PROJECT_PACKAGES):
                    continue
                base = ROOT / name.replace(".", "/")
                for file in (base.with_suffix(".py"), base / "__init__.py"):  # a module or a package
                    rel = str(file.relative_to(ROOT))
                    if (
                        file.is_file()
                        and rel not in seen
                        and rel not in ("candle_ml/__init__.py", "stages/__init__.py")
                    ):
                        seen.add(rel)
                        todo.append(file)
    return seen


# Code a stage runs without importing it: train logs this file as the MLflow pyfunc.
RUNS_BY_PATH = {"train": {"candle_ml/mlflow_pyfunc.py"}}
# Sections a stage reads besides its own.
EXTRA_PARAMS = {
    "train": ["mlflow"],
    "evaluate": ["mlflow"],
    "dataset": ["autolabel.chart"],
    "holdout": ["autolabel.patterns", "evaluate.min_overlap"],
    "learning_curve": ["dataset", "train", "evaluate.min_overlap", "autolabel.chart"],
    "outcomes": ["autolabel.chart"],
}


def test_stage_code_deps_match_imports():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert list(stages) == [
        "ingest",
        "featurize",
        "autolabel",
        "dataset",
        "train",
        "evaluate",
        "holdout",
        "learning_curve",
        "outcomes",
    ]
    for name, stage in stages.items():
        module = stage["cmd"].split("-m ", 1)[1].split()[0]
        own = module.replace(".", "/") + ".py"
        expected = {own} | project_imports(ROOT / own) | RUNS_BY_PATH.get(name, set())
        for extra in RUNS_BY_PATH.get(name, set()):
            expected |= project_imports(ROOT / extra)
        # (a .py file outside the packages is data to the stage: learning_curve's own patterns)
        declared = {d for d in stage["deps"] if d.endswith(".py") and d.startswith(PROJECT_PACKAGES)}
        assert declared == expected, (
            f"stage {name}: missing {expected - declared}, extra {declared - expected}"
        )
        assert stage["params"] == [name, *EXTRA_PARAMS.get(name, [])], f"stage {name} reads other params"


def test_params_has_a_section_per_stage_with_the_fixed_keys():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key in ("encoding", "window_size", "context", "min_confidence", "merge"):
        assert key in params["dataset"]
    assert {"method", "train", "val", "test"} <= set(params["dataset"]["split"])
    assert params["autolabel"]["patterns"] and params["featurize"]["indicators"]
