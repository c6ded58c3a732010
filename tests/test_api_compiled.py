"""A published version is compiled once per server: the publishing process writes it, every worker
loads it; a damaged or foreign artifact is refused with a log line and the worker compiles instead."""
from __future__ import annotations

import logging
import os

import pytest
from test_api_reload import _wait_for

import api.compiled as compiled
import engine
from api import create_app
from api.compiled import Artifacts
from api.testing import ALLOWED, SHOP, SHOP_V2, test_config, write_rules

LOADED = "loaded from the server's compiled artifact"


@pytest.fixture
def shop():
    return engine.compile_files(SHOP)


def test_an_artifact_written_is_loaded_back_and_decides_the_same(tmp_path, shop):
    artifacts = Artifacts(tmp_path / ".compiled")
    path = artifacts.write(shop)
    assert path is not None and path.name == shop.version.removeprefix("sha256:") + ".policy"
    assert (tmp_path / ".compiled").stat().st_mode & 0o777 == 0o700
    steps = []
    loaded = artifacts.load(shop.version, step=lambda: steps.append(1))
    assert loaded is not None and loaded is not shop and steps
    decision = loaded.decide(ALLOWED["action"], ALLOWED["input"], explain=True)
    assert decision.allow and decision == shop.decide(ALLOWED["action"], ALLOWED["input"], explain=True)


def test_no_artifact_means_none_and_no_complaint(tmp_path, shop, caplog):
    artifacts = Artifacts(tmp_path / ".compiled")
    with caplog.at_level(logging.WARNING, "ordergate"):
        assert artifacts.load(shop.version) is None
        assert artifacts.load("../../etc/passwd") is None and artifacts.path("../../etc/passwd") is None
    assert caplog.records == []


@pytest.mark.parametrize("damage", ["truncated", "another build"])
def test_a_damaged_or_foreign_artifact_is_refused_with_its_reason(tmp_path, shop, caplog, monkeypatch, damage):
    artifacts = Artifacts(tmp_path / ".compiled")
    path = artifacts.write(shop)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:-10])
    else:
        monkeypatch.setattr(compiled, "engine_build", lambda: "another engine")
    with caplog.at_level(logging.WARNING, "ordergate"):
        assert artifacts.load(shop.version) is None
    [record] = caplog.records
    reason = "checksum does not match" if damage == "truncated" else "another engine build"
    assert "refused the compiled version" in record.getMessage() and reason in record.getMessage()


def test_the_engine_build_names_the_python_that_runs_it(monkeypatch):
    compiled.engine_build.cache_clear()
    here = compiled.engine_build()
    compiled.engine_build.cache_clear()
    monkeypatch.setattr("sys.version", "another python")
    try:
        assert compiled.engine_build() != here
    finally:
        compiled.engine_build.cache_clear()


def test_only_the_newest_artifacts_are_kept(tmp_path, shop):
    artifacts = Artifacts(tmp_path / ".compiled")
    artifacts.write(shop)
    artifacts.folder.mkdir(exist_ok=True)
    old = []
    for n in range(compiled.KEEP + 2):
        path = artifacts.folder / f"{n:064x}.policy"
        path.write_bytes(b"old")
        os.utime(path, ns=(n * 10**9, n * 10**9))   # older than the one just written
        old.append(path)
    artifacts.prune()
    left = sorted(artifacts.folder.glob("*.policy"))
    assert len(left) == compiled.KEEP and artifacts.path(shop.version) in left
    assert not old[0].exists() and old[-1].exists()


@pytest.fixture
def server(tmp_path):
    """Two apps of one server (a state folder, a SQLite store), as two workers of ``ordergate serve``."""
    rules = write_rules(tmp_path / "rules", SHOP)
    state = tmp_path / "state"
    state.mkdir()
    config = test_config(f"sqlite:///{tmp_path / 'store.sqlite'}", rules, server_state_dir=str(state))
    apps = [create_app(dict(config))]
    apps.append(create_app(dict(config)))
    yield apps, Artifacts.of_server(state)
    for app in apps:
        app.extensions["ordergate"].close()


def _serves(app, version):
    answer = app.test_client().post("/v1/decisions", json=ALLOWED).get_json()
    return answer["policy_version"] == version


