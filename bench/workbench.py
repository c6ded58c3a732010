"""The workbench's pages with a large decision log: p50/p95 of each page against a baseline measured
in the same run (the JSON endpoint ``GET /v1/versions`` and ``/healthz``, through the same app).

    .venv/bin/python bench/workbench.py                  # 100,000 logged decisions, SQLite
    .venv/bin/python bench/workbench.py --database postgresql+psycopg://postgres@127.0.0.1:5432/og_bench
    .venv/bin/python bench/workbench.py --quick          # a smoke run: 2,000 decisions, checks only

The log is filled with real decisions of the order-to-cash fixture policy (decided by the engine,
appended through the store's own log in batches), spread over 30 days, with order numbers and
customer codes in the input. Each page is requested ``--requests`` times in the app (Flask's test
client: the server's time, without a network), signed in as an auditor. The target is every page
under 200 ms at p95 with 100,000 decisions. A --database must be empty (the bench fills its log).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import statistics
import sys
import tempfile
import time
import typing as t
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RULES = ROOT / "tests" / "fixtures" / "o2c"
AUDIT = "bench-auditor-7c1e5a9f3b2d8064"
D365 = "d365_sales"
DAYS = 30
#: the try page's form: an ordinary user edits a submitted order with SOP on (PRC-09 denies it)
TRY_FORM = {"action": f"{D365}/salesorder.update", "fact.context.organization.is_sop_integration_enabled": "true",
            "fact.subject.is_integration_user": "false", "fact.resource.salesorder.statecode": '"submitted"'}


def _input(rng: random.Random, i: int, system: str) -> dict[str, t.Any]:
    return {"context": {"system": system, "organization": {"is_sop_integration_enabled": rng.random() < 0.7}},
            "subject": {"is_integration_user": rng.random() < 0.3, "name": f"user-{i % 50}"},
            "resource": {"salesorder": {"statecode": rng.choice(["active", "submitted", "active", "fulfilled"]),
                                        "ordernumber": f"SO-{i:07d}", "customer": f"CUST-{i % 500:04d}"}}}


def records(policy_set: t.Any, count: int, seed: int = 7) -> t.Iterator[dict[str, t.Any]]:
    """``count`` decisions of the fixture policy, oldest first, over the last ``DAYS`` days."""
    rng = random.Random(seed)
    others = [(system, actions[0]) for system, actions in sorted(policy_set.catalogue.items()) if system != D365]
    d365 = ["salesorder.update", "salesorder_line.create", "salesorder.submit", "opportunity.recalculate"]
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=DAYS)
    step = dt.timedelta(days=DAYS) / max(count, 1)
    for i in range(count):
        system, action = (D365, rng.choice(d365)) if rng.random() < 0.95 else rng.choice(others)
        facts = _input(rng, i, system)
        yield {"decision_id": f"01BENCHWB{i:017d}", "time": start + step * i, "action": action, "input": facts,
               "result": policy_set.decide(action, facts).to_dict(), "policy_version": policy_set.version,
               "caller": rng.choice(["crm-adapter", "erp-adapter", "portal"]), "request_id": None}


def fill(store: t.Any, policy_set: t.Any, count: int) -> float:
    started = time.perf_counter()
    batch: list[dict[str, t.Any]] = []
    for record in records(policy_set, count):
        batch.append(record)
        if len(batch) == 5000:
            store.append_decisions(batch)
            batch = []
    if batch:
        store.append_decisions(batch)
    return time.perf_counter() - started


def _sign_in(client: t.Any) -> None:
    page = client.get("/ui/sign-in").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert client.post("/ui/sign-in", data={"token": AUDIT, "csrf_token": token}).status_code == 303


def _csrf(client: t.Any, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


def pages(store: t.Any, count: int) -> dict[str, tuple[str, str | None, t.Callable[[str], bool]]]:
    """name -> (method, path, check of the body) of each page measured."""
    version = store.active_version_id()
    newest = store.query_decisions(limit=1, newest_first=True)[0]
    middle = f"SO-{count // 2:07d}"
    denied_09 = store.query_decisions(rule="PRC-09", limit=1)
    day = (dt.datetime.now(dt.UTC) - dt.timedelta(days=DAYS // 2)).replace(microsecond=0)
    rows = re.compile(r"<tr>\s*<td><a href=\"/ui/decisions/")
    some = lambda body: bool(rows.search(body))  # noqa: E731
    return {
        "versions": ("GET", "/ui/versions", lambda b: "badge active" in b),
        "version": ("GET", f"/ui/versions/{version}", lambda b: "pricing.yaml" in b),
        "log: newest 50": ("GET", "/ui/decisions", some),
        "log: PRC-09 denials": ("GET", "/ui/decisions?rule=PRC-09&allow=denied",
                                lambda b: bool(denied_09) == some(b)),
        "log: action": ("GET", "/ui/decisions?action=salesorder.submit", some),
        "log: rare system": ("GET", "/ui/decisions?system=qad_erp", some),
        "log: one day": ("GET", f"/ui/decisions?since={day.isoformat()[:19]}&until="
                                f"{(day + dt.timedelta(days=1)).isoformat()[:19]}", some),
        "log: caller + denied": ("GET", "/ui/decisions?caller=portal&allow=denied", some),
        "log: version": ("GET", f"/ui/decisions?version={version}", some),
        "log: customer code": ("GET", "/ui/decisions?text=CUST-0042", some),
        # a search into the input reads the log in bounded steps: a page shows the match or says how far it read
        "log: one order number": ("GET", f"/ui/decisions?text={middle}",
                                  lambda b: f"= {middle}" in b or "searched the log as far as" in b),
        "log: text in one day": ("GET", f"/ui/decisions?text=CUST-0042&since={day.isoformat()[:19]}&until="
                                        f"{(day + dt.timedelta(days=1)).isoformat()[:19]}", some),
        "log: no match (scan)": ("GET", "/ui/decisions?text=NO-SUCH-ORDER", lambda b: "No logged decision" in b),
        "log: oldest page": ("GET", "/ui/decisions?older=60", some),
        "decision": ("GET", f"/ui/decisions/{newest['decision_id']}", lambda b: "is intact" in b),
        "decision + replay": ("GET", f"/ui/decisions/{newest['decision_id']}?replay={version}",
                              lambda b: "gives the same decision" in b),
        "try: form": ("GET", f"/ui/try?action={D365}/salesorder.update", lambda b: "statecode" in b),
        "try: decide": ("POST", "/ui/try", lambda b: "PRC-09" in b and 'data-allow="false"' in b),
    }


def policy_pages(store: t.Any) -> tuple[str, dict[str, tuple[str, str | None, t.Callable[[str], bool]]]]:
    """The policy pages: the grids, one table and its exports, the diff of two versions. Publishes a
    second version (PRC-03's update cell with its words in another order, not activated); returns
    its id and the pages."""
    active = store.active_version_id()
    files = dict(store.get_version(active).files)
    cell = "skip when submitted or integ"
    files["pricing.yaml"] = files["pricing.yaml"].replace(cell, "skip when integ or submitted")
    other = store.publish(files, author="bench", message="the same words in another order", activate=False).id
    table = "/ui/versions/active/tables/d365_sales/price-computation"
    return other, {
        "policies (grids, sentences)": ("GET", "/ui/policies", lambda b: 'data-table="price-computation"' in b),
        "a table": ("GET", table, lambda b: "skip when submitted or integ" in b),
        "a table as CSV": ("GET", table + "/export.csv", lambda b: b.count("PRC-0") == 8),
        "a table as XLSX": ("GET", table + "/export.xlsx", lambda b: b.startswith("PK")),
        "diff of two versions": ("GET", f"/ui/diff?from={active}&to={other}",
                                 lambda b: b.count('class="cell-changed"') == 1),
    }


def measure(client: t.Any, method: str, path: str, requests: int, form: dict[str, str] | None = None,
            check: t.Callable[[str], bool] | None = None) -> list[float]:
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.post(path, data=form) if method == "POST" else client.get(path)
        times.append(time.perf_counter() - started)
        body = response.get_data().decode("utf-8", "replace")   # an XLSX export is binary
        if response.status_code != 200 or (check is not None and not check(body)):
            raise SystemExit(f"{method} {path}: HTTP {response.status_code}, or the page is not the expected one")
    return times


def find(client: t.Any, path: str, text: str) -> tuple[int, float]:
    """Follow ``Older →`` from ``path`` until ``text`` is on the page: how many pages, how long."""
    started, count = time.perf_counter(), 0
    while True:
        body = client.get(path).get_data(as_text=True)
        count += 1
        if '<td class="matched">' in body and f"= {text}" in body:
            return count, time.perf_counter() - started
        older = re.search(r'href="([^"]+)" rel="next"', body)
        if older is None:
            raise SystemExit(f"{text} was not found following the pages of {path}")
        path = older.group(1).replace("&amp;", "&")


def _percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def run(database: str, count: int, requests: int, quick: bool) -> int:
    import engine
    from api import create_app
    from api.testing import test_config
    from store import Store

    policy_set = engine.load_policy_set(RULES)
    store = Store(database, migrate=True)
    app = create_app(test_config(database, RULES, tokens={"audit": [f"bench:{AUDIT}"]}, watch_interval=0, store=store))
    seconds = fill(store, policy_set, count)
    print(f"filled the log with {store.decision_count():,} decisions in {seconds:.1f} s ({store.dialect})")
    client = app.test_client()
    _sign_in(client)
    measured = pages(store, count)
    candidate, policy = policy_pages(store)
    measured.update(policy)
    headers = {"Authorization": f"Bearer {AUDIT}"}
    base = []
    for _ in range(requests):
        started = time.perf_counter()
        assert client.get("/v1/versions", headers=headers).status_code == 200
        base.append(time.perf_counter() - started)
    health = measure(client, "GET", "/healthz", requests)
    b50, b95 = _percentiles(base)
    h50, h95 = _percentiles(health)
    print(f"{'page':<28} {'p50 ms':>8} {'p95 ms':>8} {'p95 / baseline':>15}")
    print(f"{'GET /v1/versions (baseline)':<28} {b50 * 1e3:>8.1f} {b95 * 1e3:>8.1f} {1:>14.1f}x")
    print(f"{'GET /healthz':<28} {h50 * 1e3:>8.1f} {h95 * 1e3:>8.1f} {h95 / b95:>14.1f}x")
    slow = []
    for name, (method, path, check) in measured.items():
        form = dict(TRY_FORM, csrf_token=_csrf(client, "/ui/try")) if method == "POST" else None
        if method == "GET":
            client.get(path)  # warm: compile the templates, fill caches
        p50, p95 = _percentiles(measure(client, method, t.cast(str, path), requests, form, check))
        print(f"{name:<28} {p50 * 1e3:>8.1f} {p95 * 1e3:>8.1f} {p95 / b95:>14.1f}x")
        if p95 > 0.2:
            slow.append(name)
    pages_read, seconds = find(client, f"/ui/decisions?text=SO-{count // 2:07d}", f"SO-{count // 2:07d}")
    print(f"finding one order number (entry {count // 2:,}), Older → until shown: {pages_read} page(s), "
          f"{seconds * 1e3:.0f} ms in all")
    started = time.perf_counter()
    report = store.verify_chain()
    print(f"(on demand, not a page target) verify the whole chain: {time.perf_counter() - started:.2f} s, "
          f"{report.checked:,} entries, ok={report.ok}")
    day = (dt.datetime.now(dt.UTC) - dt.timedelta(days=DAYS // 2)).replace(microsecond=0)
    for label, window in (("one day of the log", f"&since={day.isoformat()[:19]}&until="
                                      f"{(day + dt.timedelta(days=1)).isoformat()[:19]}"), ("the whole log", "")):
        path = f"/ui/diff/impact?from={store.active_version_id()}&to={candidate}&replay=1{window}"
        times = measure(client, "GET", path, 1 if window == "" else min(requests, 10), None, lambda b: "Replayed" in b)
        print(f"(on demand, not a page target) replay {label} against another version: "
              f"p50 {statistics.median(times) * 1e3:.0f} ms")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {requests} requests per page")
    if not quick:
        print("every page under 200 ms at p95" if not slow else f"over 200 ms at p95: {', '.join(slow)}")
    app.extensions["ordergate"].close()
    store.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30, help="requests per page (default 30)")
    parser.add_argument("--database", default=None, help="an empty database URL (default: a fresh SQLite file)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2,000 decisions, 3 requests a page")
    args = parser.parse_args(argv)
    if args.quick:
        args.decisions, args.requests = 2000, 3
    with tempfile.TemporaryDirectory() as tmp:
        return run(args.database or f"sqlite:///{os.path.join(tmp, 'workbench.sqlite')}", args.decisions,
                   args.requests, args.quick)


if __name__ == "__main__":
    sys.exit(main())
