"""Shared fixtures.

``db_url`` runs a test once on SQLite and once on PostgreSQL. PostgreSQL comes from
``ORDERGATE_TEST_POSTGRES_URL``; each test gets a schema of its own that is dropped afterwards.
Without the variable the PostgreSQL runs are skipped with the reason printed; with
``ORDERGATE_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) an unreachable server fails instead.
"""
from __future__ import annotations

import contextlib
import os
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_RULES = ROOT / "rules"
# The order-to-cash fixture policy: a frozen copy of a realistic policy set (five systems, rules
# and YAML tests). Tests that need a policy of that size use it, never the shipped rules/, so
# that an analyst's correct change to rules/ keeps every Python test green.
O2C_RULES = ROOT / "tests" / "fixtures" / "o2c"

_PG_ENV = "ORDERGATE_TEST_POSTGRES_URL"


def _pg_base_url() -> str:
    url = os.environ.get(_PG_ENV)
    if not url:
        if os.environ.get("ORDERGATE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{_PG_ENV} is not set but ORDERGATE_REQUIRE_POSTGRES=1")
        pytest.skip(f"PostgreSQL tests need {_PG_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    return url


def _new_pg_schema(base_url: str) -> tuple[str, str]:
    import sqlalchemy as sa

    schema = "t_" + uuid.uuid4().hex[:12]
    try:
        engine = sa.create_engine(base_url)
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        engine.dispose()
    except Exception as exc:  # server down: skip, or fail in CI
        if os.environ.get("ORDERGATE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL at {base_url} is required but unreachable: {exc}")
        pytest.skip(f"PostgreSQL at {base_url} unreachable: {exc}")
    sep = "&" if "?" in base_url else "?"
    return schema, f"{base_url}{sep}options={quote(f'-csearch_path={schema}')}"


def _drop_pg_schema(base_url: str, schema: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(base_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@contextlib.contextmanager
def _pg_schema_url():
    base = _pg_base_url()
    schema, url = _new_pg_schema(base)
    try:
        yield url
    finally:
        _drop_pg_schema(base, schema)


@pytest.fixture
def pg_url():
    """A PostgreSQL URL whose search_path is a fresh, empty schema."""
    with _pg_schema_url() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'ordergate.sqlite'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """The same test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ordergate.sqlite'}"
    else:
        with _pg_schema_url() as url:
            yield url


@pytest.fixture
def store(db_url):
    """A migrated policy store on SQLite and on PostgreSQL (see ``db_url``)."""
    from store import Store

    s = Store(db_url)
    s.migrate()
    yield s
    s.dispose()


@pytest.fixture(scope="session")
def rules_dir() -> Path:
    """The order-to-cash fixture policy folder (see ``O2C_RULES``)."""
    return O2C_RULES


@pytest.fixture(scope="session")
def policy_set():
    """The order-to-cash fixture policy, compiled once per test session."""
    import engine

    return engine.load_policy_set(O2C_RULES)


# -- the shipped rules/ are tested by their YAML tests only ---------------------------------------
# A test that opens a file under rules/ fails, unless it is marked ``shipped_policy`` (the tests
# of the shipped set itself: its YAML tests, its catalogue, its packaging).
_SHIPPED_PREFIX = str(SHIPPED_RULES) + os.sep
_guarded: list[str] = []


def _refuse_shipped_reads(event: str, args: tuple) -> None:
    if event != "open" or not _guarded or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    path = os.path.abspath(os.fsdecode(args[0]))
    if path.startswith(_SHIPPED_PREFIX):
        raise RuntimeError(
            f"{_guarded[0]} reads the shipped policy ({path}); Python tests use a fixture policy "
            "(tests/fixtures/o2c, or tests/fixtures/mini); only tests of the shipped set itself are "
            "marked @pytest.mark.shipped_policy")


sys.addaudithook(_refuse_shipped_reads)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if item.get_closest_marker("shipped_policy") is None:
        _guarded.append(item.nodeid)
    try:
        yield
    finally:
        _guarded.clear()


@pytest.fixture
def shop_app(sqlite_url, tmp_path):
    """The service (its Flask app) on a fresh SQLite store, serving the shop policy (``api.testing.SHOP``)."""
    from api import create_app
    from api.testing import SHOP, test_config, write_rules

    app = create_app(test_config(sqlite_url, write_rules(tmp_path / "rules", SHOP)))
    yield app
    app.extensions["ordergate"].close()


@pytest.fixture(params=["sequential", "parallel"])
def verify_path(request, monkeypatch):
    """``Store.verify_chain()`` in one process, or ("parallel") with two worker processes verifying
    ranges of 2 entries: every report must be the same. In the parallel case, the ranges' own
    verdict must agree with the report (intact and linked exactly when the report is ok; a break
    at the chain head, beyond it or before the first entry is found after the ranges), and at least one verify must have
    used them."""
    from store import Store, log_verify

    verdicts: list[bool] = []
    calls: list[tuple[bool | None, object]] = []
    if request.param == "parallel":
        real_verify, real_ranges = Store.verify_chain, log_verify._all_ranges_linked

        def ranges(*args):
            linked = real_ranges(*args)
            verdicts.append(linked[0])
            return linked

        def verify_chain(self, jobs=2, chunk=2):
            before = len(verdicts)
            report = real_verify(self, jobs=jobs, chunk=chunk)
            calls.append((verdicts[before] if len(verdicts) > before else None, report))
            return report

        monkeypatch.setattr(log_verify, "_all_ranges_linked", ranges)
        monkeypatch.setattr(Store, "verify_chain", verify_chain)
    yield request.param
    if request.param == "parallel":
        for linked, report in calls:
            # a rule row outside the chain (beyond its head, before its first entry) is found after the ranges
            if linked is not None and "chain head" not in report.reason and "first entry" not in report.reason:
                assert linked == report.ok, report
        # a test skipped before it verified (no PostgreSQL configured) made no call to check
        if calls:
            assert any(linked is not None for linked, _ in calls), "no verify used the worker processes"
