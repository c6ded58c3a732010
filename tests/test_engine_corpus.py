"""The recorded corpus: 100,000 requests over a frozen fixture policy decide exactly as when recorded.

The corpus (tests/corpus_record.py) was decided by the engine before its restructuring; every
decision, trace included, must stay byte-for-byte the same.
"""
from __future__ import annotations

from corpus_record import COUNT, POLICY, digest, read_corpus

import engine


def test_every_recorded_decision_is_unchanged():
    policy = engine.load_policy_set(POLICY)
    changed = []
    total = 0
    for action, body, explain, want in read_corpus():
        total += 1
        got = policy.decide(action, body, explain=explain).to_dict()
        if digest(got) != want:
            changed.append((action, body, explain, got))
    assert total == COUNT
    assert not changed, f"{len(changed)} decisions changed, the first: {changed[0]}"
