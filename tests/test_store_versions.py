"""Policy versions: migrations, publish, activate, rollback, rejection — on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from test_store_helpers import drop_guards, mini_rules

import engine
from store import InvalidInput, PublishRejected, Store, StoreError, VersionNotFound

TABLES = {"policy_versions", "policy_files", "activations", "store_heads", "decisions",
          "decision_rules", "alembic_version"}


def _snapshot(s: Store) -> dict:
    """Everything publishing may change."""
    return {
        "active": s.active_version_id(),
        "versions": [v.id for v in s.list_versions()],
        "history": s.activation_history(),
    }


def test_migrations_create_the_schema_on_an_empty_database(db_url):
    s = Store(db_url)
    assert s.schema_revision() is None
    assert not s.schema_is_current()
    s.migrate()
    assert s.schema_is_current()
    names = set(sa.inspect(s.engine).get_table_names())
    assert names >= TABLES
    s.migrate()  # idempotent
    assert s.schema_is_current() and s.schema_revision() is not None
    assert s.active_version_id() is None
    assert s.active_version() is None
    assert s.list_versions() == []
    assert s.verify_chain().ok and s.verify_chain().checked == 0
    s.ping()
    s.dispose()


def test_an_unmigrated_database_gives_a_clear_error(db_url):
    s = Store(db_url)
    with pytest.raises(StoreError):
        s.active_version_id()
    with pytest.raises(StoreError):
        s.ping()
    s.dispose()


def test_publish_stores_files_author_message_and_activates(store):
    files = mini_rules()
    v = store.publish(files, author="ana", message="first rules")
    expected = engine.compile_files(files).version
    assert v.id == expected and v.id.startswith("sha256:")
    assert v.author == "ana" and v.message == "first rules" and v.parent is None
    assert v.created_at.tzinfo is not None and v.created_at.utcoffset().total_seconds() == 0
    assert v.files == files
    assert store.active_version_id() == v.id
    got = store.get_version(v.id)
    assert got.files == files and got.author == "ana" and got.created_at == v.created_at
    hist = store.activation_history()
    assert [h["version_id"] for h in hist] == [v.id]
    assert hist[0]["actor"] == "ana" and hist[0]["previous_version_id"] is None
    ps = store.policy_set(v.id)
    assert ps.version == v.id
    assert store.policy_set(v.id) is ps  # cached
    d = ps.decide("order.create", {"context": {"system": "shop"}, "resource": {"customer": {"blocked": True}}})
    assert d.allow is False and d.rules == ("G-1",)


def test_second_publish_records_parent_and_rollback_reactivates_the_old_one(store):
    v1 = store.publish(mini_rules("."), author="ana", message="v1")
    v2 = store.publish(mini_rules("!"), author="bo", message="v2")
    assert v1.id != v2.id
    assert v2.parent == v1.id
    assert store.active_version_id() == v2.id
    assert [v.id for v in store.list_versions()] == [v2.id, v1.id]
    assert store.list_versions()[0].files is None  # listing does not load bodies

    back = store.activate(v1.id, actor="ops", reason="v2 misprices")
    assert back.id == v1.id
    assert store.active_version_id() == v1.id
    assert store.active_version().files == mini_rules(".")
    hist = store.activation_history()
    assert [(h["version_id"], h["previous_version_id"], h["actor"]) for h in hist] == [
        (v1.id, v2.id, "ops"), (v2.id, v1.id, "bo"), (v1.id, None, "ana")]
    assert hist[0]["reason"] == "v2 misprices"
    # activating the active version again changes nothing
    store.activate(v1.id, actor="ops")
    assert len(store.activation_history()) == 3
    # a version can be published without activation
    v3 = store.publish(mini_rules("?"), author="cy", message="v3", activate=False)
    assert store.active_version_id() == v1.id and v3.parent == v1.id
    assert store.resolve_version(v3.id[len("sha256:"):][:12]) == v3.id


def test_republishing_identical_content_stores_nothing_new_and_reactivates(store):
    v1 = store.publish(mini_rules("."), author="ana", message="v1")
    v2 = store.publish(mini_rules("!"), author="bo", message="v2")
    again = store.publish(mini_rules("."), author="cy", message="same as v1")
    assert again.id == v1.id
    assert again.author == "ana" and again.message == "v1"  # the stored version is unchanged
    assert len(store.list_versions()) == 2
    assert store.active_version_id() == v1.id
    assert store.activation_history()[0]["previous_version_id"] == v2.id
    n = len(store.activation_history())
    store.publish(mini_rules("."), author="cy", message="again")  # already active: no new activation
    assert len(store.activation_history()) == n


def test_activating_an_unknown_version_changes_nothing(store):
    v1 = store.publish(mini_rules(), author="ana", message="v1")
    before = _snapshot(store)
    with pytest.raises(VersionNotFound):
        store.activate("sha256:" + "0" * 64, actor="ops")
    with pytest.raises(VersionNotFound):
        store.get_version("sha256:nope")
    with pytest.raises(VersionNotFound):
        store.policy_set("sha256:nope")
    assert _snapshot(store) == before and store.active_version_id() == v1.id


def test_a_broken_candidate_changes_nothing_and_reports_every_error_with_location(store):
    v1 = store.publish(mini_rules(), author="ana", message="v1")
    before = _snapshot(store)
    broken = mini_rules("x")
    broken["shop.yaml"] = (broken["shop.yaml"]
                           .replace("    says: an order is allowed", "    sayz: an order is allowed")
                           .replace("    title: test source", "    titel: test source"))
    with pytest.raises(PublishRejected) as info:
        store.publish(broken, author="ana", message="typo")
    errors = info.value.errors
    assert len(errors) >= 2
    codes = {e["code"] for e in errors}
    assert "schema_unknown_field" in codes
    for e in errors:
        assert set(e) >= {"code", "message", "location", "help"}
        assert e["location"].startswith("shop.yaml:")
    lines = {int(e["location"].split(":")[1]) for e in errors}
    assert len(lines) >= 2  # two different places reported, not just the first
    assert any(e["help"] and "says" in e["help"] for e in errors)
    assert _snapshot(store) == before and store.active_version_id() == v1.id


def test_a_failing_yaml_test_rejects_the_candidate(store):
    v1 = store.publish(mini_rules(), author="ana", message="v1")
    before = _snapshot(store)
    bad = mini_rules("y")
    bad["tests/shop.yaml"] = bad["tests/shop.yaml"].replace("expect: {allow: false, rules: [G-1]}",
                                                            "expect: {allow: true, rules: [G-1]}")
    with pytest.raises(PublishRejected) as info:
        store.publish(bad, author="ana", message="wrong test")
    failures = info.value.test_failures
    assert [f["kind"] for f in failures] == ["failed"]
    assert failures[0]["name"] == "a blocked customer is denied"
    assert failures[0]["file"] == "tests/shop.yaml" and failures[0]["problems"]
    assert info.value.errors == []
    assert _snapshot(store) == before and store.active_version_id() == v1.id


def test_an_uncovered_rule_rejects_the_candidate(store):
    files = mini_rules()
    files["tests/shop.yaml"] = files["tests/shop.yaml"].split("  - name: a customer in good standing")[0]
    with pytest.raises(PublishRejected) as info:
        store.publish(files, author="ana", message="untested effect")
    assert info.value.uncovered == ["E-1"]
    assert store.list_versions() == [] and store.active_version_id() is None


def test_bad_publish_arguments_are_refused(store):
    for files, author, message in [({}, "ana", "m"), ({"a.yaml": 1}, "ana", "m"),
                                   (mini_rules(), "", "m"), (mini_rules(), "ana", "  ")]:
        with pytest.raises(InvalidInput):
            store.publish(files, author=author, message=message)
    with pytest.raises(InvalidInput):
        store.activate("", actor="ops")
    assert store.list_versions() == []


def test_versions_and_the_activation_history_refuse_updates_and_deletes(store):
    v1 = store.publish(mini_rules(), author="ana", message="v1")
    for statement in ("UPDATE activations SET actor = 'someone else'",
                      "DELETE FROM activations",
                      "UPDATE policy_versions SET author = 'someone else'",
                      "DELETE FROM policy_files",
                      "UPDATE policy_files SET content = 'x'"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(sa.text(statement))
    assert store.activation_history()[0]["actor"] == "ana"
    assert store.get_version(v1.id).files == mini_rules() and store.get_version(v1.id).author == "ana"


def test_altered_stored_files_are_detected_when_compiled(store):
    v1 = store.publish(mini_rules(), author="ana", message="v1")
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM policy_files"))
    drop_guards(store.engine)
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE policy_files SET content = REPLACE(content, 'cannot order', 'may order') "
                             "WHERE path = 'shop.yaml'"))
    fresh = Store(store.url)
    with pytest.raises(StoreError, match="altered"):
        fresh.policy_set(v1.id)
    fresh.dispose()


def test_bad_urls_and_an_unreachable_database_raise_store_error(tmp_path):
    with pytest.raises(StoreError):
        Store("not a url")
    with pytest.raises(StoreError):
        Store("mysql://x@localhost/db")
    down = Store("postgresql+psycopg://postgres@127.0.0.1:1/test")
    with pytest.raises(StoreError, match="unavailable"):
        down.ping()
    with pytest.raises(StoreError):
        down.active_version_id()
    down.dispose()


def test_the_schema_module_matches_the_migrations(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from store.schema import metadata

    s = Store(db_url)
    s.migrate()
    with s.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    s.dispose()
    assert diff == []


def test_a_copy_of_the_shipped_rules_with_typos_is_rejected_with_every_location(store, rules_dir):
    v1 = store.publish(mini_rules(), author="ana", message="v1")
    before = _snapshot(store)
    files = engine.read_folder(rules_dir)
    rule_files = sorted(p for p in files if not p.startswith("tests/"))
    assert len(rule_files) >= 2
    first, second = rule_files[0], rule_files[1]
    assert "says:" in files[first] and "says:" in files[second]
    files[first] = files[first].replace("says:", "sayz:", 1)      # an unknown field
    files[second] = files[second].replace("says:", "sayz:", 1)
    with pytest.raises(PublishRejected) as info:
        store.publish(files, author="ana", message="typos")
    located = {e["location"].split(":")[0] for e in info.value.errors if e["location"]}
    assert {first, second} <= located
    assert all(e["code"] and e["message"] for e in info.value.errors)
    assert _snapshot(store) == before and store.active_version_id() == v1.id


def test_a_row_table_with_a_gap_and_no_no_match_is_never_published(store):
    """What `ordergate check` refuses as an error, publishing refuses too: a request in the gap
    would otherwise be a silent allow on live traffic."""
    from conftest import ROOT

    import engine

    files = engine.read_folder(ROOT / "tests" / "fixtures" / "verify" / "gap")
    with pytest.raises(PublishRejected) as refused:
        store.publish(files, author="analyst", message="a table with a gap")
    assert "table_gap" in {e["code"] for e in refused.value.errors}
    assert store.list_versions() == []
