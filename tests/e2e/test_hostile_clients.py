"""Hostile clients against the real `spectra web`: links and forms of the public status pages.

A poisoned Host (or X-Forwarded-Host, Forwarded, an absolute-form request target) never reaches a feed
built from SPECTRA_PUBLIC_URL, and without one a Host-built feed is private, varies by Host and has its own
ETag; cross-site form posts are refused while same-origin and header-less ones work; `+tag` and case
variants of one address share one subscribe limit, whose owner still confirms with the mailed link; a
confirm link cannot undo an unsubscribe.
"""

from __future__ import annotations

import http.client
import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest

from spectra.tokens import Purpose, Tokens
from tests.factories.manifests import components, monitor, status_page, to_yaml
from tests.support.processes import SPECTRA, free_port, get, run_spectra
from tests.support.waiting import wait_for

SECRET_KEY = "e2e-hostile-clients-secret-0123456789abcdef"
PUBLIC_URL = "https://status.acme.example"
EVIL = "evil.example"
MANIFESTS = to_yaml(
    monitor("api", url="https://api.example.com/health"),
    status_page(
        "public",
        slug="acme",
        title="Acme status",
        subscriptions={"enabled": True},
        groups=components("api", group="Core", component="API"),
    ),
)
FEEDS = ["/s/acme/feed.atom", "/s/acme/feed.rss"]


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: str


