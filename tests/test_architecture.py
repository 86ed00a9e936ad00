"""The layering a newcomer can rely on: the library (candle_ml) imports neither the stages nor the
server and has no import cycle; HTTP lives in serve/ alone; a route never imports another route;
the stage outputs are read through their typed readers."""

from __future__ import annotations

import ast
import graphlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every module a file imports, at the top, inside functions or under TYPE_CHECKING alike."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return names


def import_graph(package: str) -> dict[str, set[str]]:
    modules = {module_name(p): p for p in (ROOT / package).rglob("*.py")}
    return {
        name: {m for m in imported(path) if m in modules and m not in (name, package)}
        for name, path in modules.items()
    }


def test_the_library_never_imports_stages_or_the_server():
    offenders = [
        f"{module_name(path)} imports {m}"
        for path in (ROOT / "candle_ml").rglob("*.py")
        for m in sorted(imported(path))
        if m.split(".")[0] in ("stages", "serve")
    ]
    assert offenders == []


def test_the_library_has_no_import_cycle():
    try:
        graphlib.TopologicalSorter(import_graph("candle_ml")).prepare()
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def test_the_cycle_check_finds_a_cycle():
    # the check itself: a two-module loop such as bundle <-> calibration once was
    sorter = graphlib.TopologicalSorter({"a": {"b"}, "b": {"a"}})
    try:
        sorter.prepare()
    except graphlib.CycleError:
        return
    raise AssertionError("no cycle found")


def test_routes_never_import_routes():
    offenders = [
        f"{module_name(path)} imports {m}"
        for path in (ROOT / "serve" / "routes").glob("*.py")
        if path.name != "__init__.py"
        for m in sorted(imported(path))
        if m.startswith("serve.routes")
    ]
    assert offenders == []


def test_http_statuses_live_in_serve_alone():
    """No status code, Retry-After or HTTP framework in the library: serve/errors.py maps its errors."""
    pattern = re.compile(r"\bstatus\s*=\s*\d{3}\b|retry_after|Retry-After|litestar|status_code")
    offenders = [
        f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
        for path in (ROOT / "candle_ml").rglob("*.py")
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


def test_stage_outputs_are_read_through_their_typed_readers():
    """index.json and schema.json are decoded into candle_ml.stage_outputs' structs, never read by key."""
    pattern = re.compile(r"read_json\([^)]*(INDEX|SCHEMA|index\.json|schema\.json)")
    offenders = [
        f"{path.relative_to(ROOT)}:{i}"
        for folder in ("candle_ml", "stages", "serve")
        for path in (ROOT / folder).rglob("*.py")
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


def test_the_readme_layout_names_every_module():
    """README's layout table: each top-level module of candle_ml/ and serve/ by its file name,
    each subpackage by its folder, so a newcomer finds where a thing lives."""
    rows = {
        line.split("|")[1].strip().strip("`"): line
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("| `")
    }
    missing = []
    for package in ("candle_ml", "serve"):
        row = rows[f"{package}/"]
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT / package).parts
            name = f"`{parts[0]}/`" if len(parts) > 1 else f"`{parts[0]}`"
            if parts != ("__init__.py",) and name not in row:
                missing.append(f"{package}/{'/'.join(parts)}")
    assert missing == []
