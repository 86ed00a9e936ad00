"""dvc.yaml lists exactly the code and the params each stage reads, so `dvc repro` reruns what
changed and only that."""

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
SECTION_READERS = {"parse_section": 1, "load_section": 0}  # candle_ml.config: the section name's argument


def params_read(path: Path) -> set[str]:
    """The params.yaml keys a stage reads, from its code: each ``parse_section``/``load_section``
    call's section, narrowed to ``section.key`` where only that key is taken from it."""
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    read = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in SECTION_READERS:
            arg = node.args[SECTION_READERS[node.func.id]]  # type: ignore[attr-defined]
            assert isinstance(arg, ast.Constant), f"{path}: a section name must be a literal"
            parent = parents.get(node)
            read.add(f"{arg.value}.{parent.attr}" if isinstance(parent, ast.Attribute) else arg.value)
    return read


def test_stage_code_deps_match_imports():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    sections = set(yaml.safe_load((ROOT / "params.yaml").read_text()))
    assert list(stages) == [
        "check_raw",
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
        # the params it declares are the ones its code reads, its own section (if any) first
        read = params_read(ROOT / own)
        own_first = stage["params"][0] == name or name not in sections  # check_raw reads ingest's
        assert own_first and set(stage["params"]) == read, (
            f"stage {name}: dvc.yaml params {stage['params']}, the code reads {sorted(read)}"
        )


def test_params_has_a_section_per_stage_with_the_fixed_keys():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key in ("encoding", "window_size", "context", "min_confidence", "merge"):
        assert key in params["dataset"]
    assert {"method", "train", "val", "test"} <= set(params["dataset"]["split"])
    assert params["autolabel"]["patterns"] and params["featurize"]["indicators"]


def test_dvc_lock_matches_the_committed_code():
    """dvc.lock's md5 of each stage's code deps is the file's as it is now: a change committed
    without `dvc repro` would rerun stages on a clean clone (caught here in a second, not by the
    integration build). DVC hashes a text file as is; dos2unix was dropped in DVC 3."""
    import hashlib

    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"]
    stale = [
        f"{name}: {dep['path']}"
        for name, stage in lock.items()
        for dep in stage.get("deps", [])
        if dep["path"].endswith(".py")
        and (ROOT / dep["path"]).is_file()
        and hashlib.md5((ROOT / dep["path"]).read_bytes()).hexdigest() != dep["md5"]
    ]
    assert not stale, f"run `dvc repro` and commit dvc.lock; stale code deps: {stale}"
