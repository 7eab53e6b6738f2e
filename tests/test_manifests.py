"""Reading manifests: files and folders, multi-document YAML, Secrets, and errors that name the spot."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from spectra.manifests import load_paths
from tests.factories.manifests import MONITOR_YAML

HEAD = (
    "apiVersion: spectra.dev/v1alpha1\nkind: Monitor\nmetadata: {name: hostile}\n"
    "spec:\n  type: http\n  http: {url: 'https://example.com'}\n"
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_folders_are_read_recursively_in_order(tmp_path: Path) -> None:
    write(tmp_path / "b" / "two.yml", MONITOR_YAML.format(name="two", namespace="default"))
    write(tmp_path / "a.yaml", MONITOR_YAML.format(name="one", namespace="default"))
    write(tmp_path / ".git" / "ignored.yaml", "not: [valid")
    write(tmp_path / "notes.txt", "not a manifest")
    result = load_paths([tmp_path])
    assert result.ok, result.errors
    assert [item.resource.name for item in result.resources] == ["one", "two"]


def test_multi_document_file_with_empty_documents(tmp_path: Path) -> None:
    text = (
        "---\n"
        + MONITOR_YAML.format(name="one", namespace="a")
        + "---\n---\n"
        + MONITOR_YAML.format(name="two", namespace="b")
    )
    result = load_paths([write(tmp_path / "m.yaml", text)])
    assert result.ok, result.errors
    assert [(i.resource.namespace, i.origin.document) for i in result.resources] == [("a", 1), ("b", 3)]


def test_errors_name_file_object_and_field(tmp_path: Path) -> None:
    bad = MONITOR_YAML.format(name="web", namespace="shop").replace("type: http", "type: http\n  intervall: 30s")
    path = write(tmp_path / "bad.yaml", bad)
    result = load_paths([path])
    assert [str(e) for e in result.errors] == [
        f"{path}: Monitor/shop/web: spec.intervall: unknown field (check the spelling; see the field reference)"
    ]


# Characters str.splitlines() breaks a line at, and other characters a terminal does not show.
UNSEEN = ["\\r", "\\n", "\\v", "\\f", "\\x1c", "\\x85", "\\u2028", "\\u2029", "\\u200b", "\\t"]


@pytest.mark.parametrize("char", UNSEEN)
@pytest.mark.parametrize(
    "template",
    [
        'apiVersion: spectra.dev/v1alpha1\nkind: StatusPage\nmetadata:\n  name: "a{c}b"\nspec: {{}}\n',
        'apiVersion: spectra.dev/v1alpha1\nkind: Monitor\nmetadata: {{name: web, namespace: "n{c}s"}}\nspec: {{}}\n',
        'apiVersion: spectra.dev/v1alpha1\nkind: "Moni{c}tor"\nmetadata: {{name: web}}\nspec: {{}}\n',
        'apiVersion: "spectra.dev/v{c}9"\nkind: Monitor\nmetadata: {{name: web}}\nspec: {{}}\n',
        'apiVersion: spectra.dev/v1alpha1\nkind: Monitor\nmetadata: {{name: web}}\nspec: {{type: "ht{c}tp"}}\n',
        "apiVersion: spectra.dev/v1alpha1\nkind: Monitor\nmetadata: {{name: web}}\n"
        'spec:\n  type: http\n  http: {{url: "https://exa{c}mple.com"}}\n',
        'apiVersion: spectra.dev/v1alpha1\nkind: Monitor\nmetadata: {{name: web}}\nspec: {{"x": "{c}"}}\n',
    ],
    ids=["name", "namespace", "kind", "apiVersion", "enum value", "url", "value of an unknown field"],
)
def test_every_error_is_one_line_whatever_the_manifest_holds(tmp_path: Path, template: str, char: str) -> None:
    """An error quotes names and values from the manifest; one with a line break or an invisible character
    is shown escaped, so each error is one line starting with its file (found by the fuzzing tier: a
    metadata.name with a carriage return split `spectra validate`'s output)."""
    path = write(tmp_path / "x.yaml", template.format(c=char))
    result = load_paths([path])
    assert result.errors
    for error in result.errors:
        shown = str(error)
        assert len(shown.splitlines()) == 1, shown
        assert shown.startswith(f"{path}: "), shown
        assert shown.isprintable(), shown


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a: [unclosed\n", "invalid YAML"),
        ("a: 1\n  b: 2\n", "invalid YAML"),
        ("key: 1\nkey: 2\n", "appears twice"),
        ("- just\n- a list\n", "must be a mapping"),
        ("metadata: {name: x}\n", "apiVersion: required"),
        ("apiVersion: spectra.dev/v1alpha1\nkind: Monitr\nmetadata: {name: x}\nspec: {}\n", "unknown kind"),
        # Hostile documents: refused with the spot named, never a crash (tests/api/test_plain_data.py).
        (HEAD + "  locations: &a [*a]\n", "contains itself"),
        ("kind: List\nitems: &i\n  - kind: List\n    items: *i\n", "contains itself"),
        (HEAD + "  x: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        (HEAD + "  interval: 99999999999999999999h\n", "too long"),
        (HEAD + '  interval: "1h"\n  tags: ["\\u001b[2J"]\n', "U+001B"),
        # Found by the fuzzing tier (tests/fuzz): each raised out of the YAML library before.
        ("\x1fkind: Monitor\n", "character #x001f is not allowed (line 1, column 1)"),
        ("a: 1\nb: x\x07\n", "(line 2, column 5)"),
        ("!!set {a}: 1\n", "a key must be a plain value"),
        ("[a, b]: 1\n", "a key must be a plain value"),
        ("a: !!int 12ab\n", "a tagged value cannot be read"),
        ("a: !!float x\n", "a tagged value cannot be read"),
        ("!!int\n", "a tagged value cannot be read"),  # empty: PyYAML raised IndexError (found by the fuzzer)
        ("a: !!int ''\n", "a tagged value cannot be read"),
        ("a: !!float ''\n", "a tagged value cannot be read"),
        ("a: !!bool maybe\n", "a tagged value cannot be read"),
        ("a: !!binary 'a'\n", "document 1: invalid YAML: failed to decode base64"),
        ("---\n---\nb: !!int\n", "document 2: invalid YAML: a tagged value cannot be read"),
        ("a: !!timestamp 2026-13-45&a\n", "apiVersion: required"),  # read as text, like kubectl
    ],
)
def test_bad_documents(tmp_path: Path, text: str, words: str) -> None:
    result = load_paths([write(tmp_path / "x.yaml", text)])
    assert len(result.errors) == 1
    assert words in str(result.errors[0])


def test_not_utf8_and_missing_paths(tmp_path: Path) -> None:
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    result = load_paths([binary, tmp_path / "missing"])
    messages = [str(e) for e in result.errors]
    assert "not UTF-8" in messages[1]
    assert messages[0] == f"{tmp_path / 'missing'}: no such file or folder"


def test_other_kinds_are_skipped_and_lists_unpacked(tmp_path: Path) -> None:
    text = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n"
        "apiVersion: v1\nkind: List\nitems:\n"
        "- apiVersion: spectra.dev/v1alpha1\n  kind: Contact\n  metadata: {name: ann}\n"
        "  spec: {displayName: Ann, email: ann@example.com}\n"
    )
    result = load_paths([write(tmp_path / "x.yaml", text)])
    assert result.ok, result.errors
    assert [i.resource.ref for i in result.resources] == ["Contact/default/ann"]
    assert [what for _, what in result.skipped] == ["v1 ConfigMap"]


