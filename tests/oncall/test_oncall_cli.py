"""`spectra oncall` as users run it: a real process against the examples."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO

SPECTRA = str(Path(sys.executable).with_name("spectra"))
EXAMPLE = "examples/03-on-call"


def spectra(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SPECTRA, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    ("at", "lines"),
    [
        (
            "2026-01-05T08:00:00+01:00",
            [
                "Schedule default/platform-primary (Europe/Berlin) at 2026-01-05 08:00 CET (UTC+0100)",
                "On call: nobody",
                "Next handoff: 2026-01-05 09:00 CET (UTC+0100) = 2026-01-05 08:00 UTC",
            ],
        ),
        (
            "2026-03-28T12:00:00Z",
            [
                "Schedule default/platform-primary (Europe/Berlin) at 2026-03-28 13:00 CET (UTC+0100)",
                "On call: bob (Bob Example)",
                "Next handoff: 2026-03-30 09:00 CEST (UTC+0200) = 2026-03-30 07:00 UTC",
            ],
        ),
        (
            "2026-03-30T10:00:00+02:00",
            [
                "Schedule default/platform-primary (Europe/Berlin) at 2026-03-30 10:00 CEST (UTC+0200)",
                "On call: carol (Carol Example (team lead))",
                "Next handoff: 2026-03-30 18:00 CEST (UTC+0200) = 2026-03-30 16:00 UTC",
            ],
        ),
        (
            "2026-12-24T10:00:00+01:00",
            [
                "Schedule default/platform-primary (Europe/Berlin) at 2026-12-24 10:00 CET (UTC+0100)",
                "On call: bob (Bob Example)",
                "Next handoff: 2026-12-27 00:00 CET (UTC+0100) = 2026-12-26 23:00 UTC",
            ],
        ),
    ],
)
def test_oncall_prints_person_and_next_handoff(at: str, lines: list[str]) -> None:
    done = spectra("oncall", "platform-primary", "--at", at, "--manifests", EXAMPLE)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == lines


def test_oncall_defaults_to_now_and_the_current_folder() -> None:
    done = spectra("oncall", "platform-primary", "-n", "default", cwd=REPO / EXAMPLE)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout.splitlines()
    assert out[0].startswith("Schedule default/platform-primary (Europe/Berlin) at ")
    assert out[1] in {
        "On call: alice (Alice Example)",
        "On call: bob (Bob Example)",
        "On call: carol (Carol Example (team lead))",
    }
    assert out[2].startswith("Next handoff: ")


def test_oncall_unknown_schedule_or_namespace_exits_1() -> None:
    done = spectra("oncall", "nope", "--manifests", EXAMPLE)
    assert done.returncode == 1
    assert "no Schedule named 'nope'" in done.stderr
    done = spectra("oncall", "platform-primary", "--namespace", "other", "--manifests", EXAMPLE)
    assert done.returncode == 1
    assert "no Schedule named 'platform-primary' in namespace other" in done.stderr


def test_oncall_reports_manifest_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "apiVersion: spectra.dev/v1alpha1\nkind: Schedule\nmetadata: {name: s}\n"
        "spec: {timeZone: Europe/Berlin, layers: [{name: l, participants: [a], start: 2026-01-05, rotation: 30m}]}\n",
        encoding="utf-8",
    )
    done = spectra("oncall", "s", "--manifests", str(tmp_path))
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith(f"{tmp_path / 'bad.yaml'}: Schedule/default/s: spec.layers[0].rotation: ")
    assert "at least 1h" in first


def test_oncall_rejects_times_without_offset() -> None:
    done = spectra("oncall", "platform-primary", "--at", "2026-01-05T09:00", "--manifests", EXAMPLE)
    assert done.returncode == 2
    assert "has no offset" in done.stderr
    done = spectra("oncall", "platform-primary", "--at", "tomorrow", "--manifests", EXAMPLE)
    assert done.returncode == 2
    assert "not an ISO 8601 time" in done.stderr


def test_oncall_same_name_in_several_namespaces(tmp_path: Path) -> None:
    body = (
        "apiVersion: spectra.dev/v1alpha1\nkind: Schedule\nmetadata: {{name: s, namespace: {ns}}}\n"
        "spec: {{timeZone: UTC, layers: [{{name: l, participants: [ghost], start: 2026-01-05, rotation: 1d}}]}}\n"
        "---\napiVersion: spectra.dev/v1alpha1\nkind: Contact\nmetadata: {{name: ghost, namespace: {ns}}}\n"
        "spec: {{displayName: Ghost of {ns}, email: ghost@example.com}}\n"
    )
    (tmp_path / "a.yaml").write_text(body.format(ns="team-a"), encoding="utf-8")
    (tmp_path / "b.yaml").write_text(body.format(ns="team-b"), encoding="utf-8")
    done = spectra("oncall", "s", "--manifests", str(tmp_path), "--at", "2026-02-01T00:00Z")
    assert done.returncode == 1
    assert "several namespaces (team-a, team-b)" in done.stderr
    done = spectra("oncall", "s", "-n", "team-b", "--manifests", str(tmp_path), "--at", "2026-02-01T00:00Z")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[1:] == [
        "On call: ghost (Ghost of team-b)",
        "Next handoff: none within 5 weeks",
    ]
