"""Every shell block of README.md and docs/*.md marked runnable (```sh) runs as written.

Per document, in a scratch folder holding a copy of rules/ and a `dev` that runs this checkout's
`ordergate`: the blocks run in order with `bash -euo pipefail`; when a block calls the service
(`127.0.0.1:8080`), the test starts `ordergate serve` in the scratch folder on a free port of this
suite's range first, and the block is pointed at that port.

A block marked ```output right after a runnable block is what that block prints (stdout and stderr
together), and the test checks it: line by line, with what changes from run to run — decision ids,
times, sha256 hashes — compared by shape only. An output block whose first line is `…` is the end
of the output. `ORDERGATE_DOCS_WRITE=1` writes the output of this run into those blocks instead.
"""
from __future__ import annotations

import difflib
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
# a runnable block and the output block that may follow it
WITH_OUTPUT = re.compile(r"^```sh\n(.*?)^```\n(?:[ \t]*\n)*(?:^```output\n(.*?)^```$)?", re.M | re.S)
SERVICE = "127.0.0.1:8080"
# what differs from run to run: compared by shape
VOLATILE = [(re.compile(r"\b[0-9A-HJKMNP-TV-Z]{26}\b"), "<decision id>"),
            (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?"), "<time>"),
            (re.compile(r"sha256:[0-9a-f]{12,64}"), "sha256:<hash>")]
PARTIAL = "…"


def runnable(doc: Path) -> list[str]:
    return RUNNABLE.findall(doc.read_text(encoding="utf-8"))


def _shape(text: str) -> list[str]:
    for pattern, placeholder in VOLATILE:
        text = pattern.sub(placeholder, text)
    return [line.rstrip() for line in text.rstrip("\n").split("\n")]


def output_differs(expected: str, actual: str) -> str | None:
    """None when ``actual`` has the shape of ``expected`` (its end, when ``expected`` starts with …),
    else a line-by-line diff of the two."""
    want, got = _shape(expected), _shape(actual)
    if want and want[0] == PARTIAL:
        want = want[1:]
        got = got[-len(want):] if want else []
    if want == got:
        return None
    return "\n".join(difflib.unified_diff(want, got, "documented", "this run", lineterm=""))


def _written(text: str, expected: str, actual: str) -> str:
    """``text`` with the output block ``expected`` replaced by ``actual`` (its end, for a partial one)."""
    lines = actual.rstrip("\n").split("\n")
    if expected.startswith(PARTIAL + "\n"):
        lines = [PARTIAL, *lines[-(len(expected.rstrip("\n").split("\n")) - 1):]]
    return text.replace(f"```output\n{expected}```", "```output\n" + "\n".join(lines) + "\n```", 1)


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
    pairs = WITH_OUTPUT.findall(doc.read_text(encoding="utf-8"))
    blocks = [block for block, _ in pairs]
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
        for block, (_, expected) in zip(blocks, pairs, strict=True):
            # a block with its output shown: stdout and stderr in one stream, in the order written
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=scratch, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT if expected else subprocess.PIPE,
                                  text=True, timeout=300)
            assert proc.returncode == 0, f"{doc.name}: this block failed ({proc.returncode}):\n{block}\n" \
                                         f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{(proc.stderr or '')[-3000:]}"
            if expected and os.environ.get("ORDERGATE_DOCS_WRITE") == "1":
                doc.write_text(_written(doc.read_text(encoding="utf-8"), expected, proc.stdout), encoding="utf-8")
            elif expected:
                differs = output_differs(expected, proc.stdout)
                assert differs is None, f"{doc.name}: the output shown after this block is not what it prints " \
                                        f"(ORDERGATE_DOCS_WRITE=1 rewrites it):\n{block}\n{differs}"
    finally:
        if server is not None:
            os.killpg(server.pid, 15)
            server.wait(timeout=60)


def test_every_output_block_follows_a_runnable_block():
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        checked = sum(1 for _, expected in WITH_OUTPUT.findall(text) if expected)
        assert text.count("```output\n") == checked, f"{doc.name}: an ```output block not right after a ```sh block"


def test_output_is_compared_by_shape_where_runs_differ_and_word_for_word_elsewhere():
    shown = "01M8JNXQDFQF3BRVXXN6QY110S 2026-11-29T03:35:03.855320Z DENY by PRC-09 on sha256:9e84d8652f76\n"
    run = "01M8JYKWB3H6HFNX84830QK1FG 2026-11-29T06:06:58.403266Z DENY by PRC-09 on sha256:d89ea6269ef0\n"
    assert output_differs(shown, run) is None
    assert output_differs(shown, run.replace("DENY", "ALLOW")) is not None
    assert output_differs(shown, run + "one more line\n") is not None
    assert output_differs("…\nlast line\n", "first line\nlast line\n") is None
    assert output_differs("…\nlast line\n", "last line\nfirst line\n") is not None
