"""Hostile rule and test files are refused with `file:line:column`, in bounded time and memory.

Each case copies the mini fixture policy, adds one hostile file and checks the folder the way
`ordergate test-rules` and a publish do (compile, then run the YAML tests) in a subprocess of its
own, which reports how long the check took and how much its peak memory grew. The subprocess
runs under an address-space cap, so a file that would blow up memory fails the test instead of
the machine.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.load import MAX_ALIAS_VALUES, MAX_DEPTH, MAX_FILE_BYTES

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "mini"
ROOT = Path(__file__).resolve().parent.parent

_CHECK = r"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (1536 * 1024 * 1024,) * 2)
import engine
folder = sys.argv[1]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
errors = []
try:
    engine.run_tests(engine.load_policy_set(folder), engine.read_folder(folder), display_root=folder + "/")
except engine.PolicyErrors as exc:
    errors = [e.to_dict() for e in exc.errors]
print(json.dumps({"seconds": time.perf_counter() - started, "errors": errors,
                  "grown_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024}))
"""


def laughs(levels: int = 9, fan: int = 10, indent: str = "") -> str:
    """The "billion laughs": each level repeats the one before ``fan`` times (10**9 values)."""
    lines = [f"{indent}l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"{indent}l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fan) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def _rule_file_bomb() -> str:
    # well-formed up to the action names, which the old loader handed on expanded to 10**9 values
    return ("system: bomb\ntitle: an alias bomb\nsources:\n  doc: {kind: seed, title: x}\n"
            "facts:\n  m: {path: subject.m, type: boolean, says: m}\nactions:\n  - names:\n"
            + "".join(f"    - {line.strip()}\n" for line in laughs().splitlines()))


def _test_file_bomb() -> str:
    # about 0.7 KB: the anchors sit in a test's input, the expected rules repeat them
    return ("tests:\n  - name: bomb\n    action: order.create\n    input:\n      context: {system: shop}\n"
            "      resource:\n" + laughs(indent="        ") + "    expect: {allow: true, rules: *l8}\n")


