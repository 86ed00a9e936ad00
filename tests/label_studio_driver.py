"""Drives a real Label Studio with its own SDK (label-studio-sdk), as a team would set up a
project: run by tests/test_label_studio_server.py with Label Studio's Python (the SDK lives in
Label Studio's virtual environment, not candle-ml's).

    python label_studio_driver.py STEP ARGS.json OUT.json

STEP ``setup``: a TimeSeries project with candle-ml's label config, the tasks imported, candle-ml
connected as its ML backend (Label Studio calls /health, then /setup), the predictions retrieved
(the ``retrieve_tasks_predictions`` action: /predict). STEP ``annotate``: annotations created
(each a webhook), one deleted, then the project exported as JSON and JSON_MIN. OUT.json: what
Label Studio holds afterwards.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from label_studio_sdk import LabelStudio


def setup(ls: LabelStudio, args: dict) -> dict:
    project = ls.projects.create(title="candle-ml", label_config=args["label_config"])
    ls.projects.import_tasks(id=project.id, request=args["tasks"])
    backend = ls.ml.create(
        project=project.id, url=args["backend_url"], title="candle-ml", is_interactive=False
    )
    tasks = sorted(ls.tasks.list(project=project.id), key=lambda t: t.id)
    ls.actions.create(
        id="retrieve_tasks_predictions",
        project=project.id,
        selected_items={"all": False, "included": [t.id for t in tasks]},
    )
    predictions = {t.id: [p.model_dump(mode="json") for p in ls.predictions.list(task=t.id)] for t in tasks}
    got = ls.ml.get(id=backend.id)
    return {
        "project": project.id,
        "tasks": [t.id for t in tasks],
        "backend": {"id": backend.id, "state": str(got.state), "model_version": got.model_version},
        "predictions": predictions,
    }


def annotate(ls: LabelStudio, args: dict) -> dict:
    made = []
    for task_id, result in args["annotations"]:
        made.append(ls.annotations.create(id=task_id, result=result).id)
    for annotation_id in [made[i] for i in args["delete"]]:
        ls.annotations.delete(id=annotation_id)
    exports = {}
    for kind in ("JSON", "JSON_MIN"):  # what a team downloads from the project's Export
        path = Path(args["export_dir"]) / f"{kind.lower()}.json"
        path.write_bytes(b"".join(ls.projects.exports.download_sync(id=args["project"], export_type=kind)))
        exports[kind] = str(path)
    return {"annotations": made, "exports": exports}


def main() -> None:
    step, args_file, out_file = sys.argv[1:4]
    args = json.loads(Path(args_file).read_text())
    ls = LabelStudio(base_url=args["url"], api_key=args["token"])
    out = {"setup": setup, "annotate": annotate}[step](ls, args)
    Path(out_file).write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
