"""HTTP front benchmark: a bare Flask app and ordergate under each production server, in one run, with wrk.

For every server (gunicorn sync, gunicorn gthread, granian with ordergate's buffering front) it
starts the bare Flask app of ``bench/bare_app.py`` (parse + answer, no policy, no log) and then
``ordergate serve`` (decision log on, fresh SQLite store or --database), each with the same server
settings, and drives them with wrk (a C load generator, not Python) on the same machine: single
``POST /v1/decisions`` and, for both, ``POST /v1/decisions/batch`` with 100 requests a body.
Prints decisions/s, p50 and p99 of each, ordergate / bare ratios, the CPU time the server's
processes spent per decision, and the load average around every measurement. ordergate's log is
checked afterwards: every answered decision must be in it. ``--first-port`` puts the servers on
given ports (a machine where each user has a range), else they take free ones.

    .venv/bin/python bench/front.py --seconds 10
    .venv/bin/python bench/front.py --servers granian --modes single --seconds 5

Needs wrk (Debian: apt-get install -y wrk).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from load import REQUESTS, _free_port, _get, _ordergate, logged_count  # noqa: E402

#: server name -> (ordergate serve arguments, what it is)
SERVERS = {
    "gunicorn-sync": (["--server", "gunicorn", "--worker-class", "sync"], "gunicorn sync workers"),
    "gunicorn-gthread": (["--server", "gunicorn", "--worker-class", "gthread"], "gunicorn gthread workers"),
    "granian": (["--server", "granian"], "granian + ordergate's buffering front (the default)"),
}
PATHS = {"single": "/v1/decisions", "batch": "/v1/decisions/batch"}


def _lua(bodies: list[str], path: str) -> str:
    """A wrk script sending ``bodies`` in turn (as Lua long strings)."""
    items = ",\n".join(f"[==[{body}]==]" for body in bodies)
    return f"""
local bodies = {{
{items}
}}
local i = 0
local headers = {{["Content-Type"] = "application/json"}}
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "{path}", headers, bodies[i])
end
"""


#: load.py's mix without its last request, a missing_fact (422), which wrk would count as a failure
ANSWERED = REQUESTS[:-1]


def _bodies(mode: str, batch_size: int, requests: list[dict] = ANSWERED) -> list[str]:
    if mode == "single":
        return [json.dumps(r) for r in requests]
    return [json.dumps({"requests": [requests[(offset + i) % len(requests)] for i in range(batch_size)]})
            for offset in range(len(requests))]


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)(us|ms|s)", text).groups()
    return float(number) * _UNITS[unit]


def run_wrk(url: str, script: Path, args: argparse.Namespace) -> dict:
    completed = subprocess.run(
        ["wrk", f"-t{args.wrk_threads}", f"-c{args.connections}", f"-d{args.seconds}s", "--latency",
         "-s", str(script), url], capture_output=True, text=True, timeout=args.seconds + 60)
    out = completed.stdout
    if completed.returncode != 0 or "Requests/sec" not in out:
        raise SystemExit(f"front: wrk failed:\n{out}\n{completed.stderr}")
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    if set(latency) != {"50", "99"}:
        raise SystemExit(f"front: no latency distribution in wrk's output:\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"requests": requests, "requests_per_s": float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1)),
            "p50_ms": _ms(latency["50"]), "p99_ms": _ms(latency["99"]),
            "non_2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0}


def start(command: list[str], workdir: Path, name: str, args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERGATE_TOKENS_")}
    # the code of this checkout, also where the `ordergate` command was installed from another one
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with (workdir / f"{name}.log").open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{command[command.index('--port') + 1]}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"front: {name} exited:\n" + (workdir / f"{name}.log").read_text()[-3000:])
        try:
            if _get(url, "/readyz" if "serve" in command else "/healthz", timeout=1.0)[0] in (200, 404, 405):
                return process, url
        except OSError:
            pass
        time.sleep(0.1)
    stop(process)
    raise SystemExit(f"front: {name} did not start:\n" + (workdir / f"{name}.log").read_text()[-3000:])


def session_cpu(session: int) -> float:
    """CPU seconds (user + system) used so far by the processes of ``session`` (a server and its
    workers, started in a session of their own)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[3]) == session:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def measure(server: str, app: str, args: argparse.Namespace, workdir: Path, scripts: dict[str, Path]) -> dict:
    port = next(args.port_numbers) if args.port_numbers else _free_port()
    settings = [*SERVERS[server][0]]
    if args.workers:
        settings += ["--workers", str(args.workers)]
    if args.threads:
        settings += ["--threads", str(args.threads)]
    database = None
    if app == "bare":
        command = [sys.executable, str(ROOT / "bench" / "front.py"), "--serve-bare", "--port", str(port), *settings]
    else:
        database = args.database or f"sqlite:///{workdir / (server + '.sqlite')}"
        command = [*_ordergate(), "serve", "--port", str(port), "--database", database, *settings]
        if args.rules:
            command += ["--rules", args.rules]
    process, url = start(command, workdir, f"{server}-{app}", args)
    results = {}
    try:
        before = logged_count(database) or 0 if database else 0
        for mode in args.modes:
            load_start, cpu_start = _loadavg(), session_cpu(process.pid)
            result = run_wrk(url, scripts[mode], args)
            per_request = 1 if mode == "single" else args.batch_size
            cpu = session_cpu(process.pid) - cpu_start
            result.update(load_start=load_start, load_end=_loadavg(),
                          decisions_per_s=result["requests_per_s"] * per_request,
                          cpu_us=cpu / max(1, result["requests"] * per_request) * 1e6)
            results[mode] = result
    finally:
        stop(process)
    if database:
        answered = sum(r["requests"] * (1 if m == "single" else args.batch_size) for m, r in results.items())
        logged = (logged_count(database, before + answered, wait=10.0) or 0) - before
        results["log"] = {"answered_at_least": answered, "logged": logged}
    return results


