"""`ordergate serve --watch` publishes an edited rules folder; a broken edit keeps the last good
version serving and prints the error at its location. Without --watch, `serve` says on start
that the folder differs from the active version."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import O2C_RULES, ROOT

INTEG_RECALC = {"action": "opportunity.recalculate",
                "input": {"context": {"system": "d365_sales", "organization": {"is_sop_integration_enabled": True}},
                          "subject": {"is_integration_user": True}}}
ROW = ("      - [PRC-01, opportunity,      calculate,                calculate,                    n/a,"
       "             calculate]")
TEST = "- name: PRC-01 opportunity.recalculate by an integration user with SOP on computes the price\n"


def free_port() -> int:
    """A port the kernel has just handed out and nothing holds: concurrent suites never pick the same one."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def obligations(port: int) -> list[str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/decisions", data=json.dumps(INTEG_RECALC).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return [o["name"] for o in json.load(resp)["obligations"]]


def wait_for(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            value = predicate()
            if value:
                return value
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def pricing(tmp_path) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(O2C_RULES, rules)
    return rules


@pytest.mark.slow
def test_serve_watch_publishes_an_edited_cell_and_refuses_a_broken_edit(tmp_path, pricing):
    port, log = free_port(), tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from cli import main; main()", "serve", "--watch", "--port", str(port),
             "--workers", "2", "--rules", str(pricing), "--database", f"sqlite:///{tmp_path / 'db.sqlite'}"],
            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert wait_for(lambda: obligations(port), 60, "the service") == ["compute_price"]
        # the analyst edits one cell of the table, and the YAML test of that cell
        rules_text = (pricing / "pricing.yaml").read_text()
        assert ROW in rules_text
        edited = rules_text.replace(ROW, ROW.removesuffix("calculate]") + "skip when integ]")
        tests = (pricing / "tests" / "pricing.yaml").read_text()
        start = tests.index(TEST)
        end = tests.index("\n\n", start)
        block = tests[start:end].replace("computes the price", "skips the price").replace(
            "obligations: [compute_price]", "obligations: [skip_price_calculation]")
        (pricing / "tests" / "pricing.yaml").write_text(tests[:start] + block + tests[end:])
        (pricing / "pricing.yaml").write_text(edited)
        began = time.monotonic()
        wait_for(lambda: obligations(port) == ["skip_price_calculation"], 30, "the edited cell to be served")
        print(f"edited cell served by both workers' server after {time.monotonic() - began:.2f} s "
              "(bench/watch_latency.py compares this with a baseline)")
        assert "published and activated" in log.read_text()

        # a broken edit: an unknown word in the same cell
        broken = edited.replace("calculate,                    n/a,             skip when integ]",
                                "calculate,                    n/a,             skip when integg]")
        assert broken != edited
        (pricing / "pricing.yaml").write_text(broken)
        wait_for(lambda: "REFUSED" in log.read_text(), 30, "the refusal")
        text = log.read_text()
        line = broken[:broken.index("integg]")].count("\n") + 1
        assert f"{pricing.as_posix()}/pricing.yaml:{line}:" in text, text[-2000:]
        assert "still serving version" in text
        assert obligations(port) == ["skip_price_calculation"]  # the last good version keeps serving
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=60)


def test_serve_says_when_the_rules_folder_differs_from_the_active_version(tmp_path, pricing, capsys):
    import engine
    from cli.watch import watch_rules
    from store import Store

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    store = Store(url)
    store.migrate()
    active = store.publish(engine.read_folder(pricing), author="t", message="m", activate=True).id
    store.dispose()
    assert watch_rules(url, pricing, active, watch=False) == active
    assert capsys.readouterr().err == ""
    text = (pricing / "pricing.yaml").read_text()
    (pricing / "pricing.yaml").write_text(text.replace(ROW, ROW.removesuffix("calculate]") + "skip when integ]"))
    watch_rules(url, pricing, active, watch=False)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{pricing} differs from the active version {active}" in err
    assert f"ordergate publish {pricing} -m" in err


def test_the_folder_watcher_reads_the_folder_only_when_it_changed(tmp_path, pricing, monkeypatch):
    from cli import watch
    from store import Store

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    Store(url, migrate=True).dispose()
    published: list[str] = []
    watcher = watch.FolderWatcher(url, pricing, interval=0.01, on_published=published.append)
    reads = []
    read = watcher._read
    monkeypatch.setattr(watcher, "_read", lambda: reads.append(1) or read())
    watcher.start()
    try:
        assert len(published) == 1 and len(reads) == 1
        time.sleep(0.5)  # about fifty looks at an unchanged folder
        assert len(reads) == 1, "an unchanged folder was read again"
        os.utime(pricing / "pricing.yaml", ns=(time.time_ns(), time.time_ns() + 10**9))  # saved, unchanged
        wait_for(lambda: len(reads) == 2, 30, "the saved folder to be read")
        time.sleep(0.2)
        assert len(reads) == 2 and len(published) == 1  # the same content: nothing published again
    finally:
        watcher.stop()
