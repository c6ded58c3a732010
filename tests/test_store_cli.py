"""`ordergate publish / activate / versions / audit verify` against SQLite and PostgreSQL."""
from __future__ import annotations

import click
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from test_store_helpers import drop_guards, mini_rules, record, write_folder

from cli import store_commands
from store import Store


@pytest.fixture
def cli():
    @click.group()
    def main() -> None:
        pass

    store_commands.register(main)
    runner = CliRunner()
    return lambda *args: runner.invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_publish_activate_versions_and_rollback(cli, db_url, tmp_path):
    one = write_folder(tmp_path / "one", mini_rules("1"))
    two = write_folder(tmp_path / "two", mini_rules("2"))
    r1 = cli("publish", one, "-m", "first", "--author", "ana", "--database", db_url)
    assert r1.exit_code == 0, r1.output
    v1 = r1.stdout.strip()
    assert v1.startswith("sha256:")
    r2 = cli("publish", two, "-m", "second", "--author", "bo", "--database", db_url)
    v2 = r2.stdout.strip()
    assert r2.exit_code == 0 and v2 != v1
    listing = cli("versions", "--database", db_url)
    assert listing.exit_code == 0
    lines = listing.stdout.splitlines()
    assert lines[0].startswith(f"* {v2}") and "bo" in lines[0] and "second" in lines[0]
    assert lines[1].startswith(f"  {v1}")
    back = cli("activate", v1[len("sha256:"):][:10], "--reason", "rollback", "--actor", "ops",
               "--database", db_url)
    assert back.exit_code == 0 and back.stdout.strip() == v1
    s = Store(db_url)
    assert s.active_version_id() == v1
    assert s.activation_history()[0]["actor"] == "ops"
    s.dispose()
    missing = cli("activate", "sha256:ffff", "--database", db_url)
    assert missing.exit_code == 1 and "no policy version" in missing.stderr
    staged = cli("publish", write_folder(tmp_path / "three", mini_rules("3")), "-m", "later",
                 "--no-activate", "--database", db_url)
    assert staged.exit_code == 0
    s = Store(db_url)
    assert s.active_version_id() == v1 and len(s.list_versions()) == 3
    s.dispose()


def test_publish_of_a_broken_folder_prints_every_error_and_changes_nothing(cli, db_url, tmp_path):
    good = cli("publish", write_folder(tmp_path / "good", mini_rules()), "-m", "ok", "--database", db_url)
    assert good.exit_code == 0
    broken = mini_rules("x")
    broken["shop.yaml"] = broken["shop.yaml"].replace("    says: an order is allowed", "    sayz: an order is allowed")
    folder = write_folder(tmp_path / "broken", broken)
    r = cli("publish", folder, "-m", "typo", "--database", db_url)
    assert r.exit_code == 1
    root = folder.as_posix() + "/"
    err_lines = r.stderr.splitlines()
    assert any(line.startswith(f"{root}shop.yaml:") and ": schema_unknown_field: " in line for line in err_lines)
    assert "    help: did you mean `says`?" in err_lines
    assert r.stdout == ""
    s = Store(db_url)
    assert s.active_version_id() == good.stdout.strip() and len(s.list_versions()) == 1
    s.dispose()

    failing = mini_rules("y")
    failing["tests/shop.yaml"] = failing["tests/shop.yaml"].replace("{allow: true, rules: [E-1]}",
                                                                    "{allow: false, rules: [E-1]}")
    r = cli("publish", write_folder(tmp_path / "failing", failing), "-m", "bad test", "--database", db_url)
    assert r.exit_code == 1 and "test_failed: a customer in good standing may order" in r.stderr


def test_audit_verify_proves_the_chain_or_names_the_first_broken_entry(cli, db_url):
    s = Store(db_url)
    s.migrate()
    s.append_decisions([record(i) for i in range(1, 6)])
    ok = cli("audit", "verify", "--database", db_url)
    assert ok.exit_code == 0 and ok.stdout.strip() == "chain ok: 5 decisions"
    drop_guards(s.engine)  # an intruder with DDL rights
    with s.engine.begin() as conn:
        conn.execute(sa.text("UPDATE decisions SET result = REPLACE(result, 'true', 'false') WHERE seq = 3"))
    s.dispose()
    bad = cli("audit", "verify", "--database", db_url)
    assert bad.exit_code == 1
    assert "entry 3 (decision d-000003)" in bad.stderr


def test_default_database_is_a_sqlite_file_under_var(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORDERGATE_DATABASE_URL", raising=False)
    r = cli("audit", "verify")
    assert r.exit_code == 0 and "chain ok: 0 decisions" in r.stdout
    assert (tmp_path / "var" / "ordergate.sqlite").is_file()
    monkeypatch.setenv("ORDERGATE_DATABASE_URL", f"sqlite:///{tmp_path / 'other.sqlite'}")
    assert cli("versions").stdout.strip() == "no versions stored"
    assert (tmp_path / "other.sqlite").is_file()


def test_an_unreachable_database_exits_2(cli):
    r = cli("versions", "--database", "postgresql+psycopg://postgres@127.0.0.1:1/test")
    assert r.exit_code == 2 and "unavailable" in r.stderr
