"""The publishing child (``python -m api.publisher``): it yields the CPU to the workers answering decisions."""
from __future__ import annotations

import io
import json
import os

import api.publisher as publisher


def test_the_publishing_child_lowers_its_cpu_priority_before_it_compiles(tmp_path, monkeypatch, capsys):
    niced: list[int] = []
    monkeypatch.setattr(os, "nice", lambda increment: niced.append(increment) or increment)
    request = {"database_url": f"sqlite:///{tmp_path / 'store.sqlite'}", "files": {"broken.yaml": "a: [1"},
               "author": "analyst", "message": "a broken file", "activate": True}
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(request)))
    assert publisher._main() == 0
    assert niced == [publisher.NICENESS] and publisher.NICENESS > 0
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # the publish itself still ran: the broken file is rejected with its error, nothing stored
    assert answer["rejected"]["errors"][0]["code"] == "load_syntax"


def test_a_child_that_may_not_lower_its_priority_still_publishes(tmp_path, monkeypatch, capsys):
    def refuse(increment: int) -> int:
        raise PermissionError("not permitted")

    monkeypatch.setattr(os, "nice", refuse)
    request = {"database_url": f"sqlite:///{tmp_path / 'store.sqlite'}", "files": {"broken.yaml": "a: [1"},
               "author": "analyst", "message": "a broken file", "activate": True}
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(request)))
    assert publisher._main() == 0
    assert "rejected" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])
