"""Helpers of the fault suite (tests/test_faults_*.py; holds no tests): a served ordergate under
wrk load whose Lua script records the decision id of every 200 answer, and a PostgreSQL cluster of
the test's own that can be stopped and started (never the shared server)."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# wrk runs this in every thread: POST the body, write the decision id of each 200 answer to a file
# of the thread's own (flushed per line, so a kill of the server loses none of the client's log)
WRK_SCRIPT = """
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end
function init(args)
  out = io.open(args[1] .. "." .. tid, "w")
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[%BODY%]]
function response(status, headers, body)
  if status == 200 then
    for id in string.gmatch(body, '"decision_id":"([0-9A-Z]+)"') do
      out:write(id, "\\n")
    end
    out:flush()
  else
    out:write("status ", status, "\\n")
    out:flush()
  end
end
"""


def need_wrk() -> str:
    found = shutil.which("wrk")
    if not found:
        pytest.fail("the fault suite needs wrk (apt-get install -y wrk; .ci/run installs it)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, timeout: float = 2.0) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def post(url: str, body: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Server:
    """``ordergate serve`` (gunicorn, the production path) in a process group of its own."""

    def __init__(self, database: str, rules: Path, workdir: Path, *, workers: int = 2, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"server-{self.port}.log"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("ORDERGATE_TOKENS_")}
        environment.update(env or {})
        ordergate = Path(sys.executable).with_name("ordergate")
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [str(ordergate), "serve", "--port", str(self.port), "--workers", str(workers), "--rules", str(rules),
                 "--database", database], cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + 60
        while get(self.url + "/readyz") != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("the server did not come up:\n" + self.log.read_text(errors="replace")[-3000:])
            time.sleep(0.1)

    def pids(self) -> list[int]:
        """The gunicorn master and its workers."""
        out = subprocess.run(["pgrep", "-g", str(self.process.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def kill9(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class Load:
    """wrk against ``url`` for ``seconds``; ``answers()`` reads the client's log afterwards."""

    def __init__(self, url: str, body: str, workdir: Path, *, seconds: int, connections: int = 8,
                 path: str = "/v1/decisions"):
        script = workdir / "record.lua"
        script.write_text(WRK_SCRIPT.replace("%BODY%", body), encoding="utf-8")
        self.prefix = workdir / "answers"
        self.process = subprocess.Popen(
            [need_wrk(), "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
             "-s", str(script), url + path, "--", str(self.prefix)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait(self, timeout: float = 60) -> str:
        out, _ = self.process.communicate(timeout=timeout)
        return out

    def answers(self) -> tuple[set[str], dict[str, int]]:
        """The decision ids answered 200, and the count of every other status."""
        ids: set[str] = set()
        others: dict[str, int] = {}
        for path in self.prefix.parent.glob(self.prefix.name + ".*"):
            for line in path.read_text().splitlines():
                if line.startswith("status "):
                    others[line[7:]] = others.get(line[7:], 0) + 1
                elif line:
                    ids.add(line)
        return ids, others


def missing_from_log(database: str, ids: set[str]) -> set[str]:
    """The ids that are not in the decision log of ``database``."""
    import sqlalchemy as sa

    from store import Store
    from store.schema import decisions

    store = Store(database)
    found: set[str] = set()
    try:
        ordered = sorted(ids)
        with store.engine.connect() as conn:
            for i in range(0, len(ordered), 500):
                query = sa.select(decisions.c.decision_id).where(decisions.c.decision_id.in_(ordered[i:i + 500]))
                found.update(conn.execute(query).scalars())
    finally:
        store.dispose()
    return ids - found


class Cluster:
    """A PostgreSQL cluster of the test's own on ``port`` (initdb + pg_ctl), to stop and start at will."""

    def __init__(self, port: int):
        bindir = _pg_bindir()
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="og-pg-"))
        self._as_postgres = os.geteuid() == 0  # initdb and postgres refuse to run as root
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self._pg_ctl = str(bindir / "pg_ctl")
        self._run(str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        self.start()

    def _run(self, *command: str) -> None:
        if self._as_postgres:
            command = ("runuser", "-u", "postgres", "--", *command)
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run(self._pg_ctl, "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self, mode: str = "immediate") -> None:
        self._run(self._pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def _pg_bindir() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not versions:
        pytest.fail("the PostgreSQL outage test needs initdb and pg_ctl (the postgresql server package)")
    return versions[-1].parent
