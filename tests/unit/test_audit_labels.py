"""Every kind of audit event the code can write has a name people read in the timeline."""

from __future__ import annotations

from gatekeeper.services.audit_labels import LABELS, label
from tests.support.audit_actions import audit_actions


def test_every_event_kind_in_the_source_has_a_label() -> None:
    found = audit_actions()
    assert len(found) > 20, "the walk finds the record calls"
    missing = {action: where for action, where in found.items() if action not in LABELS}
    assert not missing, f"add a label to services/audit_labels.py for {missing}"


def test_labels_are_sentences_not_identifiers() -> None:
    for action, text in LABELS.items():
        assert text[0].isupper(), action
        assert "_" not in text, action
        assert action not in text, action


def test_an_unknown_kind_still_reads_as_words() -> None:
    assert label("backup.restored") == "Backup restored"
    assert label("review_link.opened") == "Review link opened"