HEARTBEAT = """\
apiVersion: spectra.dev/v1alpha1
kind: Monitor
metadata: {name: backup}
spec:
  type: heartbeat
  interval: 1h
  heartbeat:
    tokenFrom: {secretKeyRef: {name: tokens, key: backup}}
"""


def test_secrets_answer_secret_key_refs(tmp_path: Path) -> None:
    encoded = base64.b64encode(b"s3cret-token").decode()
    secret = f"apiVersion: v1\nkind: Secret\nmetadata: {{name: tokens}}\ndata: {{backup: {encoded}}}\n"
    result = load_paths([write(tmp_path / "m.yaml", HEARTBEAT + "---\n" + secret)])
    assert result.ok, result.errors
    assert result.get("default", "tokens", "backup") == "s3cret-token"
    assert "s3cret" not in repr(result.secrets)


@pytest.mark.parametrize(
    ("secret", "words"),
    [
        ("", "Secret 'tokens' does not exist in namespace default"),
        (
            "apiVersion: v1\nkind: Secret\nmetadata: {name: tokens}\nstringData: {other: x}\n",
            "has no key 'backup'",
        ),
        (
            "apiVersion: v1\nkind: Secret\nmetadata: {name: tokens, namespace: elsewhere}\nstringData: {backup: x}\n",
            "does not exist in namespace default",
        ),
    ],
)
def test_missing_secret_is_an_error(tmp_path: Path, secret: str, words: str) -> None:
    result = load_paths([write(tmp_path / "m.yaml", HEARTBEAT + ("---\n" + secret if secret else ""))])
    assert [e.field for e in result.errors] == ["spec.heartbeat.tokenFrom.secretKeyRef"]
    assert words in result.errors[0].message
    assert load_paths([tmp_path], check_secrets=False).ok