def serve_bare(argv: list[str]) -> None:
    """``--serve-bare``: bench/bare_app.py under the server ``ordergate serve`` would use, same settings."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve-bare", action="store_true")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server", default="granian")
    parser.add_argument("--worker-class", default="gthread")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    from cli.serve import GranianServer, GunicornServer, granian_options, gunicorn_options

    def load_app():
        from bare_app import app

        return app

    if args.server == "granian":
        GranianServer.run(load_app, granian_options("127.0.0.1", args.port, workers=args.workers,
                                                    threads=args.threads))
    else:
        GunicornServer.run(load_app, gunicorn_options("127.0.0.1", args.port, workers=args.workers,
                                                      threads=args.threads, worker_class=args.worker_class))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--serve-bare" in argv:
        serve_bare(argv)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration of each measurement (default 10)")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"comma list of {', '.join(SERVERS)}")
    parser.add_argument("--modes", default="single,batch", help="comma list of single, batch")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: serve's)")
    parser.add_argument("--threads", type=int, default=None, help="threads per worker (default: serve's)")
    parser.add_argument("--database", default=None, help="ordergate's database (default: a fresh SQLite file)")
    parser.add_argument("--rules", default=None, help="rules folder (default: serve's, the shipped rules)")
    parser.add_argument("--requests", default=None, metavar="FILE",
                        help="JSON list of decision requests to send in turn (default: d365_sales requests of the "
                             "shipped rules, all answered 200)")
    parser.add_argument("--first-port", type=int, default=None,
                        help="the servers listen on this port and the next ones (default: free ports)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    args.port_numbers = None if args.first_port is None else iter(range(args.first_port, args.first_port + 100))
    args.modes = args.modes.split(",")
    requests = json.loads(Path(args.requests).read_text()) if args.requests else ANSWERED
    servers = args.servers.split(",")
    if shutil.which("wrk") is None:
        raise SystemExit("front: wrk is not installed (Debian: apt-get install -y wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="ordergate-front-"))
    try:
        scripts = {}
        for mode in args.modes:
            scripts[mode] = workdir / f"{mode}.lua"
            scripts[mode].write_text(_lua(_bodies(mode, args.batch_size, requests), PATHS[mode]))
        started = _loadavg()
        table = {server: {app: measure(server, app, args, workdir, scripts) for app in ("bare", "ordergate")}
                 for server in servers}
        summary = {"cpus": os.cpu_count(), "seconds": args.seconds, "connections": args.connections,
                   "batch_size": args.batch_size, "load_start": started, "load_end": _loadavg(), "results": table}
        if args.json:
            print(json.dumps(summary, indent=1))
        else:
            _print(summary, args)
        failed = any(r[m]["non_2xx"] or r[m]["socket_errors"] for s in table.values() for r in s.values()
                     for m in args.modes)
        lost = any(s["ordergate"]["log"]["logged"] < s["ordergate"]["log"]["answered_at_least"] for s in table.values())
        return 1 if failed or lost else 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _print(summary: dict, args: argparse.Namespace) -> None:
    print(f"front: wrk -t{args.wrk_threads} -c{args.connections} -d{args.seconds}s on {summary['cpus']} CPUs; "
          f"load average {summary['load_start']} at start, {summary['load_end']} at the end")
    print(f"{'server':<17} {'mode':<6} {'bare dec/s':>11} {'p50':>7} {'p99':>7}   {'ordergate dec/s':>15} {'p50':>7} "
          f"{'p99':>7} {'ratio':>6}  {'CPU us/dec (bare / ordergate)':>29}  load (bare / ordergate)")
    table = summary["results"]
    for server, apps in table.items():
        for mode in args.modes:
            bare, og = apps["bare"][mode], apps["ordergate"][mode]
            print(
                f"{server:<17} {mode:<6} {bare['decisions_per_s']:>11,.0f} {bare['p50_ms']:>6.2f}m "
                f"{bare['p99_ms']:>6.1f}m   {og['decisions_per_s']:>15,.0f} {og['p50_ms']:>6.2f}m "
                f"{og['p99_ms']:>6.1f}m {og['decisions_per_s'] / bare['decisions_per_s']:>5.2f}x  "
                f"{bare['cpu_us']:>13.1f} / {og['cpu_us']:>13.1f}  {bare['load_start']} / {og['load_start']}"
            )
    for mode in args.modes:
        if "granian" in table and len(table) > 1:
            for other in (s for s in table if s != "granian"):
                ratio = (
                    table["granian"]["ordergate"][mode]["decisions_per_s"]
                    / table[other]["ordergate"][mode]["decisions_per_s"]
                )
                print(f"ordergate {mode}: granian / {other}: {ratio:.2f}x")
    for server, apps in table.items():
        log = apps["ordergate"]["log"]
        errors = sum(apps[a][m]["non_2xx"] + apps[a][m]["socket_errors"] for a in apps for m in args.modes)
        print(f"{server}: decision log {log['logged']} written, {log['answered_at_least']} answered; "
              f"{errors} non-2xx answers or socket errors")


if __name__ == "__main__":
    sys.exit(main())
