"""Every kind of audit event the code can write has a name people read in the timeline."""

from __future__ import annotations

from gatekeeper.services.labels import ACTIONS, action_label
from tests.support.audit_actions import audit_actions


def test_every_event_kind_in_the_source_has_a_label() -> None:
    found = audit_actions()
    assert len(found) > 20, "the walk finds the record calls"
    missing = {action: where for action, where in found.items() if action not in ACTIONS}
    assert not missing, f"add a label to services/labels.py for {missing}"


def test_labels_are_sentences_not_identifiers() -> None:
    for action, text in ACTIONS.items():
        assert text[0].isupper(), action
        assert "_" not in text, action
        assert action not in text, action


def test_an_unknown_kind_still_reads_as_words() -> None:
    assert action_label("backup.restored") == "Backup restored"
    assert action_label("review_link.opened") == "Review link opened"
