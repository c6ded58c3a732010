"""What a new user meets first: one name per job in README.md, docs/, `--help` and `./dev`."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import click
from click.testing import CliRunner
from conftest import ROOT

from cli import main

MINI = ROOT / "tests" / "fixtures" / "mini"

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
# `./dev X` or `ordergate X` at the start of a line of code
COMMAND = re.compile(r"^\s*(?:\$ )?(?:\./dev|ordergate) ([a-z][a-z-]*)(?P<args>[^\n#]*)", re.M)


def _code(text: str) -> str:
    """The fenced blocks and the inline `code` of a Markdown text, one snippet a line."""
    blocks = FENCE.findall(text)
    inline = re.findall(r"`([^`\n]+)`", FENCE.sub("", text))
    return "\n".join(blocks + inline)


def test_dev_test_on_a_rules_folder_names_the_rules_command():
    proc = subprocess.run(["./dev", "test", "rules/"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "./dev test-rules rules/" in proc.stderr and "collected 0 items" not in proc.stdout


def test_the_rules_tests_have_one_name():
    commands = set(main.commands)
    assert "test-rules" in commands and "test" not in commands  # `./dev test` is pytest, never the rules tests
    listed = CliRunner().invoke(main, ["--help"]).output
    assert "test-rules" in listed


def test_every_command_the_docs_name_exists_and_dev_test_gets_no_rules_folder():
    commands = set(main.commands) | {"test"}  # `./dev test` is the Python suite
    for doc in DOCS:
        for m in COMMAND.finditer(_code(doc.read_text())):
            name, args = m.group(1), m.group("args").split()
            assert name in commands, f"{doc.name} names `{m.group(0).strip()}`, which is no command"
            if name == "test" and args:
                assert not (ROOT / args[0]).is_dir() or args[0].startswith("tests"), (
                    f"{doc.name}: `{m.group(0).strip()}` runs pytest on a folder of rules")


def _commands(group: click.Group, path: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield path + (name,), command
        if isinstance(command, click.Group):
            yield from _commands(command, path + (name,))


def test_every_command_has_help_with_an_example():
    for path, _command in _commands(main):
        out = CliRunner().invoke(main, [*path, "--help"]).output
        assert "Example" in out and "ordergate " + " ".join(path) in out, f"`ordergate {' '.join(path)} --help`"


def test_check_validates_the_yaml_tests_too(tmp_path):
    folder = tmp_path / "rules"
    shutil.copytree(MINI, folder)
    test_file = next((folder / "tests").glob("*.yaml"))
    test_file.write_text(test_file.read_text() + "- {name: broken, action: 3}\n")
    r = CliRunner().invoke(main, ["check", str(folder)])
    assert r.exit_code == 1 and f"{folder.as_posix()}/tests/{test_file.name}:" in r.output


def test_decide_names_the_action_of_a_request_file_for_another_action():
    body = {"action": "order.create", "input": {"context": {"system": "shop"}}}
    r = CliRunner().invoke(main, ["decide", "order.update", "--input", "-", "--rules", str(MINI)],
                           input=json.dumps(body))
    assert r.exit_code == 2 and "request for action `order.create`, not `order.update`" in r.output
    assert "missing_fact" not in r.output


def test_an_unknown_action_gets_a_did_you_mean():
    r = CliRunner().invoke(main, ["decide", "order.updat", "--input", "-", "--rules", str(MINI)],
                           input=json.dumps({"context": {"system": "shop"}}))
    assert r.exit_code == 3 and '"code": "unknown_action"' in r.output
    assert "help: did you mean `order.update`?" in r.output


def test_publishing_identical_files_again_says_it_is_already_stored(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    first = CliRunner().invoke(main, ["publish", str(MINI), "-m", "first", "--database", url, "--author", "ann"])
    assert first.exit_code == 0, first.output
    vid = first.output.splitlines()[0]
    again = CliRunner().invoke(main, ["publish", str(MINI), "-m", "second", "--database", url, "--author", "bob"])
    assert again.exit_code == 0
    assert f"already stored as version {vid} by ann (first); already active; this message is not kept" in again.output


def test_shell_completion_completes_commands():
    script = CliRunner().invoke(main, ["completion", "bash"]).output
    assert "_ORDERGATE_COMPLETE=bash_complete" in script
    done = CliRunner().invoke(main, [], prog_name="ordergate",
                              env={"_ORDERGATE_COMPLETE": "bash_complete", "COMP_WORDS": "ordergate test-",
                                   "COMP_CWORD": "1"})
    assert "test-rules" in done.output


def test_the_container_files_name_what_the_project_has():
    import yaml

    from cli.serve import serve

    docker = (ROOT / "Dockerfile").read_text()
    for line in docker.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies `{source}`, which the project does not have"
    cmd = json.loads(next(line for line in docker.splitlines() if line.startswith("CMD "))[4:])
    assert cmd[:2] == ["ordergate", "serve"]
    options = {o for p in serve.params for o in p.opts}
    assert all(a in options for a in cmd[2:] if a.startswith("--"))
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    service = compose["services"]["ordergate"]
    assert service["build"] == "." and "db" in compose["services"]
    read_by_code = (ROOT / "store" / "__init__.py").read_text() + (ROOT / "store" / "db.py").read_text() \
        + (ROOT / "api" / "auth.py").read_text()
    for variable in service["environment"]:
        prefix = variable.rsplit("_", 1)[0] + "_" if variable.startswith("ORDERGATE_TOKENS_") else variable
        assert prefix in read_by_code, f"compose.yaml sets {variable}, which ordergate does not read"


def test_the_image_holds_every_package_the_install_needs_and_the_docs_describe_it():
    """The image cannot be built here (no container engine): what it would need is checked instead."""
    import yaml

    docker = (ROOT / "Dockerfile").read_text()
    copied = {source.rstrip("/") for line in docker.splitlines() if line.startswith("COPY ")
              for source in line.split()[1:-1]}
    setup = (ROOT / "setup.py").read_text()
    packages = set(re.findall(r'"(\w+)\*"', setup)) | set(re.findall(r'"ordergate_rules": "(\w+)"', setup))
    assert packages >= {"engine", "api", "store", "connector", "cli", "rules"}, packages
    assert packages <= copied, f"pip install . in the image needs {sorted(packages - copied)}, not copied"
    assert {"pyproject.toml", "setup.py", "README.md", "LICENSE"} <= copied  # what the build reads
    cmd = json.loads(next(line for line in docker.splitlines() if line.startswith("CMD "))[4:])
    port = cmd[cmd.index("--port") + 1]
    assert f"EXPOSE {port}" in docker
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    service = compose["services"]["ordergate"]
    assert any(p.endswith(f":{port}:{port}") for p in service["ports"]), service["ports"]
    health = " ".join(service["healthcheck"]["test"])
    path = re.search(rf"http://127\.0\.0\.1:{port}(/\w+)", health).group(1)
    from api import create_app

    app = create_app({"database_url": "sqlite://", "bootstrap": False, "watch_interval": 0,
                      "warn_without_tokens": False})
    try:
        assert path in {rule.rule for rule in app.url_map.iter_rules()}, path
    finally:
        app.extensions["ordergate"].close()
    # docs/operations.md describes these files in a section of its own, with the same facts
    text = (ROOT / "docs" / "operations.md").read_text()
    sections = re.split(r"^## ", text, flags=re.M)
    containers = next(s for s in sections if s.startswith("Containers\n"))
    assert "### " not in containers  # no part of another topic under it
    assert "`ordergate serve --host 0.0.0.0 --port 8080`" in containers and port == "8080"
    assert f"`{path}`" in containers and "`/srv/rules`" in containers
    for variable in service["environment"]:
        assert variable in containers or variable in docker, variable
    assert "WORKDIR /srv" in docker
