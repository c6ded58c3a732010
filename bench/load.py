"""Load benchmark of the served decision API, with the decision log on.

Starts ``ordergate serve`` (gunicorn, the production path) on a free loopback port with a fresh
SQLite store (or --database), then drives it from separate client processes, each holding one
persistent HTTP/1.1 connection, for a bounded time: first single ``POST /v1/decisions``, then
``POST /v1/decisions/batch``. Prints requests/s, decisions/s and p50/p99 latency per request
for each, and how many decisions reached the decision log.

    .venv/bin/python bench/load.py --seconds 10
    .venv/bin/python bench/load.py --url http://127.0.0.1:8080 --token "$TOKEN"   # an existing server

Latency is measured in the client: send to last byte of the response, over loopback.
"""
from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Requests of the shipped d365_sales rules (rules/pricing.yaml): allows with obligations, the
# submitted-order lock, and one decision error, so the mix exercises every answer kind.
_D365 = {"system": "d365_sales", "organization": {"is_sop_integration_enabled": True}}
REQUESTS = [
    {"action": "salesorder.update",
     "input": {"subject": {"is_integration_user": True}, "resource": {"salesorder": {"statecode": "active"}},
               "context": _D365}},
    {"action": "salesorder.update",
     "input": {"subject": {"is_integration_user": False}, "resource": {"salesorder": {"statecode": "submitted"}},
               "context": _D365}},
    {"action": "salesorder_line.create",
     "input": {"subject": {"is_integration_user": False}, "resource": {"salesorder": {"statecode": "active"}},
               "context": _D365}},
    {"action": "invoice.update",
     "input": {"subject": {"is_integration_user": True}, "resource": {}, "context": _D365}},
    {"action": "quote.create",
     "input": {"subject": {"is_integration_user": False}, "resource": {}, "context": _D365}},
    {"action": "salesorder.submit",
     "input": {"subject": {"is_integration_user": False}, "resource": {"salesorder": {"statecode": "active"}},
               "context": _D365}},
    {"action": "salesorder.update",  # missing_fact: 422, still a logged decision
     "input": {"subject": {"is_integration_user": False}, "resource": {}, "context": _D365}},
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ordergate() -> list[str]:
    """The ``ordergate`` command of this interpreter's environment."""
    candidate = Path(sys.executable).with_name("ordergate")
    if candidate.exists():
        return [str(candidate)]
    found = shutil.which("ordergate")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from cli import main; sys.exit(main())"]


def _get(url: str, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def start_server(args: argparse.Namespace, workdir: Path) -> tuple[subprocess.Popen, str, str]:
    port = args.port or _free_port()
    database = args.database or f"sqlite:///{workdir / 'bench.sqlite'}"
    if args.log_off:  # the benchmark-only server whose decision log keeps nothing (comparison only)
        command = [sys.executable, str(ROOT / "bench" / "serve_nolog.py"), "--port", str(port), "--database", database]
    else:
        command = [*_ordergate(), "serve", "--host", "127.0.0.1", "--port", str(port), "--database", database]
    if args.workers:
        command += ["--workers", str(args.workers)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    if args.rules:
        command += ["--rules", str(args.rules)]
    if args.server:
        command += ["--server", args.server]
    if args.worker_class:
        command += ["--worker-class", args.worker_class]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERGATE_TOKENS_")}
    log = open(workdir / "server.log", "wb")  # noqa: SIM115 - the server's log, open while it runs
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + args.start_timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"load: the server exited with {server.returncode}:\n"
                             + (workdir / "server.log").read_text(errors="replace")[-3000:])
        try:
            status, _ = _get(url, "/readyz", timeout=1.0)
            if status == 200:
                return server, url, database
        except OSError:
            pass
        time.sleep(0.1)
    stop_server(server)
    raise SystemExit("load: the server did not become ready in time:\n"
                     + (workdir / "server.log").read_text(errors="replace")[-3000:])


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)  # the server stops its workers itself (killing them too would respawn them)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _client(url: str, token: str | None, path: str, bodies: list[bytes], per_request: int,
            seconds: float, start_at: float, out: multiprocessing.Queue) -> None:
    """One client process: one keep-alive connection, requests back to back until time is up."""
    parts = urllib.parse.urlsplit(url)
    headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    allows = 0
    errors: list[str] = []
    while time.time() < start_at:
        time.sleep(0.001)
    end = time.perf_counter() + seconds
    index = 0
    while time.perf_counter() < end:
        body = bodies[index % len(bodies)]
        index += 1
        started = time.perf_counter()
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            errors.append(repr(exc))
            conn.close()
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
            continue
        latencies.append(time.perf_counter() - started)
        statuses[response.status] = statuses.get(response.status, 0) + 1
        if response.status in (200, 422):
            answer = json.loads(data)
            results = answer.get("results", [answer])
            allows += sum(1 for r in results if r["allow"])
            # a decision the log refused would be a 503 / decision_log_unavailable: count it
            errors += [r["error"]["code"] for r in results
                       if r.get("error") and r["error"]["code"] not in ("missing_fact", "invalid_fact",
                                                                         "unknown_action", "unknown_system")]
        else:
            errors.append(f"HTTP {response.status}: {data[:200]!r}")
    conn.close()
    out.put({"latencies": latencies, "statuses": statuses, "allows": allows, "errors": errors[:20],
             "error_count": len(errors), "decisions": len(latencies) * per_request})


