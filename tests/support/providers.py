"""Local stand-ins for SendGrid v3, Twilio 2010-04-01 and webhook receivers that check requests the way
the real APIs do; `Providers` serves them from a thread for tests of real spectra processes.

Each fake runs an aiohttp server on 127.0.0.1, records every request, and answers from a switchable
failure script: `fake.script = [503, 503, 503]` makes the next three requests fail, then it accepts;
an entry may be `(429, {"Retry-After": "7"})`, or `Hang(30)`: hold that request 30 s, then answer it as
usual. `fake.fail_for(150)` answers every request 503 for the next 150 s (an outage by time), and
`fake.on_request` (if set) is called for each request that passed the checks, before it is answered.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session, sessionmaker

from spectra.notify.channel import ChannelName
from spectra.notify.email import SendGridChannel
from spectra.notify.outbox import Sender


@dataclass(frozen=True)
class Hang:
    """A script entry: hold the request this long, then answer it as if the entry were not there."""

    seconds: float


Step = int | tuple[int, dict[str, str]] | Hang


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Fake:
    url: str = ""
    script: list[Step] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)

    on_request: Callable[[], None] | None = None
    down_until: float = 0.0  # time.monotonic() until which every request gets 503

    def fail_for(self, seconds: float) -> None:
        """Answer 503 to every request for the next `seconds` (a provider outage)."""
        self.down_until = time.monotonic() + seconds

    async def next_failure(self) -> tuple[int, dict[str, str]] | None:
        """What the script says about the request that just arrived: a failure to answer, or None to go on."""
        if self.on_request is not None:
            self.on_request()
        if time.monotonic() < self.down_until:
            return 503, {}
        if not self.script:
            return None
        step = self.script.pop(0)
        if isinstance(step, Hang):
            await asyncio.sleep(step.seconds)
            return None
        return step if isinstance(step, tuple) else (step, {})

    def accepted(self) -> list[Recorded]:
        return [r for r in self.requests if 200 <= r.status < 300]


@asynccontextmanager
async def _serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


# -- SendGrid -----------------------------------------------------------------------------------
@dataclass
class FakeSendGrid(Fake):
    api_key: str = "SG.test-key"
    message_ids: list[str] = field(default_factory=list)


def _sg_error(status: int, message: str, fld: str | None = None) -> web.Response:
    return web.json_response({"errors": [{"message": message, "field": fld, "help": None}]}, status=status)


def _check_mail(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "body must be a JSON object"
    persons = body.get("personalizations")
    if not isinstance(persons, list) or not persons:
        return "The personalizations field is required and must have at least one personalization."
    for p in persons:
        tos = p.get("to") if isinstance(p, dict) else None
        if (
            not isinstance(tos, list)
            or not tos
            or not all(isinstance(t, dict) and "@" in str(t.get("email")) for t in tos)
        ):
            return "The to array is required for all personalization objects, and must have at least one email."
    if not isinstance(body.get("from"), dict) or "@" not in str(body["from"].get("email", "")):
        return "The from object must be provided for every email send."
    if not body.get("subject") and not all(isinstance(p, dict) and p.get("subject") for p in persons):
        return "The subject is required."
    content = body.get("content")
    if not isinstance(content, list) or not content:
        return "Unless a valid template_id is provided, the content parameter is required."
    types = [c.get("type") for c in content if isinstance(c, dict) and c.get("value")]
    if types[:1] != ["text/plain"]:
        return "If present, text/plain content must be first, followed by text/html."
    return None


@asynccontextmanager
async def sendgrid_fake(api_key: str = "SG.test-key") -> AsyncIterator[FakeSendGrid]:
    fake = FakeSendGrid(api_key=api_key)

    async def send(request: web.Request) -> web.Response:
        raw = await request.read()
        headers = dict(request.headers)

        def answer(response: web.Response) -> web.Response:
            fake.requests.append(Recorded(request.path, headers, raw, response.status))
            return response

        if request.headers.get("Authorization") != f"Bearer {fake.api_key}":
            return answer(_sg_error(401, "The provided authorization grant is invalid, expired, or revoked"))
        if not request.headers.get("Content-Type", "").startswith("application/json"):
            return answer(_sg_error(415, "Content-Type should be application/json."))
        try:
            body = json.loads(raw)
        except ValueError:
            return answer(_sg_error(400, "Bad Request"))
        problem = _check_mail(body)
        if problem:
            return answer(_sg_error(400, problem))
        failure = await fake.next_failure()
        if failure is not None:
            status, extra = failure
            return answer(web.Response(status=status, headers=extra, text='{"errors":[{"message":"scripted"}]}'))
        fake.message_ids.append(uuid.uuid4().hex[:22])
        return answer(web.Response(status=202, headers={"X-Message-Id": fake.message_ids[-1]}))

    app = web.Application()
    app.router.add_post("/v3/mail/send", send)
    async with _serve(app) as url:
        fake.url = url
        yield fake


# -- Twilio -------------------------------------------------------------------------------------
@dataclass
class FakeTwilio(Fake):
    account_sid: str = "AC" + "0" * 32
    auth_token: str = "twilio-test-token"
    # Twilio documents no idempotency key for Messages/Calls, so by default a repeat is a new message.
    honour_idempotency: bool = False
    idempotent: dict[str, web.Response] = field(default_factory=dict)
    created: list[str] = field(default_factory=list)  # sids of messages and calls actually created

    def sent(self, kind: str) -> list[Recorded]:
        return [r for r in self.accepted() if r.path.endswith(f"/{kind}.json")]


def _tw_error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
        status=status,
    )


_sids = itertools.count(1)


@asynccontextmanager
async def twilio_fake() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio()

    async def create(request: web.Request) -> web.Response:
        raw = await request.read()
        headers = dict(request.headers)
        kind = request.match_info["kind"]

        def answer(response: web.Response) -> web.Response:
            fake.requests.append(Recorded(request.path, headers, raw, response.status))
            return response

        expected = "Basic " + base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
        if request.headers.get("Authorization") != expected or request.match_info["sid"] != fake.account_sid:
            return answer(_tw_error(401, 20003, "Authenticate"))
        if not request.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return answer(_tw_error(400, 20001, "Content-Type must be application/x-www-form-urlencoded"))
        form = await request.post()
        for name in ("To", "From"):
            if not form.get(name):
                return answer(_tw_error(400, 21604 if name == "To" else 21603, f"A '{name}' phone number is required."))
        if kind == "Messages" and not form.get("Body") and not form.get("MediaUrl"):
            return answer(_tw_error(400, 21602, "Message body is required."))
        if kind == "Calls" and not (form.get("Twiml") or form.get("Url") or form.get("ApplicationSid")):
            return answer(_tw_error(400, 21205, "Url, Twiml or ApplicationSid is required."))
        key = request.headers.get("I-Twilio-Idempotency-Token")
        if fake.honour_idempotency and key and key in fake.idempotent:
            return answer(fake.idempotent[key])
        failure = await fake.next_failure()
        if failure is not None:
            status, extra = failure
            response = _tw_error(status, 20429 if status == 429 else 20500, "scripted failure")
            response.headers.update(extra)
            return answer(response)
        prefix = "SM" if kind == "Messages" else "CA"
        sid = prefix + hashlib.md5(str(next(_sids)).encode()).hexdigest()
        body: dict[str, Any] = {
            "sid": sid,
            "account_sid": fake.account_sid,
            "to": form["To"],
            "from": form["From"],
            "status": "queued",
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{fake.account_sid}/{kind}/{sid}.json",
        }
        if kind == "Messages":
            body |= {"body": form["Body"], "num_segments": "1", "direction": "outbound-api"}
        fake.created.append(sid)
        response = web.json_response(body, status=201)
        if key:
            fake.idempotent[key] = web.json_response(body, status=201)
        return answer(response)

    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/{kind:Messages|Calls}.json", create)
    async with _serve(app) as url:
        fake.url = url
        yield fake


# -- webhook / Slack receiver -------------------------------------------------------------------
@dataclass
class FakeReceiver(Fake):
    signing_key: bytes | None = None

    def verified(self, recorded: Recorded) -> bool:
        if self.signing_key is None:
            return False
        expected = "sha256=" + hmac.new(self.signing_key, recorded.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, recorded.headers.get("X-Spectra-Signature", ""))


@asynccontextmanager
async def receiver_fake(signing_key: bytes | None = None) -> AsyncIterator[FakeReceiver]:
    fake = FakeReceiver(signing_key=signing_key)

    async def hook(request: web.Request) -> web.Response:
        raw = await request.read()
        recorded = Recorded(request.path, dict(request.headers), raw, 0)
        failure = await fake.next_failure()
        if failure is not None:
            recorded.status = failure[0]
            fake.requests.append(recorded)
            return web.Response(status=failure[0], headers=failure[1], text="no")
        if signing_key is not None and not fake.verified(recorded):
            recorded.status = 401
            fake.requests.append(recorded)
            return web.Response(status=401, text="bad signature")
        recorded.status = 200
        fake.requests.append(recorded)
        return web.Response(status=200, text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", hook)
    async with _serve(app) as url:
        fake.url = url
        yield fake


# --- for real spectra processes: the stand-ins in a thread of the test --------------------------------
# The process reaches them through SPECTRA_SENDGRID_URL and SPECTRA_TWILIO_URL (`Providers.env`).


class Providers:
    """The SendGrid and Twilio stand-ins, served from an event loop in a thread of their own."""

    def __init__(self) -> None:
        self.sendgrid: FakeSendGrid | None = None
        self.twilio: FakeTwilio | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),), daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "the provider stand-ins did not start"

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with AsyncExitStack() as stack:
            self.sendgrid = await stack.enter_async_context(sendgrid_fake())
            self.twilio = await stack.enter_async_context(twilio_fake())
            self._ready.set()
            await self._stop.wait()

    def close(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()

    def emails(self, to: str) -> list[dict[str, Any]]:
        assert self.sendgrid is not None
        mails = [record.json() for record in list(self.sendgrid.accepted())]
        return [mail for mail in mails if any(t["email"] == to for p in mail["personalizations"] for t in p["to"])]

    def texts(self, to: str) -> list[dict[str, str]]:
        assert self.twilio is not None
        forms = [dict(urllib.parse.parse_qsl(record.body.decode())) for record in list(self.twilio.sent("Messages"))]
        return [form for form in forms if form.get("To") == to]

    def env(self) -> dict[str, str]:
        assert self.sendgrid is not None
        assert self.twilio is not None
        return {
            "SENDGRID_API_KEY": self.sendgrid.api_key,
            "SPECTRA_SENDGRID_URL": self.sendgrid.url,
            "SPECTRA_EMAIL_FROM": "spectra@example.com",
            "TWILIO_ACCOUNT_SID": self.twilio.account_sid,
            "TWILIO_AUTH_TOKEN": self.twilio.auth_token,
            "TWILIO_FROM_NUMBER": "+15559990000",
            "SPECTRA_TWILIO_URL": self.twilio.url,
        }


def text_of(mail: dict[str, Any]) -> str:
    return "\n".join(part["value"] for part in mail["content"] if part["type"] == "text/plain")


def deliver_outbox_emails(sessions: sessionmaker[Session], providers: Providers) -> int:
    """Send the outbox's due emails once through the real Sender and SendGrid client to the stand-in; how many."""
    assert providers.sendgrid is not None
    channel = SendGridChannel(providers.sendgrid.api_key, "spectra@example.com", host=providers.sendgrid.url)
    sender = Sender(sessions, {ChannelName.EMAIL: channel})

    async def deliver() -> int:
        sent = await sender.send_due_once()
        await sender.stop()
        return sent

    return asyncio.run(deliver())
