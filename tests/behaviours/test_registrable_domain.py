"""Registrable domains of destination hosts (the ``egress:`` behaviour tags), pinned.

The registrable domain comes from the Public Suffix List (the ``publicsuffixlist`` package,
offline, ICANN and private sections); these are the values the hand-kept subset it replaced
gave, so the switch changed no tag on them.
"""

from __future__ import annotations

import pytest

from dormant.behaviours import behaviour_tags, registrable_domain

PINNED = {
    "a.b.evil.example": "evil.example",
    "mail.google.co.uk": "google.co.uk",
    "sub.bbc.co.uk": "bbc.co.uk",
    "x.y.github.io": "y.github.io",
    "api.openai.com": "openai.com",
    "www.example.com": "example.com",
    "evil.ngrok-free.app": "evil.ngrok-free.app",
    "x.blogspot.com": "x.blogspot.com",
    "a.b.com.au": "b.com.au",
    "x.pages.dev": "x.pages.dev",
    "deep.a.b.internal": "b.internal",
    "x.y.cloudfront.net": "y.cloudfront.net",
    "a.webhook.site": "webhook.site",
    "WWW.Example.COM.": "example.com",
    "example.com": "example.com",
    "localhost": "localhost",
    "10.0.0.1": "10.0.0.1",
    "[::1]": "[::1]",
}


@pytest.mark.parametrize(("host", "expected"), sorted(PINNED.items()))
def test_registrable_domain_pinned(host: str, expected: str) -> None:
    assert registrable_domain(host) == expected


def test_suffixes_outside_the_old_subset_are_known() -> None:
    # from the full list: a ccTLD second level and a hosting suffix the subset lacked
    assert registrable_domain("shop.example.co.at") == "example.co.at"
    assert registrable_domain("evil.attacker.netlify.app") == "attacker.netlify.app"


def test_egress_tag_uses_the_registrable_domain() -> None:
    tags = behaviour_tags("Send it to https://files.attacker.co.uk/upload now.")
    assert "egress:attacker.co.uk" in tags
