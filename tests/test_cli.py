"""The `spectra` command as users and CI run it: a real process, real files."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.paths import CRDS, EXAMPLES, REPO
from tests.support.processes import SPECTRA, run_spectra

# Every test here runs the real `spectra` command in a process of its own: the e2e tier.
pytestmark = pytest.mark.e2e


def spectra(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_spectra(*args, cwd=cwd, env=env)


def test_validate_examples_passes() -> None:
    done = spectra("validate", "examples/")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr.strip().endswith(": ok")


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()))
def test_each_example_validates_on_its_own(example: str) -> None:
    done = spectra("validate", f"examples/{example}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (EXAMPLES / example / "README.md").is_file()


BAD_SET = """\
apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata: {name: web, namespace: shop}
spec:
  type: http
  interval: 5s
  timeout: 10s
  escalationPolicyRef: {name: missing}
  http: {url: "http://169.254.169.254/"}
---
apiVersion: spectra.dev/v1alpha1
kind: Organization
metadata: {name: acme, namespace: nope}
spec: {displayName: Acme}
---
key: [broken
"""


@pytest.mark.parametrize(
    "document",
    [
        "kind: List\nitems: &i\n  - kind: List\n    items: *i\n",  # a List that contains itself
        "apiVersion: spectra.dev/v1alpha1\nkind: Monitor\nmetadata: {name: d}\nspec: " + "[" * 20000 + "]" * 20000,
        "apiVersion: spectra.dev/v1alpha1\nkind: Monitor\nmetadata: {name: h}\n"
        "spec: {type: http, interval: 99999999999999999999h, http: {url: 'https://example.com'}}\n",
        'apiVersion: spectra.dev/v1alpha1\nkind: StatusPage\nmetadata: {name: c}\nspec: {slug: c, title: "a\\u0007b"}\n',
    ],
    ids=["self-containing-list", "deep-nesting", "huge-duration", "control-character"],
)
def test_validate_refuses_hostile_documents_with_exit_1(tmp_path: Path, document: str) -> None:
    (tmp_path / "hostile.yaml").write_text(document, encoding="utf-8")
    done = spectra("validate", str(tmp_path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stdout.startswith(f"{tmp_path / 'hostile.yaml'}: ")


def test_validate_reports_every_error_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_SET, encoding="utf-8")
    (tmp_path / "second.yaml").write_text(
        "apiVersion: spectra.dev/v1alpha1\nkind: Contact\nmetadata: {name: x}\nspec: {}\n"
    )
    done = spectra("validate", str(tmp_path))
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert (
        f"{path}: Monitor/shop/web: spec.http.url: 169.254.169.254 is a link-local / cloud metadata address" in lines[0]
    )
    assert any(line.startswith(f"{path}: document 3: invalid YAML") for line in lines)
    assert f"{tmp_path / 'second.yaml'}: Contact/default/x: spec.displayName: required field is missing" in lines
    for line in lines:
        file, obj, field, message = line.split(": ", 3)
        assert file.endswith(".yaml")
        assert all((obj, field, message))
    assert "error(s)" in done.stderr


def test_validate_missing_path_and_usage_errors(tmp_path: Path) -> None:
    done = spectra("validate", str(tmp_path / "nope"))
    assert done.returncode == 1
    assert "no such file or folder" in done.stdout
    assert spectra("validate").returncode == 2  # usage error: no paths


def test_validate_skip_secrets(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(
        "apiVersion: spectra.dev/v1alpha1\nkind: Monitor\nmetadata: {name: hb}\n"
        "spec: {type: heartbeat, heartbeat: {tokenFrom: {secretKeyRef: {name: s, key: k}}}}\n"
    )
    assert spectra("validate", str(tmp_path)).returncode == 1
    assert spectra("validate", "--skip-secrets", str(tmp_path)).returncode == 0


def test_crds_prints_every_kind() -> None:
    done = spectra("crds")
    assert done.returncode == 0
    kinds = [doc["spec"]["names"]["kind"] for doc in yaml.safe_load_all(done.stdout)]
    assert sorted(kinds) == sorted(
        [
            "Monitor",
            "Contact",
            "Schedule",
            "EscalationPolicy",
            "StatusPage",
            "MaintenanceWindow",
            "Organization",
        ]
    )


def test_crds_output_dir_matches_repo(tmp_path: Path) -> None:
    assert spectra("crds", "-o", str(tmp_path)).returncode == 0
    for path in CRDS.glob("*.yaml"):
        assert (tmp_path / path.name).read_text() == path.read_text()


def test_apply_then_db_current(sqlite_url: str) -> None:
    url = sqlite_url
    done = spectra("apply", "examples/", "--database", url)
    assert done.returncode == 0, done.stderr
    assert "30 created, 0 updated, 0 unchanged, 0 deleted" in done.stderr
    again = spectra("apply", "examples/", "--database", url)
    assert "0 created, 0 updated, 30 unchanged, 0 deleted" in again.stderr
    current = spectra("db", "current", "--database", url)
    assert current.returncode == 0
    revision, _, rest = current.stdout.partition(" ")
    assert revision != "empty"
    assert revision in rest


def test_apply_refuses_invalid_set_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(BAD_SET)
    database = tmp_path / "spectra.db"
    done = spectra("apply", str(tmp_path), "--database", f"sqlite:///{database}")
    assert done.returncode == 1
    assert "nothing applied" in done.stderr
    assert not database.exists()


def test_db_upgrade_uses_environment_url(tmp_path: Path) -> None:
    database = tmp_path / "env.db"
    env = {**os.environ, "SPECTRA_DATABASE_URL": f"sqlite:///{database}"}
    done = spectra("db", "upgrade", env=env)
    assert done.returncode == 0, done.stderr
    assert database.exists()


def test_unreachable_database_is_a_clean_error(tmp_path: Path) -> None:
    done = spectra("db", "upgrade", "--database", "mysql+pymysql://root:pw@127.0.0.1:1/none")
    assert done.returncode == 69
    assert "Traceback" not in done.stderr
    assert "database error" in done.stderr
    assert "pw" not in done.stderr.replace("pymysql", "")


def test_readme_walkthrough_manifests_validate(tmp_path: Path) -> None:
    """The "From zero to paging" manifests in the README are what users paste: they must be valid."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    walkthrough = text[text.index("### From zero to paging") : text.index("## Validate manifests in pull requests")]
    blocks = [block.split("```", 1)[0] for block in walkthrough.split("```yaml\n")[1:]]
    assert blocks, "the walkthrough has its manifests in ```yaml blocks"
    manifest = tmp_path / "oncall.yaml"
    manifest.write_text("\n---\n".join(blocks))
    done = subprocess.run([SPECTRA, "validate", str(manifest)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("probe:\n  monitorsPerReplica: 0\n", "probe.monitorsPerReplica: Input should be greater than or equal to 1"),
        ("probe:\n  imagee: x\n", "probe.imagee: Extra inputs are not permitted"),
        ("- not a mapping\n", "expected a mapping at the top level"),
        ("probe: [\n", "while parsing"),
    ],
)
def test_operator_refuses_bad_settings_naming_file_and_field(tmp_path: Path, config: str, message: str) -> None:
    path = tmp_path / "operator.yaml"
    path.write_text(config)
    done = subprocess.run(
        [SPECTRA, "operator", "--config", str(path), "--database", "sqlite:///x.db"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"spectra: {path}: ")
    assert message in done.stderr
    assert "Traceback" not in done.stderr


# --- spectra oncall ---------------------------------------------------------------------------------

EXAMPLE = "examples/03-on-call"


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