@dataclass
class Web:
    port: int
    database: Path
    log: Path

    @property
    def own(self) -> str:
        return f"127.0.0.1:{self.port}"

    def request(
        self, method: str, target: str, headers: dict[str, str] | None = None, body: bytes | None = None
    ) -> Answer:
        """One request written as given: the Host header too (none is added), and any request target."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            sent = {"Host": self.own} | (headers or {})
            if body is not None:
                sent |= {"Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(len(body))}
            for name, value in sent.items():
                connection.putheader(name, value)
            connection.endheaders(body)
            response = connection.getresponse()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode())
        finally:
            connection.close()

    def subscribe(self, email: str, headers: dict[str, str] | None = None) -> Answer:
        return self.request("POST", "/s/acme/subscribe", headers, urlencode({"email": email}).encode())

    def post(self, path: str, headers: dict[str, str] | None = None) -> Answer:
        return self.request("POST", path, headers, b"")

    def written(self, email: str) -> tuple[int, str, str | None, str | None]:
        """The subscription of `email` once written (just after the answer, which tells nothing)."""
        found = wait_for(lambda: self.subscriber(email), f"the subscription of {email}")
        assert found is not None
        return found

    def subscriber(self, email: str) -> tuple[int, str, str | None, str | None] | None:
        """(id, page, confirmed_at, unsubscribed_at) of the whole-page subscription of `email`."""
        with sqlite3.connect(self.database) as connection:
            row = connection.execute(
                "SELECT id, page_namespace || '/' || page_name, confirmed_at, unsubscribed_at FROM subscribers "
                "WHERE email = ? AND component = ''",
                (email,),
            ).fetchone()
        return (int(row[0]), str(row[1]), row[2], row[3]) if row is not None else None


def _env(**settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("SPECTRA_", "SENDGRID_", "TWILIO_"))}
    return env | {"SPECTRA_SECRET_KEY": SECRET_KEY, "PYTHONUNBUFFERED": "1"} | settings


def _serve(tmp: Path, **settings: str) -> Iterator[Web]:
    (tmp / "page.yaml").write_text(MANIFESTS)
    database = tmp / "shared.db"
    applied = run_spectra("apply", str(tmp / "page.yaml"), "--database", f"sqlite:///{database}", env=_env())
    assert applied.returncode == 0, applied.stderr
    web = Web(free_port(), database, tmp / "web.log")
    with web.log.open("w") as out:
        process = subprocess.Popen(
            [SPECTRA, "web", "--database", f"sqlite:///{database}", "--listen", web.own],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(**settings),
        )
        try:
            wait_for(lambda: get(f"http://{web.own}/readyz")[0] == 200, "spectra web to be ready", timeout=60)
            wait_for(lambda: get(f"http://{web.own}/s/acme")[0] == 200, "the page to be served", timeout=60)
            yield web
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0, web.log.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    text = web.log.read_text()
    assert "Traceback" not in text


@pytest.fixture
def web_with_public_url(tmp_path: Path) -> Iterator[Web]:
    yield from _serve(tmp_path, SPECTRA_PUBLIC_URL=PUBLIC_URL)


@pytest.fixture
def web_without_public_url(tmp_path: Path) -> Iterator[Web]:
    yield from _serve(tmp_path)


def _poisoned(web: Web, path: str) -> dict[str, Answer]:
    """The feed at `path` asked for in every spelling that names another host."""
    return {
        "evil Host": web.request("GET", path, {"Host": EVIL}),
        "evil Host with port": web.request("GET", path, {"Host": f"{EVIL}:443"}),
        "X-Forwarded-Host": web.request("GET", path, {"X-Forwarded-Host": EVIL, "X-Forwarded-Proto": "https"}),
        "Forwarded": web.request("GET", path, {"Forwarded": f"host={EVIL};proto=https"}),
        "absolute-form target": web.request("GET", f"http://{EVIL}{path}"),
        "absolute-form target and Host": web.request("GET", f"http://{EVIL}{path}", {"Host": EVIL}),
    }


def test_with_spectra_public_url_no_spelling_of_host_reaches_a_feed(web_with_public_url: Web) -> None:
    web = web_with_public_url
    for path in FEEDS:
        clean = web.request("GET", path)
        assert clean.status == 200
        assert f"{PUBLIC_URL}/s/acme" in clean.body
        assert clean.headers["cache-control"] == "public, max-age=5"
        for spelling, answer in _poisoned(web, path).items():
            assert EVIL not in answer.body, (path, spelling)
            if answer.status == 200:  # the absolute forms may be refused; nothing poisoned is served
                assert answer.body == clean.body, (path, spelling)
                assert answer.headers["etag"] == clean.headers["etag"], (path, spelling)
                assert answer.headers["cache-control"] == "public, max-age=5", (path, spelling)


def test_without_spectra_public_url_host_built_feeds_are_private_and_tagged_by_host(
    web_without_public_url: Web,
) -> None:
    web = web_without_public_url
    for path in FEEDS:
        clean = web.request("GET", path)
        assert clean.status == 200
        assert f"http://{web.own}/s/acme" in clean.body
        poisoned = _poisoned(web, path)
        for spelling, answer in poisoned.items():
            if answer.status != 200:
                continue
            assert answer.headers["cache-control"] == "private, max-age=5", (path, spelling)
            assert answer.headers["vary"] == "Host", (path, spelling)
            if EVIL in answer.body:  # only the Host header is used: the client sees its own Host back
                assert answer.headers["etag"] != clean.headers["etag"], (path, spelling)
        for spelling in ("X-Forwarded-Host", "Forwarded"):
            assert poisoned[spelling].body == clean.body, (path, spelling)
        # A cache revalidating its clean copy for another Host gets the full answer, not 304.
        revalidated = web.request("GET", path, {"Host": EVIL, "If-None-Match": clean.headers["etag"]})
        assert revalidated.status == 200


def test_cross_site_posts_are_refused_and_same_origin_and_header_less_posts_work(web_with_public_url: Web) -> None:
    web = web_with_public_url
    refused = {
        "evil@example.com": {"Origin": f"https://{EVIL}"},
        "fetch@example.com": {"Sec-Fetch-Site": "cross-site"},
        "null@example.com": {"Origin": "null"},
        "sibling@example.com": {"Origin": "https://other.acme.example", "Sec-Fetch-Site": "same-site"},
    }
    allowed = {
        "curl@example.com": {},
        "own@example.com": {"Origin": f"http://{web.own}", "Sec-Fetch-Site": "same-origin"},
        "public@example.com": {"Origin": PUBLIC_URL, "Sec-Fetch-Site": "same-origin"},
        "form@example.com": {"Origin": "null", "Sec-Fetch-Site": "same-origin"},  # a browser under no-referrer
    }
    for email, headers in refused.items():
        answer = web.subscribe(email, headers)
        assert answer.status == 403, (email, answer.body)
    for email, headers in allowed.items():
        answer = web.subscribe(email, headers)
        assert answer.status == 200, (email, answer.body)
        assert "Check your inbox" in answer.body
    for email in allowed:
        web.written(email)
    assert all(web.subscriber(email) is None for email in refused)

    # The signed links refuse cross-site posts too; GET never changes anything.
    tokens = Tokens(SECRET_KEY)
    subscriber = web.subscriber("curl@example.com")
    assert subscriber is not None
    confirm = f"/s/acme/confirm/{tokens.make(Purpose.CONFIRM, {'page': subscriber[1], 'email': 'curl@example.com', 'component': ''})}"
    assert web.request("GET", confirm, {"Origin": f"https://{EVIL}"}).status == 200
    assert web.post(confirm, {"Origin": f"https://{EVIL}"}).status == 403
    assert web.post(confirm, {"Origin": "null", "Sec-Fetch-Site": "cross-site"}).status == 403
    assert web.subscriber("curl@example.com") == subscriber  # still pending
    assert "refused a cross-site POST request" in web.log.read_text()


def test_a_confirm_link_does_not_undo_an_unsubscribe(web_with_public_url: Web) -> None:
    web = web_with_public_url
    email = "erin@example.com"
    assert web.subscribe(email).status == 200
    pending = web.written(email)
    subscriber_id, page = pending[0], pending[1]
    tokens = Tokens(SECRET_KEY)
    # The link the first mail carries, and the unsubscribe link of every notice after it.
    confirm = f"/s/acme/confirm/{tokens.make(Purpose.CONFIRM, {'page': page, 'email': email, 'component': ''})}"
    payload = {"id": subscriber_id, "page": page, "email": email, "component": ""}
    unsubscribe = f"/s/acme/unsubscribe/{tokens.make(Purpose.UNSUBSCRIBE, payload)}"

    assert "Subscription confirmed" in web.post(confirm).body
    assert "You are unsubscribed" in web.post(unsubscribe).body
    gone = web.subscriber(email)
    assert gone is not None
    assert gone[3] is not None

    for _ in range(2):  # a replayed confirm link, and again after someone asks to subscribe the address
        replayed = web.post(confirm)
        assert replayed.status == 400
        assert "This link is not valid" in replayed.body
        assert web.subscriber(email) == gone
        assert web.subscribe(email).status == 200


def test_tag_and_case_variants_share_one_limit_and_the_owner_still_confirms(web_without_public_url: Web) -> None:
    web = web_without_public_url
    variants = ["Zoe+a@Example.com", "ZOE+b@example.com", "zoe@EXAMPLE.com"]
    assert [web.subscribe(email).status for email in variants] == [200, 200, 200]
    throttled = web.subscribe("zoe+c@example.com")
    assert throttled.status == 429
    assert 0 < int(throttled.headers["retry-after"]) <= 3600  # a sliding hour at most, never a day
    assert web.subscribe("yan@example.com").status == 200  # another mailbox is not affected

    # The owner of the flooded mailbox confirms with a link that was mailed (links are never limited).
    pending = web.written("zoe+a@example.com")
    token = Tokens(SECRET_KEY).make(
        Purpose.CONFIRM, {"page": pending[1], "email": "zoe+a@example.com", "component": ""}
    )
    done = web.post(f"/s/acme/confirm/{token}", {"Origin": f"http://{web.own}", "Sec-Fetch-Site": "same-origin"})
    assert "Subscription confirmed" in done.body
    confirmed = web.subscriber("zoe+a@example.com")
    assert confirmed is not None
    assert confirmed[2] is not None
    assert web.subscriber("zoe+c@example.com") is None