CASES = {
    "alias bomb in a rule file": ("bomb.yaml", _rule_file_bomb(), "load_alias_limit"),
    "billion laughs in a test file": ("tests/bomb.yaml", _test_file_bomb(), "load_alias_limit"),
    "nesting 1,000 deep (flow)": ("deep.yaml", "x: " + "[" * 1000 + "]" * 1000 + "\n", "load_too_deep"),
    "nesting 1,000 deep (block)": (
        "deep.yaml",
        "".join("  " * i + f"k{i}:\n" for i in range(1000)) + "  " * 1000 + "v\n",
        "load_too_deep",
    ),
    "binary bytes": ("binary.yaml", random.Random(8).randbytes(4096), "load_not_text"),
    "control characters in UTF-8 text": ("nul.yaml", "system: shop\ntitle: a\x00b\n", "load_syntax"),
    "a file over the size limit": ("huge.yaml", "# padding\n" * (MAX_FILE_BYTES // 10 + 1), "load_too_large"),
    "a tag on a mapping": ("tags.yaml", "system: !!map {a: b}\n", "load_tag"),
    "a tag on a list": ("tags.yaml", "rules: !custom [1, 2]\n", "load_tag"),
    "a python tag": ("tags.yaml", "x: !!python/object/apply:os.system [echo pwned]\n", "load_tag"),
    "a binary tag": ("tags.yaml", "x: !!binary aGVsbG8=\n", "load_tag"),
}


def _folder(tmp_path: Path, name: str, content: str | bytes) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(FIXTURE, folder)
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return folder


def _check(folder: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", _CHECK, str(folder)], capture_output=True, text=True,
                          timeout=120, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize(("name", "content", "code"), CASES.values(), ids=list(CASES))
def test_a_hostile_file_is_refused_in_bounded_time_and_memory(tmp_path, name, content, code):
    folder = _folder(tmp_path, name, content)
    report = _check(folder)
    codes = {e["code"] for e in report["errors"]}
    assert code in codes, report["errors"][:5]
    error = next(e for e in report["errors"] if e["code"] == code)
    assert error["location"].startswith(f"{folder}/{name}:"), error
    assert error["help"]
    assert report["seconds"] < 5, report["seconds"]
    assert report["grown_mb"] < 200, report["grown_mb"]
    assert len(json.dumps(report["errors"])) < 100_000


def test_the_limits_leave_room_for_real_files():
    from engine.load import load_text

    # just inside every limit: a 60-deep structure, aliases adding 90,000 values
    nested = "x: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    assert load_text("a.yaml", nested)[1] == []
    fan = (
        "base: &b ["
        + ", ".join(["v"] * 999)
        + "]\n"
        + "".join(f"c{i}: *b\n" for i in range(MAX_ALIAS_VALUES // 1000 - 10))
    )
    loaded, errors = load_text("b.yaml", fan)
    assert errors == [] and len(loaded.documents[0]["c0"]) == 999
    assert load_text("c.yaml", "a: !!str 0123\nb: !!int '7'\n")[0].documents == [{"a": "0123", "b": 7}]


def test_a_link_out_of_the_rules_folder_is_refused_and_never_read(tmp_path):
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0:TOP-SECRET-CONTENT:/root:/bin/bash\n")
    folder = _folder(tmp_path, "ok.yaml", "# nothing\n")
    (folder / "passwd.yaml").symlink_to(secret)
    (folder / "tests" / "linked").symlink_to(secret.parent, target_is_directory=True)
    (folder / "inside.yaml").symlink_to(folder / "ok.yaml")
    report = _check(folder)
    refused = {e["location"].split(":")[0] for e in report["errors"] if e["code"] == "load_outside_folder"}
    assert refused == {f"{folder}/passwd.yaml", f"{folder}/tests/linked"}
    assert "TOP-SECRET" not in json.dumps(report["errors"])
    assert "secret.txt" not in json.dumps(report["errors"])


def test_errors_are_bounded_in_number_and_size(tmp_path):
    from engine.errors import MAX_ERRORS, MAX_MESSAGE

    many = "".join(f"k: {i}\n" for i in range(20_000))  # 19,999 duplicate keys
    long_value = "x" * 200_000
    folder = _folder(tmp_path, "many.yaml", many)
    (folder / "long.yaml").write_text(f"system: {long_value}\n{long_value}: 1\n")
    report = _check(folder)
    assert len(report["errors"]) == MAX_ERRORS
    assert report["errors"][-1]["code"] == "too_many_errors"
    assert all(len(e["message"]) <= MAX_MESSAGE + 20 for e in report["errors"])
    assert len(json.dumps(report["errors"])) < MAX_ERRORS * (MAX_MESSAGE + 500)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from api import create_app
    from api.testing import SHOP, test_config, write_rules

    folder = tmp_path_factory.mktemp("hostile")
    app = create_app(test_config(f"sqlite:///{folder / 'db.sqlite'}", write_rules(folder / "rules", SHOP)))
    yield app.test_client()
    app.extensions["ordergate"].close()


TEXT_CASES = {label: case for label, case in CASES.items() if isinstance(case[1], str)}


@pytest.mark.parametrize(("name", "content", "code"), TEXT_CASES.values(), ids=list(TEXT_CASES))
def test_publishing_a_hostile_file_is_a_short_422_that_changes_nothing(client, name, content, code):
    from api.testing import SHOP

    active = client.get("/v1/versions").get_json()["active"]
    response = client.post("/v1/versions", json={"files": {**SHOP, name: content}, "message": "hostile"})
    assert response.status_code == 422, response.get_data(as_text=True)[:500]
    assert len(response.get_data()) < 100_000
    error = response.get_json()["error"]
    assert code in {e["code"] for e in error["errors"]}
    assert client.get("/v1/versions").get_json()["active"] == active


def test_the_command_line_refuses_hostile_files_without_a_traceback(tmp_path):
    from click.testing import CliRunner

    from cli import main

    folder = _folder(tmp_path, "binary.yaml", CASES["binary bytes"][1])
    runner = CliRunner()
    for args in (["check", str(folder)], ["test-rules", str(folder)],
                 ["publish", str(folder), "-m", "x", "--database", f"sqlite:///{tmp_path / 'db.sqlite'}"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 1, (args, result.output)
        assert f"{folder}/binary.yaml:1:" in result.output and "load_not_text" in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
    bomb = tmp_path / "input.yaml"
    bomb.write_text(laughs())
    refused = runner.invoke(main, ["decide", "order.create", "--input", str(bomb), "--rules", str(FIXTURE)])
    assert refused.exit_code == 2 and "load_alias_limit" in refused.output
