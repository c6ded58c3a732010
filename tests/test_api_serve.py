"""`ordergate serve`: loopback only without tokens, refusal of a public address without tokens."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from api.auth import is_loopback
from cli import main
from cli.serve import _bind

NO_TOKENS = {
    "ORDERGATE_TOKENS_FILE": "",
    "ORDERGATE_TOKENS_DECIDE": "",
    "ORDERGATE_TOKENS_AUDIT": "",
    "ORDERGATE_TOKENS_ADMIN": "",
}


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.com", "::"])
def test_a_public_address_without_tokens_is_refused(host, tmp_path):
    result = CliRunner().invoke(main, ["serve", "--host", host, "--database", f"sqlite:///{tmp_path / 'db.sqlite'}"],
                                env=NO_TOKENS)
    assert result.exit_code == 2
    assert "refusing to listen" in result.output
    assert not (tmp_path / "db.sqlite").exists()  # refused before touching anything


def test_bad_token_configuration_is_a_usage_error(tmp_path):
    env = dict(NO_TOKENS, ORDERGATE_TOKENS_ADMIN="root:")
    result = CliRunner().invoke(main, ["serve", "--database", f"sqlite:///{tmp_path / 'db.sqlite'}"], env=env)
    assert result.exit_code == 2 and "bad token configuration" in result.output


def test_broken_rules_in_an_empty_store_stop_the_server_with_every_location(tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "shop.yaml").write_text("system: shop\nrules: [\n")
    result = CliRunner().invoke(main, ["serve", "--rules", str(rules), "--database",
                                       f"sqlite:///{tmp_path / 'db.sqlite'}"], env=NO_TOKENS)
    assert result.exit_code == 1
    assert "cannot be published" in result.output and "shop.yaml:" in result.output
    assert "listening on 127.0.0.1 only" in result.output


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True),
                                                ("::1", True), ("[::1]", True), ("0.0.0.0", False),
                                                ("192.168.1.1", False), ("example.com", False)])
def test_loopback_detection(host, loopback):
    assert is_loopback(host) is loopback


def test_bind_address():
    assert _bind("127.0.0.1", 8080) == "127.0.0.1:8080"
    assert _bind("::1", 8080) == "[::1]:8080"


def test_a_busy_port_is_one_clear_error_before_the_store_is_touched(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--port", str(port), "--database",
                                           f"sqlite:///{tmp_path / 'db.sqlite'}"], env=NO_TOKENS)
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if not line.startswith("warning:")]
    assert errors == [f"Error: cannot listen on 127.0.0.1:{port}: Address already in use; stop what uses it or "
                      "choose another --port"]
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback
    assert not (tmp_path / "db.sqlite").exists()


@pytest.mark.parametrize("server", ["granian", "gunicorn"])
def test_serve_announces_its_address_only_once_the_port_is_bound(tmp_path, monkeypatch, server):
    import click
    from conftest import O2C_RULES

    from cli import serve as serve_module

    events: list[str] = []
    echo = click.echo

    def recording_echo(message=None, *args, **kwargs):
        events.append(f"said: {message}")
        echo(message, *args, **kwargs)

    def fake_run(load_app, options, on_bound=None):
        events.append("bound")  # what the server does first; then it calls on_bound
        if on_bound is not None:
            on_bound()

    monkeypatch.setattr(click, "echo", recording_echo)
    monkeypatch.setattr(serve_module.GranianServer, "run", staticmethod(fake_run))
    monkeypatch.setattr(serve_module.GunicornServer, "run", staticmethod(fake_run))
    result = CliRunner().invoke(main, ["serve", "--server", server, "--port", "18799", "--rules", str(O2C_RULES),
                                       "--database", f"sqlite:///{tmp_path / 'db.sqlite'}"], env=NO_TOKENS)
    assert result.exit_code == 0, result.output
    announced = [i for i, e in enumerate(events) if e.startswith("said: ordergate: serving policy version sha256:")]
    assert len(announced) == 1 and announced[0] > events.index("bound"), events
    assert f"on http://127.0.0.1:18799 with {server}" in events[announced[0]]


@pytest.mark.slow
def test_the_missing_tokens_warning_is_printed_once_per_server_not_per_worker(tmp_path):
    import os
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    from conftest import O2C_RULES, ROOT
    from test_serve_watch import free_port

    port = free_port()
    out = tmp_path / "serve.log"
    with out.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from cli import main; main()", "serve", "--workers", "2", "--port", str(port),
             "--rules", str(O2C_RULES), "--database", f"sqlite:///{tmp_path / 'db.sqlite'}"],
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **NO_TOKENS, "PYTHONPATH": str(ROOT)})
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end and out.read_text().count("now answering with policy version") < 2:
            time.sleep(0.1)
        while True:  # a worker listens once its app is built, a moment after it logs its version
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as ready:
                    assert ready.status == 200, out.read_text()
                    break
            except urllib.error.URLError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.1)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=60)
    text = out.read_text()
    assert text.count("now answering with policy version") == 2, text  # both workers started
    assert text.count("no access tokens configured") == 1, text


def test_a_worker_freezes_its_app_out_of_the_cyclic_collector_and_still_collects_cycles(monkeypatch, tmp_path):
    import gc

    from cli import serve

    built = []
    monkeypatch.setattr("api.create_app", lambda config: built.append(config) or object())
    threshold = gc.get_threshold()
    try:
        app = serve.app_loader({"database_url": "sqlite://"})()
        assert built == [{"database_url": "sqlite://"}] and app is not None
        assert gc.get_freeze_count() > 0  # what lived before the first request is never walked again
        assert gc.get_threshold()[0] == serve.GC_YOUNG_THRESHOLD
        cycle: list = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1  # a cycle made after the freeze is still found
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
