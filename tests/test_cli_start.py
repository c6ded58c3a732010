"""The command line starts without importing what a command does not use: `--help` imports no
database, web or engine library; store commands on an up-to-date database skip Alembic and Flask.
bench/cli_start.py times the same commands against another checkout."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT

HEAVY = ("sqlalchemy", "alembic", "flask", "engine", "jsonschema", "granian", "gunicorn", "connector")


def imported(args: list[str]) -> list[str]:
    """The heavy modules a fresh interpreter holds after running ``ordergate ARGS``."""
    code = ("import json, sys\nfrom cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def migrated(tmp_path) -> str:
    from store import Store

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    Store(url, migrate=True).dispose()
    return url


def test_help_imports_no_database_web_or_engine_library():
    assert imported(["--help"]) == []


@pytest.mark.parametrize("command", [["versions"], ["log"], ["audit", "verify"]])
def test_store_commands_on_a_current_database_import_neither_alembic_nor_flask(migrated, command):
    loaded = imported([*command, "--database", migrated])
    assert "sqlalchemy" in loaded  # the command did run against the store
    assert "alembic" not in loaded and "flask" not in loaded, loaded


def test_the_newest_migration_by_name_is_alembics_head():
    from alembic.script import ScriptDirectory

    from store.db import Database, newest_revision

    config = Database("sqlite://")._alembic_config()
    assert newest_revision() == ScriptDirectory.from_config(config).get_current_head()
