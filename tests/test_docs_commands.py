"""Every shell block of README.md and docs/*.md marked runnable (```sh) runs as written.

Per document, in a scratch folder holding a copy of rules/ and a `dev` that runs this checkout's
`ordergate`: the blocks run in order with `bash -euo pipefail`; when a block calls the service
(`127.0.0.1:8080`), the test starts `ordergate serve` in the scratch folder on a free port of this
suite's range first, and the block is pointed at that port.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, SHIPPED_RULES
from test_serve_watch import free_port, wait_for

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNABLE = re.compile(r"^```sh\n(.*?)^```$", re.M | re.S)
SERVICE = "127.0.0.1:8080"


def runnable(doc: Path) -> list[str]:
    return RUNNABLE.findall(doc.read_text(encoding="utf-8"))


def _scratch(tmp_path: Path) -> Path:
    scratch = tmp_path / "project"
    shutil.copytree(SHIPPED_RULES, scratch / "rules")
    (scratch / "docs").mkdir()
    dev = scratch / "dev"
    dev.write_text(f'#!/usr/bin/env bash\nexec "{sys.executable}" -c "from cli import main; main()" "$@"\n')
    dev.chmod(0o755)
    return scratch


def test_the_docs_mark_their_shell_commands_runnable():
    assert len(runnable(ROOT / "README.md")) >= 3


@pytest.mark.slow
@pytest.mark.shipped_policy
@pytest.mark.parametrize("doc", [d for d in DOCS if runnable(d)], ids=lambda d: d.name)
def test_every_runnable_block_runs_as_written(doc, tmp_path):
    scratch = _scratch(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERGATE_")}
    env["PYTHONPATH"] = str(ROOT)
    blocks = runnable(doc)
    server = None
    try:
        if any(SERVICE in b for b in blocks):
            port = free_port()
            with open(tmp_path / "serve.log", "w") as log:
                server = subprocess.Popen([sys.executable, "-c", "from cli import main; main()", "serve",
                                           "--port", str(port)], cwd=scratch, env=env, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)
            wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200,
                     90, "the service")
            blocks = [b.replace(SERVICE, f"127.0.0.1:{port}") for b in blocks]
        for block in blocks:
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=scratch, env=env,
                                  capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, f"{doc.name}: this block failed ({proc.returncode}):\n{block}\n" \
                                         f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    finally:
        if server is not None:
            os.killpg(server.pid, 15)
            server.wait(timeout=60)
