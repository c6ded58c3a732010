"""The publishing child (``python -m api.publisher``): it yields the CPU to the workers answering decisions."""
from __future__ import annotations

import io
import json
import os
import sys
import threading
import typing as t

import pytest

import api.publisher as publisher
from api.compiled import Artifacts
from api.testing import SHOP


def _request(tmp_path, files, **more):
    return {"database_url": f"sqlite:///{tmp_path / 'store.sqlite'}", "files": files, "author": "analyst",
            "message": "a change", "activate": True, **more}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own CPU priority is Linux's")
def test_the_child_checks_at_a_lower_priority_and_stores_at_the_servers(tmp_path, monkeypatch, capsys):
    """The compile and the tests run on a thread of lower CPU priority; the transaction, which holds the
    writer lock the workers' decision logs wait for, at the server's own; the compiled version is
    written for the workers before that transaction."""
    from store import Store
    from store import publish as publishing
    from store.versions import Versions

    Store(f"sqlite:///{tmp_path / 'store.sqlite'}").migrate()
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: dict[str, t.Any] = {}
    check = publishing.compile_and_test

    def compile_and_test(files):
        seen["check"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        return check(files)

    monkeypatch.setattr(publishing, "compile_and_test", compile_and_test)
    activate = Versions.activate_locked
    folder = tmp_path / "compiled"

    def activate_locked(self, conn, head, version_id, **kwargs):
        seen["store"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        seen["shared before"] = Artifacts(folder).path(version_id).exists()
        return activate(self, conn, head, version_id, **kwargs)

    monkeypatch.setattr(Versions, "activate_locked", activate_locked)
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(_request(tmp_path, SHOP, artifacts=str(folder)))))
    assert publisher._main() == 0
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "version" in answer, answer
    assert seen == {"check": min(base + publisher.NICENESS, 19), "store": base, "shared before": True}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base
    assert Artifacts(folder).load(answer["version"]) is not None


def test_a_child_that_may_not_lower_its_priority_still_publishes(tmp_path, monkeypatch, capsys):
    def refuse(*args: int) -> int:
        raise PermissionError("not permitted")

    monkeypatch.setattr(os, "nice", refuse)
    monkeypatch.setattr(os, "setpriority", refuse)
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(_request(tmp_path, {"broken.yaml": "a: [1"}))))
    assert publisher._main() == 0
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # the publish itself still ran: the broken file is rejected with its error, nothing stored
    assert answer["rejected"]["errors"][0]["code"] == "load_syntax"


def test_a_rejected_candidate_raised_on_the_checking_thread_reaches_the_caller():
    from store import PublishRejected

    def check() -> None:
        raise PublishRejected(errors=[{"code": "x"}])

    with pytest.raises(PublishRejected):
        publisher.lowered(check)
    assert publisher.lowered(lambda: 42) == 42


@pytest.mark.skipif(not publisher.FORKSERVER, reason="the platform has no fork server")
def test_a_publish_in_a_forked_child_is_stored_and_a_slow_one_is_stopped_with_nothing_stored(tmp_path):
    from store import Store, StoreError

    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    store = Store(url)
    store.migrate()
    try:
        with pytest.raises(StoreError, match="took longer than 0.001 s and was stopped; nothing changed"):
            publisher.publish(store, url, SHOP, author="analyst", message="too slow", activate=True, timeout=0.001)
        assert store.list_versions() == []
        version = publisher.publish(store, url, SHOP, author="analyst", message="v1", activate=True)
        assert store.active_version_id() == version.id and version.files == SHOP
    finally:
        store.dispose()


@pytest.mark.skipif(not publisher.FORKSERVER, reason="the platform has no fork server")
def test_a_forked_child_that_ends_without_an_answer_is_a_store_error(tmp_path):
    from store import StoreError

    with pytest.raises(StoreError, match=r"the publishing process failed \(exit 1\)"):
        publisher._forked({"database_url": f"sqlite:///{tmp_path / 'store.sqlite'}"}, 60)


def test_the_spawned_child_answers_as_the_forked_one(tmp_path):
    answer = publisher._spawned(_request(tmp_path, {"broken.yaml": "a: [1"}), 120)
    assert answer["rejected"]["errors"][0]["code"] == "load_syntax"