def test_bad_base64_never_echoes_the_value(tmp_path: Path) -> None:
    secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: tokens}\ndata: {backup: 'not*base64*TOPSECRET'}\n"
    result = load_paths([write(tmp_path / "s.yaml", secret)])
    assert [e.field for e in result.errors] == ["data.backup"]
    assert "TOPSECRET" not in str(result.errors[0])


def test_checks_across_the_set_name_file_object_and_field(tmp_path: Path) -> None:
    """The set-wide checks themselves: tests/api/test_cross_checks.py."""
    duplicate = MONITOR_YAML.format(name="web", namespace="default")
    first = write(tmp_path / "a.yaml", duplicate)
    second = write(
        tmp_path / "b.yaml", duplicate.replace("type: http", "type: http\n  escalationPolicyRef: {name: nope}")
    )
    result = load_paths([tmp_path])
    assert [str(e) for e in result.errors] == [
        f"{second}: Monitor/default/web: metadata.name: Monitor/default/web is defined twice",
        f"{second}: Monitor/default/web: spec.escalationPolicyRef.name: EscalationPolicy 'nope' does not exist"
        " in namespace default",
    ]
    assert load_paths([first]).ok


def test_two_heartbeat_monitors_with_one_push_token_are_refused(tmp_path: Path) -> None:
    """A push must name one monitor; the same value in two Secrets counts too, and is never shown."""
    second = HEARTBEAT.replace("name: backup}", "name: nightly}").replace("name: tokens,", "name: other,")
    secrets = (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: tokens}\nstringData: {backup: same-T0KEN}\n---\n"
        "apiVersion: v1\nkind: Secret\nmetadata: {name: other}\nstringData: {backup: same-T0KEN}\n"
    )
    path = write(tmp_path / "m.yaml", HEARTBEAT + "---\n" + second + "---\n" + secrets)
    result = load_paths([path])
    assert [str(e) for e in result.errors] == [
        f"{path}: Monitor/default/nightly: spec.heartbeat.tokenFrom: the same push token as Monitor/default/backup:"
        " each heartbeat monitor needs a token of its own"
    ]
    assert "T0KEN" not in str(result.errors)
    assert load_paths(
        [
            write(
                tmp_path / "m.yaml",
                HEARTBEAT
                + "---\n"
                + second
                + "---\n"
                + secrets.replace("other}\nstringData: {backup: same", "other}\nstringData: {backup: own"),
            )
        ]
    ).ok
