"""The secret key `spectra run` keeps when SPECTRA_SECRET_KEY is unset (spectra.runtime.kept_key): made
once, private, read again; refused with a clear message when unusable; and, end to end, a first admin's
link from one start of the real `spectra run` still opens after a restart; `spectra users add` on a SQLite
store signs with the same key, while on another store it still needs SPECTRA_SECRET_KEY."""

from __future__ import annotations

import os
import re
import stat
import threading
from pathlib import Path

import httpx
import pytest

from spectra.runtime import kept_key
from spectra.runtime.kept_key import KeptKeyError, keep_secret_key
from tests.support.cluster import child_env
from tests.support.processes import run_spectra
from tests.support.standalone import Run
from tests.support.waiting import wait_for


@pytest.fixture
def no_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """SPECTRA_SECRET_KEY unset and the key file in the test's own directory; where it goes."""
    monkeypatch.delenv("SPECTRA_SECRET_KEY", raising=False)
    path = tmp_path / "data" / "spectra" / "secret-key"
    monkeypatch.setenv("SPECTRA_SECRET_KEY_FILE", str(path))
    return path


def test_made_once_private_and_read_again(no_key: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = keep_secret_key()
    assert first is not None
    assert (first.path, first.made, first.loose) == (no_key, True, False)
    key = os.environ["SPECTRA_SECRET_KEY"]
    assert len(key) >= kept_key.MIN_KEY_CHARS
    assert no_key.read_text() == key + "\n"
    assert stat.S_IMODE(no_key.stat().st_mode) == 0o600
    assert stat.S_IMODE(no_key.parent.stat().st_mode) == 0o700
    monkeypatch.delenv("SPECTRA_SECRET_KEY")
    again = keep_secret_key()
    assert again is not None
    assert (again.made, os.environ["SPECTRA_SECRET_KEY"]) == (False, key)
    assert [p.name for p in no_key.parent.iterdir()] == ["secret-key"]  # no draft left behind


def test_the_environment_wins_and_nothing_is_written(no_key: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECTRA_SECRET_KEY", "set-by-the-operator-0123456789abcdef")
    assert keep_secret_key() is None
    assert os.environ["SPECTRA_SECRET_KEY"] == "set-by-the-operator-0123456789abcdef"
    assert not no_key.parent.exists()


def test_xdg_data_home_is_the_default_place(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SPECTRA_SECRET_KEY_FILE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert kept_key.key_file() == tmp_path / "spectra" / "secret-key"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert kept_key.key_file() == Path.home() / ".local" / "share" / "spectra" / "secret-key"


def test_processes_starting_together_share_one_key(no_key: Path) -> None:
    """Eight starts at once: one makes the key, every one reads that same key (link, not overwrite)."""
    keys: list[str] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        keys.append(kept_key._read_or_make(no_key)[0])

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 8
    assert set(keys) == {no_key.read_text().strip()}


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ("", "does not hold a secret key"),
        ("short\n", "does not hold a secret key"),
        ("two words " + "x" * 40, "does not hold a secret key"),
        (b"\xff\xfe" + b"x" * 40, "cannot read the secret key"),
    ],
    ids=["empty", "too short", "spaces", "not ascii"],
)
def test_an_unusable_file_is_refused_naming_it(no_key: Path, content: str | bytes, why: str) -> None:
    no_key.parent.mkdir(parents=True)
    if isinstance(content, bytes):
        no_key.write_bytes(content)
    else:
        no_key.write_text(content)
    with pytest.raises(KeptKeyError, match=re.escape(why)) as refused:
        keep_secret_key()
    assert str(no_key) in str(refused.value)
    assert "SPECTRA_SECRET_KEY" not in os.environ


def test_a_place_that_cannot_be_written_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SPECTRA_SECRET_KEY", raising=False)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("SPECTRA_SECRET_KEY_FILE", str(blocker / "secret-key"))
    with pytest.raises(KeptKeyError, match=r"^cannot keep the secret key in .*; set SPECTRA_SECRET_KEY, or"):
        keep_secret_key()


def test_a_file_others_can_read_is_reported(no_key: Path) -> None:
    no_key.parent.mkdir(parents=True)
    no_key.write_text("k" * 43 + "\n")
    no_key.chmod(0o644)
    kept = keep_secret_key()
    assert kept is not None
    assert kept.loose


# --- end to end: the real commands ---------------------------------------------------------------------------------

SETUP_LINE = re.compile(r"set up the first one at http://[^/]+(/setup/\S+) \(once")


def _setup_path(run: Run) -> str:
    found = wait_for(lambda: SETUP_LINE.search(run.log_text()), "the first admin's link", timeout=30)
    assert found is not None
    return found.group(1)


@pytest.mark.e2e
def test_a_link_of_one_start_opens_after_a_restart_and_users_add_signs_alike(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    key_file = tmp_path / "kept" / "secret-key"
    env = child_env(SPECTRA_SECRET_KEY_FILE=str(key_file))  # no SPECTRA_SECRET_KEY
    database = f"sqlite:///{tmp_path / 'spectra.db'}"

    first = Run(tmp_path, manifests, database=database, env=env)
    try:
        first.wait_ready()
        link = _setup_path(first)
        assert f"SPECTRA_SECRET_KEY is not set: using the key made and kept in {key_file}" in first.log_text()
        first.stop()
    finally:
        first.close()

    second = Run(tmp_path, manifests, database=database, env=env)
    try:
        second.wait_ready()
        _setup_path(second)
        assert f"SPECTRA_SECRET_KEY is not set: using the key kept in {key_file}" in second.log_text()
        opened = httpx.get(second.base + link, timeout=30)  # signed by the first start's key
        assert opened.status_code == 200, opened.text
        assert "Set up your account" in opened.text
        added = run_spectra("users", "add", "bob@example.com", "--database", database, env=env)
        assert added.returncode == 0, added.stderr
        invited = httpx.get(added.stdout.strip().replace("http://127.0.0.1:8080", second.base), timeout=30)
        assert invited.status_code == 200, invited.text
        assert "bob@example.com" in invited.text
        second.stop()
    finally:
        second.close()
    for run in (first, second):
        assert "Traceback" not in run.log_text()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() not in (tmp_path / "spectra.db").read_bytes().decode("latin-1")


@pytest.mark.e2e
def test_users_add_on_another_store_still_needs_the_key(tmp_path: Path) -> None:
    env = child_env(SPECTRA_SECRET_KEY_FILE=str(tmp_path / "secret-key"))
    done = run_spectra("users", "add", "carol@example.com", "--database", "mysql+pymysql://u:p@127.0.0.1:1/x", env=env)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "spectra: SPECTRA_SECRET_KEY is not set: the server would refuse a link signed with a key of this "
        "command alone; set the key `spectra web` has\n"
    )
    assert not (tmp_path / "secret-key").exists()
