"""What subscriptions and notices need of a page: its key, its component names, whether it takes subscribers."""

from __future__ import annotations

import pytest

from spectra.statuspage.model import GroupView, accepts_subscriptions, component_names, page_key
from tests.factories.pages import component, replace, snapshot, subscription_page


def test_page_key_is_namespace_and_name() -> None:
    assert page_key(snapshot()) == "prod/acme-status"
    assert page_key(subscription_page("quiet", name="quiet-page")) == "default/quiet-page"


def test_component_names_in_page_order() -> None:
    page = replace(
        snapshot(),
        groups=(GroupView("Core", (component("API"), component("Web"))), GroupView("Data", (component("DB"),))),
    )
    assert component_names(page) == ["API", "Web", "DB"]
    assert component_names(replace(snapshot(), groups=())) == []


@pytest.mark.parametrize(
    ("public", "subscriptions", "accepts"),
    [(True, True, True), (False, True, False), (True, False, False), (False, False, False)],
)
def test_only_public_pages_with_subscriptions_on_accept_subscribers(
    public: bool, subscriptions: bool, accepts: bool
) -> None:
    assert accepts_subscriptions(subscription_page(public=public, subscriptions=subscriptions)) is accepts


def test_no_page_accepts_nothing() -> None:
    assert accepts_subscriptions(None) is False
