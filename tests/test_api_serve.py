"""`ordergate serve`: loopback only without tokens, refusal of a public address without tokens."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from api.auth import is_loopback
from cli import main
from cli.serve import _bind

NO_TOKENS = {"ORDERGATE_TOKENS_FILE": "", "ORDERGATE_TOKENS_DECIDE": "", "ORDERGATE_TOKENS_AUDIT": "", "ORDERGATE_TOKENS_ADMIN": ""}


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
