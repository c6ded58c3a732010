"""Decision latency while versions are published: wrk on POST /v1/decisions, without and with publishes.

Starts ``ordergate serve`` (fresh SQLite store, or --database) on the shipped rules, runs wrk for
--seconds with no publish, then again for --seconds while this script publishes a new version of
the same rules (a title changed, so a new version id: a full compile and every YAML test, then
every worker loads it) one after the other through ``POST /v1/versions``. Prints decisions/s and
p50/p99/max of both phases, how many publishes were made and how long each took, and how the
workers loaded the versions (from their log).

    .venv/bin/python bench/publish_load.py --seconds 10
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from front import PATHS, _bodies, _loadavg, _lua, run_wrk, start, stop  # noqa: E402
from load import _free_port, _ordergate  # noqa: E402


def _rules_files(rules: Path) -> dict[str, str]:
    return {str(p.relative_to(rules)): p.read_text(encoding="utf-8")
            for p in sorted(rules.rglob("*.yaml")) if p.is_file()}


def publisher(url: str, files: dict[str, str], stop_at: threading.Event, took: list[float],
              failures: list[str]) -> None:
    rule_file = next(p for p in files if not p.startswith("tests/") and "\ntitle: " in files[p])
    number = 0
    while not stop_at.is_set():
        number += 1
        candidate = dict(files)
        # a new title: a new version id (a comment alone changes no document, so not the id either)
        candidate[rule_file] = files[rule_file].replace("\ntitle: ", f"\ntitle: publish_load {time.time_ns()} - ", 1)
        body = json.dumps({"files": candidate, "message": f"publish_load {number}"}).encode()
        request = urllib.request.Request(f"{url}/v1/versions", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                published = json.loads(answer.read())
            took.append(time.perf_counter() - started)
            workers = published.get("workers") or {}
            if published.get("serving") != published.get("id") or workers.get("serving") != workers.get("total"):
                failures.append(f"version {published.get('id')} is not served by every worker: {workers}")
        except Exception as exc:  # reported, never hidden
            failures.append(repr(exc))


LOADED = re.compile(r"now answering with policy version \S+ \((.+?) in ([0-9.]+) ms, ([0-9.]+) ms of CPU\)")


def worker_loads(log: str) -> str:
    """How the workers loaded the published versions (from their log lines): count, median wall and CPU ms."""
    found: dict[str, list[tuple[float, float]]] = {}
    for how, wall, cpu in LOADED.findall(log):
        found.setdefault(how, []).append((float(wall), float(cpu)))
    return "; ".join(f"{how}: {len(v)}, median {statistics.median(w for w, _ in v):.1f} ms "
                     f"({statistics.median(c for _, c in v):.1f} ms CPU)" for how, v in found.items()) or "none logged"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--server", default=None, choices=["granian", "gunicorn"], help="default: serve's")
    parser.add_argument("--database", default=None)
    parser.add_argument("--rules", default=str(ROOT / "rules"))
    parser.add_argument("--port", type=int, default=None, help="default: a free one")
    args = parser.parse_args(argv)
    args.wrk_threads = 1
    workdir = Path(tempfile.mkdtemp(prefix="ordergate-publish-load-"))
    try:
        script = workdir / "single.lua"
        script.write_text(_lua(_bodies("single", 1), PATHS["single"]))
        database = args.database or f"sqlite:///{workdir / 'publish.sqlite'}"
        port = args.port or _free_port()
        server = ["--server", args.server] if args.server else []
        process, url = start([*_ordergate(), "serve", "--port", str(port), "--database", database, *server,
                              "--rules", args.rules], workdir, "serve", args)
        try:
            quiet = run_wrk(url + PATHS["single"], script, args) | {"load": _loadavg()}
            stop_at, took, failures = threading.Event(), [], []
            thread = threading.Thread(target=publisher, args=(url, _rules_files(Path(args.rules)), stop_at, took,
                                                                 failures))
            thread.start()
            try:
                busy = run_wrk(url + PATHS["single"], script, args) | {"load": _loadavg()}
            finally:
                stop_at.set()
                thread.join()
        finally:
            stop(process)
        print(f"publish_load: {args.server or 'default server'}, wrk -c{args.connections} -d{args.seconds}s, "
              "single decisions")
        for name, r in (("no publish", quiet), ("publishing", busy)):
            print(f"  {name:<11} {r['requests_per_s']:>8,.0f} decisions/s  p50 {r['p50_ms']:6.2f} ms  "
                  f"p99 {r['p99_ms']:7.2f} ms  non-2xx {r['non_2xx']}  load {r['load']}")
        print(f"  p99 publishing / no publish: {busy['p99_ms'] / quiet['p99_ms']:.2f}x; {len(took)} publishes, "
              f"median {statistics.median(took) if took else float('nan'):.2f} s each; failures: {failures[:3]}")
        print(f"  worker loads: {worker_loads((workdir / 'serve.log').read_text(errors='replace'))}")
        return 1 if failures or quiet["non_2xx"] or busy["non_2xx"] else 0
    finally:
        if os.environ.get("PUBLISH_LOAD_KEEP"):
            print(f"  kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
