"""Done-when of the auditor's evidence: a candidate that changes one table cell, one guard
threshold and adds a required fact is reported as exactly those three changes, with the counts a
loop of single replays gives, in text, JSON and CSV; the publish gate refuses it and changes
nothing; reordering the pricing rules is no change in behaviour."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from ulid import ULID

import cli
import engine
from engine import compare
from store import Store

O2C = Path(__file__).parent / "fixtures" / "o2c"
CELL = ("      - [PRC-03, salesorder,       skip when integ, ",
        "      - [PRC-03, salesorder,       calculate,       ")
THRESHOLD = (
    "deny_when: {document_status: {at_least: picking_list}}",
    "deny_when: {document_status: {at_least: packing_slip}}",
)
FACT = ("facts:\n", "facts:\n  credit_checked:\n    path: resource.customer.credit_checked\n    type: boolean\n"
                    "    says: the customer's credit was checked\n")
READS = ("    reads: [permitted_functions]\n", "    reads: [permitted_functions, credit_checked]\n")


def _run(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=False)


def _edit(folder: Path, name: str, *pairs: tuple[str, str]) -> None:
    path = folder / name
    text = path.read_text()
    for old, new in pairs:
        assert text.count(old) >= 1, old
        text = text.replace(old, new, 1)
    path.write_text(text)


@pytest.fixture
def candidate(tmp_path):
    folder = tmp_path / "b"
    shutil.copytree(O2C, folder)
    _edit(folder, "pricing.yaml", CELL)
    _edit(folder, "intercompany.yaml", THRESHOLD)
    _edit(folder, "customers.yaml", FACT, READS)
    return folder


@pytest.fixture
def logged(db_url):
    """Version A published and active, and a few thousand of its decisions over all five systems."""
    published = _run("publish", O2C, "-m", "A", "--author", "ana", "--database", db_url)
    assert published.exit_code == 0, published.output
    store = Store(db_url)
    policy = store.policy_set(store.active_version_id())
    report = engine.run_tests(policy, engine.read_folder(O2C))
    requests = [(r.action, r.input) for r in report.results  # the tests of well-formed requests
                if isinstance(r.action, str) and r.action and isinstance(r.input, dict)
                and isinstance(r.input.get("context"), dict) and isinstance(r.input["context"].get("system"), str)]
    now = dt.datetime.now(dt.UTC)
    records = [{"decision_id": str(ULID()), "time": now, "action": action, "input": data,
                "result": policy.decide(action, data).to_dict(), "policy_version": policy.version}
               for _ in range(3) for action, data in requests]
    store.append_decisions(records)
    assert {r["input"]["context"]["system"] for r in records} >= {
        "d365_sales", "qad_crm", "autotask", "qad_erp", "dynamics_ax"}
    yield store, records, now
    store.dispose()


def _single_replays(store, policy) -> Counter:
    """What a loop of single replays finds: (kind, rules, system, action) -> count."""
    found: Counter = Counter()
    after = None
    while True:
        page = store.query_decisions(limit=1000, after_seq=after)
        if not page:
            return found
        after = page[-1]["seq"]
        for record in page:
            logged, replayed = record["result"], policy.decide(record["action"], record["input"]).to_dict()
            fields = {d["field"] for d in compare.differences(logged, replayed, same_version=False)}
            system = record["input"]["context"]["system"]
            if not fields:
                continue
            if not logged["allow"] and replayed["allow"]:
                key = ("deny_to_allow", tuple(sorted(set(logged["rules"]) - set(replayed["rules"]))))
            elif replayed["error"] and "error" in fields:
                key = ("new_error", (f"{replayed['error']['code']} {replayed['error']['field']}",))
            elif "obligations" in fields:
                key = ("obligations_changed", tuple(sorted(replayed["rules"])))
            else:
                key = ("other", tuple(sorted(fields)))
            found[key + (system, record["action"])] += 1


def test_impact_names_exactly_the_three_changes_with_the_counts_of_single_replays(logged, candidate, db_url):
    store, records, start = logged
    expected = _single_replays(store, engine.load_policy_set(candidate))
    assert {k[:2] for k in expected} == {
        ("obligations_changed", ("PRC-03",)), ("deny_to_allow", ("IC-02",)),
        ("new_error", ("missing_fact resource.customer.credit_checked",))}

    result = _run("impact", candidate, "--database", db_url, "--format", "json", "--examples", "2")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["replayed"] == len(records)
    got = Counter()
    for g in body["groups"]:
        rules = tuple(g["rules"]) if g["kind"] != "new_error" else (g["detail"],)
        got[(g["kind"], rules, g["system"], g["action"])] += g["count"]
        assert 1 <= len(g["examples"]) <= 2 and g["risk"] is (g["kind"] == "deny_to_allow")
    assert got == expected
    assert body["risky_flips"] == sum(n for k, n in expected.items() if k[0] == "deny_to_allow") > 0
    cell = [g for g in body["groups"] if g["kind"] == "obligations_changed"]
    assert {g["detail"] for g in cell} == {"-skip_price_calculation +compute_price"}

    text = _run("impact", candidate, "--database", db_url).stdout
    for g in body["groups"]:
        assert f"{g['kind']} {', '.join(g['rules']) or '-'} {g['system']} {g['action']}" in text
    assert "RISK deny_to_allow IC-02 dynamics_ax salesorder.delete" in text

    rows = list(csv.DictReader(io.StringIO(_run("impact", candidate, "--database", db_url, "--format", "csv").stdout)))
    assert [(r["kind"], r["rules"], r["system"], r["action"], int(r["count"])) for r in rows] == [
        (g["kind"], " ".join(g["rules"]), g["system"], g["action"], g["count"]) for g in body["groups"]]

    windowed = json.loads(_run("impact", candidate, "--database", db_url, "--format", "json",
                               "--since", (start + dt.timedelta(hours=1)).isoformat()).stdout)
    assert windowed["replayed"] == 0
    only = json.loads(_run("impact", candidate, "--database", db_url, "--format", "json",
                           "--system", "dynamics_ax").stdout)
    assert {g["system"] for g in only["groups"]} == {"dynamics_ax"}


def test_the_gate_refuses_a_candidate_with_risky_flips_and_changes_nothing(logged, candidate, db_url):
    store, _records, start = logged
    active, versions = store.active_version_id(), len(store.list_versions())
    since = (start - dt.timedelta(minutes=1)).isoformat()
    refused = _run("publish", candidate, "-m", "B", "--database", db_url, "--impact-since", since,
                   "--max-risky-flips", "0")
    assert refused.exit_code == 3, refused.output
    assert "not published:" in refused.output and "RISK deny_to_allow IC-02" in refused.output
    assert store.active_version_id() == active and len(store.list_versions()) == versions


def test_a_published_version_keeps_its_impact_report_hash(logged, tmp_path, db_url):
    from api import create_app
    from api.testing import test_config

    store, _records, start = logged
    reworded = tmp_path / "reworded"
    shutil.copytree(O2C, reworded)
    _edit(reworded, "pricing.yaml", ("a submitted order is locked", "submitted orders are locked"))
    result = _run("publish", reworded, "-m", "reword", "--database", db_url,
                  "--impact-since", (start - dt.timedelta(minutes=1)).isoformat(), "--max-risky-flips", "0")
    assert result.exit_code == 0, result.output
    version = result.stdout.strip()
    report_hash = result.output.split("impact report ")[1].split()[0]
    app = create_app(test_config(db_url, reworded))
    try:
        client = app.test_client()
        shown = client.get(f"/v1/versions/{version}").get_json()["impact_report"]
        assert shown["hash"] == report_hash and shown["risky_flips"] == 0
        history = client.get("/v1/activations").get_json()["activations"]
        assert history[0]["version_id"] == version and history[0]["impact_report"]["hash"] == report_hash
        assert history[-1]["impact_report"] is None
        posted = client.post("/v1/versions/candidate/impact", json={"files": engine.read_folder(reworded)})
        assert posted.status_code == 200 and posted.get_json()["changed"] == 0
        stored = client.post(f"/v1/versions/{version}/impact", json={"system": "d365_sales", "examples": 1})
        assert stored.status_code == 200 and stored.get_json()["filters"] == {"system": "d365_sales"}
        broken = client.post("/v1/versions/candidate/impact", json={"files": {"x.yaml": "system: [\n"}})
        assert broken.status_code == 422 and broken.get_json()["error"]["errors"]
    finally:
        app.extensions["ordergate"].close()


def test_reordering_the_pricing_rules_is_no_change_in_behaviour(tmp_path):
    folder = tmp_path / "reordered"
    shutil.copytree(O2C, folder)
    doc = yaml.safe_load((folder / "pricing.yaml").read_text())
    doc["rules"].reverse()
    doc["rules"][-1]["body"].reverse()          # the price-computation table (hit policy unique)
    doc["facts"] = dict(reversed(doc["facts"].items()))
    (folder / "pricing.yaml").write_text(yaml.safe_dump(doc, sort_keys=True, width=200))
    result = _run("diff", O2C, folder)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "no change in behaviour (the content hash differs only by order and layout)"
    changed = tmp_path / "changed"
    shutil.copytree(O2C, changed)
    _edit(changed, "pricing.yaml", CELL)
    result = _run("diff", O2C, changed)
    assert result.exit_code == 1
    assert "~ d365_sales PRC-03 (table row)" in result.stdout
    assert "    cell create: `skip when integ` -> `calculate`" in result.stdout
    assert "  d365_sales salesorder.create: 1 of 4 (obligations_changed 1); rules PRC-03" in result.stdout


def test_the_api_publish_gate_refuses_with_409_and_changes_nothing(logged, candidate, db_url, tmp_path):
    from api import create_app
    from api.testing import test_config

    store, _records, start = logged
    since = (start - dt.timedelta(minutes=1)).isoformat()
    active, versions = store.active_version_id(), len(store.list_versions())
    app = create_app(test_config(db_url, O2C))
    try:
        client = app.test_client()
        files = engine.read_folder(candidate)
        expected = client.post("/v1/versions/candidate/impact", json={"files": files, "since": since}).get_json()
        assert expected["risky_flips"] > 0

        refused_at = expected["risky_flips"] - 1
        refused = client.post("/v1/versions", json={"files": files, "message": "B", "impact_since": since,
                                                    "max_risky_flips": refused_at})
        assert refused.status_code == 409, refused.get_json()
        error = refused.get_json()["error"]
        assert error["code"] == "impact_refused" and "DENY to ALLOW" in error["message"]
        assert (error["risky_flips"], error["max_risky_flips"]) == (expected["risky_flips"], refused_at)
        assert error["impact_report"] == expected
        assert store.active_version_id() == active and len(store.list_versions()) == versions

        # the gate replays the log: while another whole-log read runs here it is refused, nothing stored
        from api import whole_log
        with whole_log.one_at_a_time(AssertionError):
            busy = client.post("/v1/versions", json={"files": files, "message": "B", "impact_since": since,
                                                     "max_risky_flips": refused_at})
        assert busy.status_code == 429 and busy.headers["Retry-After"] == str(whole_log.RETRY_AFTER)
        assert busy.get_json()["error"]["code"] == "busy" and "impact replay" in busy.get_json()["error"]["message"]
        assert store.active_version_id() == active and len(store.list_versions()) == versions

        bad_fields = ({"max_risky_flips": 0}, {"impact_since": "last week"}, {"impact_since": 7},
                      {"impact_since": since, "max_risky_flips": -1}, {"impact_since": since, "max_risky_flips": True},
                      {"max_risky_flip": 0})
        for bad in bad_fields:
            answer = client.post("/v1/versions", json={"files": files, "message": "B", **bad})
            assert answer.status_code == 400 and answer.get_json()["error"]["reason"] == "invalid_parameter", bad
        # allowed as many risky flips as it has, B passes the gate and is rejected by its own failing YAML tests
        allowed = client.post("/v1/versions", json={"files": files, "message": "B", "impact_since": since,
                                                    "max_risky_flips": expected["risky_flips"]})
        assert allowed.status_code == 422 and allowed.get_json()["error"]["code"] == "publish_rejected"
        assert store.active_version_id() == active and len(store.list_versions()) == versions

        # a reworded policy flips nothing: stored, activated, and its report's hash kept with the version
        reworded = tmp_path / "reworded"
        shutil.copytree(O2C, reworded)
        _edit(reworded, "pricing.yaml", ("a submitted order is locked", "submitted orders are locked"))
        files = engine.read_folder(reworded)
        report = client.post("/v1/versions/candidate/impact", json={"files": files, "since": since}).get_json()
        passed = client.post("/v1/versions", json={"files": files, "message": "reword", "impact_since": since,
                                                   "max_risky_flips": 0})
        assert passed.status_code == 201, passed.get_json()
        version = passed.get_json()["id"]
        kept = passed.get_json()["impact_report"]
        assert kept["hash"] == report["hash"] and kept["risky_flips"] == 0 and kept["since"] == since
        assert client.get(f"/v1/versions/{version}").get_json()["impact_report"] == kept
        assert client.get("/v1/activations").get_json()["activations"][0]["impact_report"] == kept
        assert store.active_version_id() == version

        # without the gate nothing is replayed and no report is kept
        plain = client.post("/v1/versions", json={"files": engine.read_folder(O2C), "message": "back to A"})
        assert plain.status_code == 201 and plain.get_json()["impact_report"] is None
    finally:
        app.extensions["ordergate"].close()


def _impact_child(args: list[str], tmp_path: Path, *, terminal: bool) -> tuple[str, str]:
    """``ordergate impact ARGS`` in a child process whose stderr is a pseudo-terminal (``terminal``)
    or a pipe: (stdout, stderr). Stdout goes to a file either way."""
    import os
    import pty
    import subprocess
    import sys

    command = [sys.executable, "-c", "import cli; cli.main()", "impact", *args]
    out_path = tmp_path / f"stdout-{terminal}.json"
    with out_path.open("w") as out:
        if not terminal:
            done = subprocess.run(command, stdout=out, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                  text=True, timeout=300, check=False)
            assert done.returncode == 0, done.stderr
            return out_path.read_text(), done.stderr
        leader, follower = pty.openpty()
        child = subprocess.Popen(command, stdout=out, stderr=follower, stdin=subprocess.DEVNULL)
        os.close(follower)
        seen = b""
        while True:  # read the terminal until the child has closed it
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: no process holds the terminal any more
                break
            if not data:
                break
            seen += data
        os.close(leader)
        assert child.wait(timeout=300) == 0, seen.decode(errors="replace")
    return out_path.read_text(), seen.decode(errors="replace")


def test_the_impact_progress_bar_shows_on_a_terminal_only(logged, candidate, db_url, tmp_path):
    _store, records, _start = logged
    assert len(records) > 2000  # progress is reported every 1,000 log entries
    args = [str(candidate), "--database", db_url, "--format", "json", "--examples", "1"]

    out, err = _impact_child(args, tmp_path, terminal=True)
    shown = [int(n) for n in re.findall(r"replaying\s+\[[#-]*\]\s+(\d+)%", err)]
    assert shown and shown == sorted(shown) and 0 < max(shown) <= 100, err   # a bar that moves forward
    assert json.loads(out)["replayed"] == len(records)   # the report itself is untouched

    piped_out, piped_err = _impact_child(args, tmp_path, terminal=False)
    assert "replaying" not in piped_err and "%" not in piped_err, piped_err
    assert json.loads(piped_out)["replayed"] == len(records)
    assert json.loads(piped_out)["hash"] == json.loads(out)["hash"]


def test_equal_requests_replayed_once_give_the_report_of_replaying_each(logged, candidate, monkeypatch):
    import api.evidence as evidence

    store, records, _ = logged
    policy = engine.load_policy_set(candidate)
    once = {system: evidence.impact(store, policy, examples=3, system=system) for system in (None, "d365_sales")}
    assert once[None]["replayed"] == len(records) and once[None]["changed"] > 0
    monkeypatch.setattr(evidence, "REPLAY_MEMO", 1)       # nothing kept: every request decided again
    for system, body in once.items():
        assert evidence.impact(store, policy, examples=3, system=system) == body


def test_the_impact_report_hash_is_written_in_the_publishing_transaction(store):
    """A version published through the gate is never live without its report's hash: the two are
    one transaction, so a publish that fails before its commit leaves neither."""
    from store.impact_reports import impact_reports

    files = engine.read_folder(O2C)
    impact = {"hash": "sha256:" + "ab" * 32, "risky_flips": 0, "since": "2026-01-01T00:00:00+00:00"}

    def fail() -> None:
        raise RuntimeError("the database went away before the commit")

    store._hooks["publish_before_commit"] = fail
    with pytest.raises(RuntimeError):
        store.publish(files, author="analyst", message="gated", impact=impact)
    assert store.active_version_id() is None and store.list_versions() == []
    assert impact_reports(store) == {}
    del store._hooks["publish_before_commit"]
    version = store.publish(files, author="analyst", message="gated", impact=impact)
    assert store.active_version_id() == version.id
    recorded = impact_reports(store)[version.id]
    assert (recorded["hash"], recorded["risky_flips"], recorded["since"]) == (
        impact["hash"], 0, impact["since"])