def test_a_published_version_is_compiled_by_the_publisher_and_loaded_by_every_worker(server, caplog):
    (one, two), artifacts = server
    with caplog.at_level(logging.INFO, "ordergate"):
        published = one.test_client().post("/v1/versions", json={"files": SHOP_V2, "message": "v2"}).get_json()
        version = published["id"]
        assert artifacts.path(version).exists()          # written by the publishing child
        assert _wait_for(lambda: _serves(one, version) and _serves(two, version))
    loads = [r.getMessage() for r in caplog.records if version in r.getMessage() and "now answering" in r.getMessage()]
    assert len(loads) == 2 and all(LOADED in line for line in loads), loads
    # the obligation only v2 gives (v1 gives `notify`): the loaded version decides
    assert [o["name"] for o in two.test_client().post("/v1/decisions", json=ALLOWED).get_json()["obligations"]] == \
        ["audit_trail"]


def test_a_damaged_artifact_is_refused_and_the_workers_compile_the_version(server, caplog):
    (one, two), artifacts = server
    client = one.test_client()
    version = client.post("/v1/versions", json={"files": SHOP_V2, "message": "v2", "activate": False}).get_json()["id"]
    path = artifacts.path(version)
    data = path.read_bytes()
    path.write_bytes(data[:-200] + bytes(200))
    with caplog.at_level(logging.INFO, "ordergate"):
        client.post(f"/v1/versions/{version}/activate", json={})
        assert _wait_for(lambda: _serves(one, version) and _serves(two, version))
    lines = [r.getMessage() for r in caplog.records]
    assert any("refused the compiled version" in line and "checksum does not match" in line for line in lines)
    assert any(f"now answering with policy version {version} (compiled" in line for line in lines)
    assert path.read_bytes() != data[:-200] + bytes(200)   # written again by a worker that compiled it
    assert artifacts.load(version) is not None


def test_a_worker_that_starts_later_loads_what_a_worker_compiled(server, caplog, tmp_path):
    (one, _), artifacts = server
    version = one.extensions["ordergate"].active_version_id
    assert _wait_for(lambda: artifacts.path(version).exists())   # the first worker compiled it, then wrote it
    with caplog.at_level(logging.INFO, "ordergate"):
        late = create_app(dict(one.extensions["ordergate"].config))
        try:
            assert late.extensions["ordergate"].active_version_id == version
        finally:
            late.extensions["ordergate"].close()
    assert any(LOADED in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("loosen", ["folder writable by others", "artifact writable by others", "folder a symlink"])
def test_an_artifact_others_could_have_written_is_never_loaded(tmp_path, shop, caplog, loosen):
    """An artifact holds code the workers run: one in a folder, or a file, that other users may
    write (or a folder that is a link elsewhere) is refused with its reason, and nothing is written there."""
    artifacts = Artifacts(tmp_path / ".compiled")
    path = artifacts.write(shop)
    assert path is not None and artifacts.load(shop.version) is not None
    if loosen == "folder writable by others":
        os.chmod(artifacts.folder, 0o777)
    elif loosen == "artifact writable by others":
        os.chmod(path, 0o666)
    else:
        os.rename(artifacts.folder, tmp_path / "elsewhere")
        os.symlink(tmp_path / "elsewhere", artifacts.folder)
    with caplog.at_level(logging.WARNING, "ordergate"):
        assert artifacts.load(shop.version) is None
    [record] = caplog.records
    assert "refused the compiled version" in record.getMessage()
    assert ("symbolic link" if loosen == "folder a symlink" else "written by other users") in record.getMessage()
    if loosen != "artifact writable by others":
        caplog.clear()
        with caplog.at_level(logging.WARNING, "ordergate"):
            assert artifacts.write(shop) is None
        assert "was not shared with the workers" in caplog.records[0].getMessage()
        assert not [p for p in artifacts.folder.iterdir() if p.name.endswith(".tmp")]


def test_a_version_read_from_memory_stays_the_newest_kept():
    """``cached`` is a use as ``get`` is: the version a worker keeps asking for is never the one
    evicted when other versions are compiled."""
    from store.versions import CompiledVersions

    kept = CompiledVersions(versions=None, size=2)
    kept.remember("active", "A")
    kept.remember("other", "B")
    assert kept.cached("active") == "A"
    kept.remember("third", "C")
    assert kept.cached("active") == "A" and kept.cached("other") is None
