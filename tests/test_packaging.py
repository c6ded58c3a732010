"""`pip install .` into a fresh virtual environment outside the checkout: the installed `ordergate`
runs the demo, checks the shipped policy set and serves it, from an empty folder."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT
from test_serve_watch import free_port, wait_for

SOURCES = ["engine", "api", "store", "connector", "cli", "rules", "pyproject.toml", "setup.py", "README.md", "LICENSE"]


@pytest.mark.slow
@pytest.mark.shipped_policy
def test_pip_install_then_demo_check_and_serve_from_an_empty_folder(tmp_path):
    src = tmp_path / "src"
    for name in SOURCES:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__", "*.so")}
                                         if (ROOT / name).is_dir() else {}))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(src)],
                         capture_output=True, text=True, timeout=900)  # pip's cache makes this quick
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    assert "deprecat" not in (pip.stdout + pip.stderr).lower(), pip.stderr
    # what the installed package finds alone: no PYTHONPATH of the checkout's (or a work tree's) sources
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORDERGATE_", "PYTHON"))}
    # the loader's C extension is built by the install where libyaml's headers are (optional elsewhere)
    native = subprocess.run([str(venv / "bin" / "python"), "-c", "import engine._fastload"], cwd=tmp_path,
                            capture_output=True, text=True, env=env)
    assert native.returncode == 0 or not Path("/usr/include/yaml.h").exists(), native.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    ordergate = str(venv / "bin" / "ordergate")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([ordergate, *args], cwd=empty, capture_output=True, text=True, timeout=300, env=env)

    demo = run("demo")
    assert demo.returncode == 0 and "mutations applied" in demo.stdout, demo.stdout[-2000:] + demo.stderr
    check = run("check")
    assert check.returncode == 0 and check.stdout.startswith("ok: "), check.stdout + check.stderr
    tests = run("test-rules")  # the shipped YAML tests are installed too
    assert tests.returncode == 0 and "0 failed" in tests.stdout, tests.stdout[-2000:] + tests.stderr

    port = free_port()
    with open(tmp_path / "serve.log", "w") as log:
        server = subprocess.Popen([ordergate, "serve", "--port", str(port)], cwd=empty, stdout=log,
                                  stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        def ready():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                return resp.status == 200 and json.load(resp)
        wait_for(ready, 90, "the installed service")
        assert (empty / "var" / "ordergate.sqlite").exists()
        # the workbench's templates and stylesheet are installed with the package
        for path, text in (("/ui/versions", "<h1>Versions</h1>"), ("/ui/static/workbench.css", "--accent")):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
                assert resp.status == 200 and text in resp.read().decode(), path
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)