def run_phase(url: str, token: str | None, mode: str, args: argparse.Namespace) -> dict:
    if mode == "single":
        path, per_request = "/v1/decisions", 1
        bodies = [json.dumps(r).encode() for r in REQUESTS]
    else:
        path, per_request = "/v1/decisions/batch", args.batch_size
        bodies = []
        for offset in range(len(REQUESTS)):
            items = [REQUESTS[(offset + i) % len(REQUESTS)] for i in range(args.batch_size)]
            bodies.append(json.dumps({"requests": items}).encode())
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    start_at = time.time() + 1.0  # every client process starts at the same moment
    processes = [context.Process(target=_client, args=(url, token, path, bodies, per_request, args.seconds,
                                                       start_at, out)) for _ in range(args.clients)]
    for process in processes:
        process.start()
    parts = [out.get(timeout=args.seconds + 120) for _ in processes]
    for process in processes:
        process.join()
    latencies = sorted(x for p in parts for x in p["latencies"])
    statuses: dict[int, int] = {}
    for part in parts:
        for status, count in part["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    requests = len(latencies)
    decisions = sum(p["decisions"] for p in parts)

    def pct(q: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return {
        "mode": mode,
        "clients": args.clients,
        "batch_size": per_request,
        "seconds": args.seconds,
        "requests": requests,
        "decisions": decisions,
        "requests_per_s": requests / args.seconds,
        "decisions_per_s": decisions / args.seconds,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
        "statuses": statuses,
        "allows": sum(p["allows"] for p in parts),
        "errors": sum(p["error_count"] for p in parts),
        "error_samples": [e for p in parts for e in p["errors"]][:5],
    }


def logged_count(database: str | None, expected: int = 0, wait: float = 0.0) -> int | None:
    """Decisions in the log, waiting up to ``wait`` s for ``expected`` (None: no database to read)."""
    if database is None:
        return None
    sys.path.insert(0, str(ROOT))
    from store import Store

    store = Store(database)
    try:
        deadline = time.monotonic() + wait
        count = store.decision_count()
        while count < expected and time.monotonic() < deadline:
            time.sleep(0.2)
            count = store.decision_count()
        return count
    finally:
        store.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each phase (default 10)")
    parser.add_argument("--clients", type=int, default=4, help="client processes (default 4)")
    parser.add_argument("--batch-size", type=int, default=100, help="requests per batch call (default 100)")
    parser.add_argument("--mode", choices=["both", "single", "batch"], default="both")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: serve's, 2 x cores)")
    parser.add_argument("--threads", type=int, default=None, help="threads per worker (default: serve's)")
    parser.add_argument("--server", choices=["granian", "gunicorn"], default=None,
                        help="HTTP server (default: serve's, granian)")
    parser.add_argument("--worker-class", choices=["gthread", "sync"], default=None,
                        help="gunicorn worker class (with --server gunicorn; default: serve's, gthread)")
    parser.add_argument("--database", default=None, help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--rules", default=None,
                        help="rules folder (default: serve's, the shipped rules)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--url", default=None, help="drive an already running server instead of starting one")
    parser.add_argument("--token", default=None, help="bearer token (decide role) for --url")
    parser.add_argument("--start-timeout", type=float, default=60.0)
    parser.add_argument("--log-off", action="store_true",
                        help="compare only: serve with bench/serve_nolog.py, whose decision log writes nothing "
                             "(the service itself always logs)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="ordergate-load-"))
    server = None
    database = args.database
    try:
        if args.url:
            url = args.url.rstrip("/")
        else:
            server, url, database = start_server(args, workdir)
        before = logged_count(database) or 0 if database else 0
        modes = ["single", "batch"] if args.mode == "both" else [args.mode]
        results = [run_phase(url, args.token, mode, args) for mode in modes]
        if server is not None:
            stop_server(server)  # workers flush their decision logs on the way out
            server = None
        total = sum(r["decisions"] for r in results)
        logged = None
        if database and not args.log_off:
            logged = (logged_count(database, before + total, wait=10.0) or 0) - before
        server_name = args.server or "granian"
        default_workers = (1 if server_name == "granian" else 2) * (os.cpu_count() or 1)
        summary = {
            "cpus": os.cpu_count(),
            "server": server_name,
            "workers": args.workers or default_workers,
            "worker_class": (args.worker_class or "gthread") if server_name == "gunicorn" else None,
            "decision_log": not args.log_off,
            "results": results,
            "decisions_sent": total,
            "decisions_logged": logged,
        }
        if args.json:
            print(json.dumps(summary, indent=1))
        else:
            print(
                f"ordergate load: {args.clients} client processes, keep-alive, {args.seconds:g}s per phase, "
                f"server {summary['workers']} {server_name} {summary['worker_class'] or ''} workers "
                f"on {summary['cpus']} CPUs, "
                + ("decision log OFF (bench/serve_nolog.py, comparison only)" if args.log_off else "decision log on")
            )
            print(f"{'mode':<8} {'batch':>5} {'requests/s':>11} {'decisions/s':>12} {'p50 ms':>8} {'p99 ms':>8} "
                  f"{'errors':>7}")
            for r in results:
                print(f"{r['mode']:<8} {r['batch_size']:>5} {r['requests_per_s']:>11.0f} {r['decisions_per_s']:>12.0f} "
                      f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['errors']:>7}")
            if logged is not None:
                print(f"decision log: {logged} of {total} decisions written")
            for r in results:
                for sample in r["error_samples"]:
                    print(f"  {r['mode']} error: {sample}")
        failed = any(r["errors"] for r in results) or (logged is not None and logged < total)
        return 1 if failed else 0
    finally:
        if server is not None:
            stop_server(server)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
