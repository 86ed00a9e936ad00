"""Integration: the remote workflow of docs/pipeline.md ("Remote storage") against a real
S3-compatible server on loopback (moto's), with two clones: one pushes what it built, the other
pulls it and finds nothing to rebuild.

Runs on this file's fork of the built pipeline (conftest `pipeline`); it commits that fork's state
and points its default remote at the S3 server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from .conftest import ARTIFACTS, commit_all, run, s3_client
from .conftest import S3_KEY as KEY
from .conftest import S3_SECRET as SECRET

pytestmark = [pytest.mark.integration, pytest.mark.servers]

boto3 = pytest.importorskip("boto3", reason="the s3 extra (pip install -e '.[s3]') is not installed")


def timed(cmd: list[str], cwd: Path) -> tuple[str, float]:
    start = time.perf_counter()
    out = run(cmd, cwd, AWS_EC2_METADATA_DISABLED="true")
    return out, time.perf_counter() - start


def configure_credentials(clone: Path) -> None:
    """Each clone's own secrets, in .dvc/config.local (git-ignored), as the docs say."""
    run(["dvc", "remote", "modify", "--local", "s3", "access_key_id", KEY], clone)
    run(["dvc", "remote", "modify", "--local", "s3", "secret_access_key", SECRET], clone)


def test_a_second_clone_pulls_what_the_first_pushed_and_rebuilds_nothing(pipeline, s3_server, tmp_path):
    repo, _ = pipeline
    s3 = s3_client(s3_server)
    s3.create_bucket(Bucket="team")

    # Clone one: the remote goes in the committed config, the credentials do not.
    run(["dvc", "remote", "add", "-d", "s3", "s3://team/candle-ml"], repo)
    run(["dvc", "remote", "modify", "s3", "endpointurl", s3_server], repo)
    configure_credentials(repo)
    assert "Data and pipelines are up to date" in run(["dvc", "status"], repo)
    commit_all(repo, "DVC remote: s3")
    assert KEY not in (repo / ".dvc/config").read_text()
    pushed, push_s = timed(["dvc", "push"], repo)
    objects = s3.list_objects_v2(Bucket="team", Prefix="candle-ml/").get("KeyCount", 0)
    assert objects > 0, pushed

    # Clone two: git clone, its own credentials, pull; the outputs are the ones the lock names.
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    configure_credentials(clone)
    pulled, pull_s = timed(["dvc", "pull"], clone)
    status, status_s = timed(["dvc", "status"], clone)
    assert "Data and pipelines are up to date" in status, status
    rerun, repro_s = timed(["dvc", "repro"], clone)
    assert "Running stage" not in rerun and "Data and pipelines are up to date" in rerun, rerun
    assert (clone / "models/bundle.json").read_bytes() == (repo / "models/bundle.json").read_bytes()
    assert not (clone / "models.run.json").exists()  # run facts stay with the clone that trained

    timings = {
        "objects_in_remote": objects,
        "push_s": round(push_s, 2),
        "pull_s": round(pull_s, 2),
        "status_s": round(status_s, 2),
        "noop_repro_s": round(repro_s, 2),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "remote-s3.json").write_text(json.dumps(timings, indent=2) + "\n")
