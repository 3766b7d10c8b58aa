"""A sign-off stores only what its item asks for: extra form fields never reach the record."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from flask import Flask

from gatekeeper.db.base import db
from gatekeeper.db.models import Signoff
from gatekeeper.domain.clock import FixedClock
from tests.functional.api_helpers import EVIDENCE
from tests.functional.web_helpers import client
from tests.support.flows import prepare
from tests.support.link_forms import positive_form, request_prefixes

pytestmark = pytest.mark.security

HOSTILE = "javascript:alert(document.cookie)"
EVIDENCE_FIELD = re.compile(r'name="(r\d+)-evidence"')


@pytest.mark.parametrize(
    "signer",
    [
        "raj@example.com",  # items asking for a link, for text, and for nothing
        "settlement-lead@example.com",  # key-user validation never asks for evidence
    ],
)
def test_evidence_on_an_item_that_asks_for_none_is_not_stored(
    app: Flask, clock: FixedClock, signer: str
) -> None:
    tokens = prepare(app, clock)
    browser = client(app)
    path = f"/s/{tokens[signer]}"
    page = browser.get(path).text
    asking = set(EVIDENCE_FIELD.findall(page))
    not_asking = [prefix for prefix in request_prefixes(page) if prefix not in asking]
    assert not_asking, "the link has a request without an evidence field"
    form = positive_form(page)
    form.update({f"{prefix}-evidence": HOSTILE for prefix in not_asking})
    assert browser.post(path, data=form).status_code == 200
    stored = {f"r{s.request_id}": s.evidence for s in db.session.scalars(sa.select(Signoff))}
    assert set(stored) == set(request_prefixes(page))
    assert {prefix: stored[prefix] for prefix in not_asking} == dict.fromkeys(not_asking, "")
    assert {prefix: stored[prefix] for prefix in asking} == dict.fromkeys(asking, EVIDENCE)
