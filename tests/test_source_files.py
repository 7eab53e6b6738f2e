"""Which manifest file each resource came from: `spectra apply` and `spectra run` store it per resource
(`resources.source_file`, relative to the folder given, or as given) for the monitor page to show; the
source that pruning groups by stays "manifests"."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.orm import Session

from spectra.api import parse_object
from spectra.manifests import load_paths
from spectra.reconcile import CLUSTER_SOURCE, MANIFEST_SOURCE, apply_one, apply_set
from spectra.store import Resource
from tests.support.processes import run_spectra
from tests.support.standalone import Run
from tests.support.waiting import wait_for


def monitor(name: str, port: int) -> str:
    return f"""apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata:
  name: {name}
spec:
  type: tcp
  interval: 1h
  tcp:
    host: 127.0.0.1
    port: {port}
"""


def two_files(tmp: Path) -> Path:
    folder = tmp / "manifests"
    (folder / "team").mkdir(parents=True)
    (folder / "web.yaml").write_text(monitor("web", 9))
    (folder / "team" / "db.yaml").write_text(monitor("db", 10))
    return folder


def stored(database: Path) -> dict[str, tuple[str, str | None]]:
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT name, source, source_file FROM resources")).all()
    finally:
        engine.dispose()
    return {name: (source, source_file) for name, source, source_file in rows}


@pytest.mark.e2e
def test_spectra_apply_stores_each_resources_file(tmp_path: Path) -> None:
    folder = two_files(tmp_path)
    database = tmp_path / "spectra.db"
    url = f"sqlite:///{database}"

    def apply(*paths: str) -> str:
        done = run_spectra("apply", *paths, "--database", url, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stderr.strip()

    assert apply("manifests") == "2 created, 0 updated, 0 unchanged, 0 deleted"
    assert stored(database) == {"web": ("manifests", "web.yaml"), "db": ("manifests", "team/db.yaml")}
    assert apply("manifests") == "0 created, 0 updated, 2 unchanged, 0 deleted"

    # The same object moved to the other file: updated, its file follows; nothing else changes.
    (folder / "team" / "db.yaml").unlink()
    (folder / "web.yaml").write_text(monitor("web", 9) + "---\n" + monitor("db", 10))
    assert apply("manifests") == "0 created, 1 updated, 1 unchanged, 0 deleted"
    assert stored(database) == {"web": ("manifests", "web.yaml"), "db": ("manifests", "web.yaml")}

    # A file given itself is stored as given; an absolute folder gives names relative to it.
    assert apply("manifests/web.yaml") == "0 created, 2 updated, 0 unchanged, 0 deleted"
    assert stored(database) == {"web": ("manifests", "manifests/web.yaml"), "db": ("manifests", "manifests/web.yaml")}
    assert apply(str(folder)) == "0 created, 2 updated, 0 unchanged, 0 deleted"
    assert stored(database) == {"web": ("manifests", "web.yaml"), "db": ("manifests", "web.yaml")}

    # Pruning still goes by the source: the object gone from the files goes, whatever its file was.
    (folder / "web.yaml").write_text(monitor("web", 9))
    assert apply("manifests") == "0 created, 0 updated, 1 unchanged, 1 deleted"
    assert stored(database) == {"web": ("manifests", "web.yaml")}


@pytest.mark.e2e
def test_spectra_run_stores_each_resources_file_and_follows_a_move(tmp_path: Path) -> None:
    folder = two_files(tmp_path)
    database = tmp_path / "spectra.db"
    run = Run(tmp_path, folder, database=f"sqlite:///{database}")
    try:
        run.wait_ready()
        assert stored(database) == {"web": ("manifests", "web.yaml"), "db": ("manifests", "team/db.yaml")}
        (folder / "team" / "db.yaml").unlink()
        (folder / "web.yaml").write_text(monitor("web", 9) + "---\n" + monitor("db", 10))
        moved = {"web": ("manifests", "web.yaml"), "db": ("manifests", "web.yaml")}
        wait_for(lambda: stored(database) == moved, "the reload to store db's new file", timeout=30)
        run.stop()
    finally:
        run.close()


def test_source_files_are_relative_to_the_folder_given_or_as_given(tmp_path: Path) -> None:
    folder = two_files(tmp_path)
    loaded = load_paths([folder])
    assert loaded.ok, loaded.errors
    assert loaded.source_files([folder]) == {
        ("Monitor", "default", "web"): "web.yaml",
        ("Monitor", "default", "db"): "team/db.yaml",
    }
    one = load_paths([folder / "team" / "db.yaml"])
    assert one.source_files([folder / "team" / "db.yaml"]) == {
        ("Monitor", "default", "db"): str(folder / "team" / "db.yaml")
    }


def test_the_cluster_stores_no_file_and_the_source_keeps_its_meaning(session: Session, tmp_path: Path) -> None:
    folder = two_files(tmp_path)
    loaded = load_paths([folder])
    apply_set(
        session, [item.resource for item in loaded.resources], MANIFEST_SOURCE, files=loaded.source_files([folder])
    )
    rows = {row.name: (row.source, row.source_file) for row in session.scalars(sa.select(Resource))}
    assert rows == {"web": ("manifests", "web.yaml"), "db": ("manifests", "team/db.yaml")}
    # The operator takes db over: its source is the cluster, with no file.
    report = apply_one(session, parse_object(yaml.safe_load(monitor("db", 10))), CLUSTER_SOURCE)
    assert report.updated == ["Monitor/default/db"]
    rows = {row.name: (row.source, row.source_file) for row in session.scalars(sa.select(Resource))}
    assert rows == {"web": ("manifests", "web.yaml"), "db": ("cluster", None)}
    # Applying the files again without db prunes only the manifests' rows.
    web = [item.resource for item in loaded.resources if item.resource.name == "web"]
    apply_set(session, web, MANIFEST_SOURCE, files=loaded.source_files([folder]))
    assert {row.name for row in session.scalars(sa.select(Resource))} == {"web", "db"}
