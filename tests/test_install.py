"""The install: every third-party import is a declared dependency, and requirements.lock (what CI
and the quick start install) pins every declared dependency inside its declared range."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
FIRST_PARTY = {"candle_ml", "serve", "stages"}


def declared(*extras: str) -> list[Requirement]:
    reqs = [Requirement(r) for r in PROJECT["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in PROJECT["optional-dependencies"][extra]]
    # an extra that names the project itself ("candle-ml[s3]") stands for that extra's list
    own = [r for r in reqs if canonicalize_name(r.name) == "candle-ml"]
    reqs = [r for r in reqs if r not in own]
    for r in own:
        reqs += declared_extras(r.extras)
    return [r for r in reqs if r.marker is None or r.marker.evaluate()]


def declared_extras(extras: set[str]) -> list[Requirement]:
    return [Requirement(r) for e in sorted(extras) for r in PROJECT["optional-dependencies"][e]]


def locked() -> dict[str, str]:
    """requirements.lock's pins that apply to this interpreter and platform: name -> version."""
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if not line or line[0] in " #-":
            continue
        req = Requirement(line.rstrip(" \\"))
        if req.marker is None or req.marker.evaluate():
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = spec.version
    return pins


def test_the_lock_pins_every_declared_dependency_inside_its_range():
    pins = locked()
    for req in declared("dev"):
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is declared in pyproject.toml but not in requirements.lock: re-lock"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside pyproject.toml's {req}: re-lock"
        )


def test_the_default_install_has_no_cuda_build_of_xgboost():
    """The CPU-only wheel: the plain one carries ~0.7 GB of CUDA and NCCL that train.device=cpu never uses."""
    pins = locked()
    if sys.platform != "darwin":
        assert "xgboost-cpu" in pins and "xgboost" not in pins
        assert not any(name.startswith("nvidia-") for name in pins)


def third_party_imports() -> dict[str, str]:
    """Top-level modules the shipped packages import (not stdlib, not our own): module -> first file."""
    found: dict[str, str] = {}
    for package in sorted(FIRST_PARTY):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in FIRST_PARTY:
                        found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_import_of_the_shipped_code_is_a_declared_dependency():
    dists = packages_distributions()
    runtime = {canonicalize_name(r.name) for r in declared()}
    runtime |= {canonicalize_name(r.name) for r in declared_extras({"s3", "postgres", "spark"})}
    imports = third_party_imports()
    assert {"xgboost", "talib", "skops", "matplotlib", "litestar"} <= set(imports)
    for module, where in imports.items():
        # an optional extra not installed here (pyspark without the spark lock): its module's name
        providers = {canonicalize_name(d) for d in dists.get(module, [])} or {canonicalize_name(module)}
        assert providers & runtime, (
            f"{where} imports {module!r} (from {sorted(providers) or 'nothing installed'}), "
            "which pyproject.toml does not declare"
        )


def test_the_lock_says_how_to_remake_it():
    header = (ROOT / "requirements.lock").read_text().split("\n", 3)
    assert re.search(r"uv pip compile pyproject\.toml .*--generate-hashes", "\n".join(header[:3]))


def test_the_logged_model_pins_the_distributions_installed_here():
    """The MLflow pyfunc's pip requirements name the distribution that provides each module
    (xgboost-cpu, not xgboost), so logging works whichever XGBoost build is installed."""
    from importlib.metadata import version

    from candle_ml.training import _pip_requirements

    pins = dict(r.split("==") for r in _pip_requirements())
    assert all(version(name) == v for name, v in pins.items())
    xgb = packages_distributions()["xgboost"][0]
    assert pins[xgb] == version(xgb) and {"TA-Lib", "scikit-learn"} <= set(pins)


def test_the_spark_lock_adds_pyspark_to_the_same_versions():
    """requirements-spark.lock (CI installs it after requirements.lock) pins what the main lock
    pins, plus pyspark inside the spark extra's range."""
    pins: dict[str, set[str]] = {}
    for lock in ("requirements.lock", "requirements-spark.lock"):
        for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==([^ \\;]+)", (ROOT / lock).read_text(), re.M):
            pins.setdefault(f"{lock}:{canonicalize_name(name)}", set()).add(version)
    main = {k.split(":", 1)[1]: v for k, v in pins.items() if k.startswith("requirements.lock:")}
    spark = {k.split(":", 1)[1]: v for k, v in pins.items() if k.startswith("requirements-spark.lock:")}
    assert {n: v for n, v in spark.items() if n in main and not v <= main[n]} == {}
    (extra,) = declared_extras({"spark"})
    assert all(extra.specifier.contains(v) for v in spark["pyspark"]) and "py4j" in spark
