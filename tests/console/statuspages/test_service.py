"""Ad-hoc maintenance started through the console's service holds the page a down monitor would send, through
the real alerter (spectra.domain.maintenance reads it as a window: one mechanism), and ending it early
releases the page at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from spectra.auth.identity import Actor
from spectra.console.statuspages import service
from spectra.console.statuspages.service import Acting, NewMaintenance, Publisher
from spectra.domain.maintenance import load_windows
from spectra.store import Role
from spectra.tokens import Tokens
from tests.factories.accounts import member, organization_resource
from tests.factories.alerting import World, make_world

PAGE = """
apiVersion: spectra.dev/v1alpha1
kind: StatusPage
metadata: {name: main}
spec:
  slug: main
  title: Main status
  groups:
    - name: Core
      components:
        - name: Website
          monitorSelector: {matchLabels: {tier: web}}
"""


def acting(world: World) -> Acting:
    with world.sessions.begin() as session:
        organization_resource(session, "acme", ["default"])
        ada = member(session, "ada@acme.example", "acme", Role.ADMIN)
    return Acting(ada, Actor.of(ada, ip="127.0.0.1"), Publisher(Tokens("test-key")))


def start(world: World, who: Acting, until: str = "1h") -> int:
    with world.sessions.begin() as session:
        asked = NewMaintenance("Deploy", ["Website"], until, "")
        return service.start_maintenance(session, who, "default", "main", asked, now=world.clock()).id


async def test_ad_hoc_maintenance_holds_the_page_and_ending_it_releases_it(sessions: sessionmaker[Session]) -> None:
    world = make_world(sessions)
    world.apply(PAGE)
    who = acting(world)
    maintenance_id = start(world, who)
    alerter = world.alerter()
    world.set_state("web", "down")
    await world.tick(alerter)
    [incident] = world.incidents()
    assert world.outbox() == []
    suppressed = [text for kind, text in world.events(incident.id) if kind == "suppressed"]
    assert any("default/Deploy" in text for text in suppressed)
    world.clock.advance(minutes=10)
    await world.tick(alerter)
    assert world.outbox() == []
    with world.sessions.begin() as session:
        ended = service.end_maintenance(session, who, ("default", "main", maintenance_id), now=world.clock())
    assert ended.ended_at == world.clock()
    assert not ended.active
    await world.tick(alerter)
    assert sorted(row.channel for row in world.outbox()) == ["sms", "voice"]


async def test_until_passes_by_itself_and_then_it_holds_nothing(sessions: sessionmaker[Session]) -> None:
    world = make_world(sessions)
    world.apply(PAGE)
    start(world, acting(world), until="30m")
    with world.sessions() as session:
        [window] = [w for w in load_windows(session) if w.adhoc_id is not None]
    assert window.spec.monitors == ["web"]
    assert window.spec.status_pages == ["main"]
    assert window.occurrence_at(world.clock()) is not None
    assert window.occurrence_at(world.clock() + timedelta(minutes=30)) is None


def test_a_component_without_monitors_cannot_be_put_in_maintenance(sessions: sessionmaker[Session]) -> None:
    world = make_world(sessions)
    world.apply(PAGE.replace("monitorSelector: {matchLabels: {tier: web}}", "monitors: [nothing-here]"))
    who = acting(world)
    with pytest.raises(service.Refused) as refused:
        start(world, who)
    assert str(refused.value) == service.no_monitors("Website")
    with world.sessions() as session:
        assert [w for w in load_windows(session) if w.adhoc_id is not None] == []
