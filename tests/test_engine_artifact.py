"""A compiled PolicySet written as an artifact and loaded back decides exactly as the compiled one;
a damaged, foreign or mismatched artifact is refused, never made into a policy set."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import itertools
import json
import linecache
import pickle

import pytest
from conftest import O2C_RULES
from corpus_record import POLICY, digest, read_corpus

import engine
from engine import artifact, codegen, runtime
from engine.load import SourceMap
from engine.testing import run_tests

BUILD = "test-build"
FOLDERS = [O2C_RULES, O2C_RULES.parent / "mini"]


def _paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*path, i))


def _same(a, b, where):
    """``a`` and ``b`` hold equal values all the way down; a SourceMap (equal only to itself) gives
    the same location for every path of its documents."""
    assert type(a) is type(b), where
    if isinstance(a, SourceMap):
        assert a is not b and a.file == b.file and a.documents == b.documents, where
        for path in _paths(a.documents):
            assert a.at(path) == b.at(path) and a.at(path, key=True) == b.at(path, key=True), (where, path)
            assert a.written_at(path) == b.written_at(path), (where, path)
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            _same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            _same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def o2c():
    files = engine.read_folder(O2C_RULES)
    return files, engine.compile_files(files)


def _loaded(ps, **kwargs):
    return artifact.load(artifact.dump(ps, BUILD), ps.version, BUILD, **kwargs)


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_a_loaded_policy_set_decides_every_yaml_test_as_the_compiled_one(folder):
    files = engine.read_folder(folder)
    compiled = engine.compile_files(files)
    loaded = _loaded(compiled)
    assert loaded is not compiled and loaded.version == compiled.version
    assert loaded.catalogue == compiled.catalogue
    _same(loaded.ir, compiled.ir, "ir")
    _same(loaded.rules, compiled.rules, "rules")
    assert [r.line for r in loaded.rules] == [r.line for r in compiled.rules]
    report = run_tests(compiled, files)
    assert report.results and run_tests(loaded, files).passed == report.passed
    for result in report.results:
        for explain in (False, True):
            assert loaded.decide(result.action, result.input, explain=explain) == \
                compiled.decide(result.action, result.input, explain=explain), result.name


def test_a_loaded_policy_set_decides_the_recorded_corpus_unchanged():
    loaded = _loaded(engine.load_policy_set(POLICY))
    changed = [(action, body) for action, body, explain, want in itertools.islice(read_corpus(), 20000)
               if digest(loaded.decide(action, body, explain=explain).to_dict()) != want]
    assert not changed, f"{len(changed)} decisions changed, the first: {changed[0]}"


def test_the_absent_marker_stays_the_one_the_runtime_compares_with(o2c):
    _, compiled = o2c
    loaded = _loaded(compiled)
    spaces = [loaded.function(system, action).__globals__ for system, actions in loaded.catalogue.items()
              for action in actions]
    assert spaces and all(space["ABSENT"] is runtime.ABSENT for space in spaces)
    assert all(space["__builtins__"] is __builtins__ or space["__builtins__"] is getattr(__builtins__, "__dict__", None)
               for space in spaces)


def test_obligations_of_a_loaded_policy_set_stay_read_only():
    files = engine.read_folder(O2C_RULES.parent / "mini")
    loaded = _loaded(engine.compile_files(files))
    with_params = [d for r in run_tests(loaded, files).results
                   for d in [loaded.decide(r.action, r.input)] if any(o.params for o in d.obligations)]
    assert with_params, "the fixture gives no obligation with parameters"
    with pytest.raises(TypeError, match="read-only"):
        with_params[0].obligations[0].params["changed"] = 1


def test_the_generated_source_is_known_after_a_load(o2c):
    _, compiled = o2c
    data = artifact.dump(compiled, BUILD)
    system, actions = next(iter(compiled.catalogue.items()))
    name = compiled.function(system, actions[0]).__code__.co_filename
    source = codegen.source_of(compiled.function(system, actions[0]))
    del linecache.cache[name]   # as in a process that never compiled this version
    loaded = artifact.load(data, compiled.version, BUILD)
    assert source and codegen.source_of(loaded.function(system, actions[0])) == source


def test_loading_pauses_between_small_pieces(o2c):
    _, compiled = o2c
    pauses = []
    _loaded(compiled, pause=lambda: pauses.append(1))
    actions = sum(len(a) for a in compiled.catalogue.values())
    assert len(pauses) == actions + 1   # after each action's piece and after the rules


def _body(data: bytes) -> tuple[dict, bytes]:
    end = data.index(b"\n", len(artifact.MAGIC))
    return json.loads(data[len(artifact.MAGIC):end]), data[end + 1:]


def _with_body(header: dict, body: bytes) -> bytes:
    header = dict(header, bytes=len(body), sha256=hashlib.sha256(body).hexdigest())
    return artifact.MAGIC + json.dumps(header).encode() + b"\n" + body


def test_an_artifact_of_another_version_or_build_is_refused(o2c):
    _, compiled = o2c
    data = artifact.dump(compiled, BUILD)
    other = "sha256:" + "0" * 64
    with pytest.raises(artifact.ArtifactError, match=f"is of version {compiled.version}, not {other}"):
        artifact.load(data, other, BUILD)
    with pytest.raises(artifact.ArtifactError, match="another engine build"):
        artifact.load(data, compiled.version, "another-build")


@pytest.mark.parametrize("damage", ["flipped byte", "truncated", "empty", "not an artifact", "bad header"])
def test_a_damaged_artifact_is_refused(o2c, damage):
    _, compiled = o2c
    data = artifact.dump(compiled, BUILD)
    broken = {"flipped byte": data[:-100] + bytes([data[-100] ^ 1]) + data[-99:],
              "truncated": data[: len(data) // 2], "empty": b"", "not an artifact": b"\x80\x05garbage",
              "bad header": artifact.MAGIC + b"{not json\n" + data[len(artifact.MAGIC):]}[damage]
    with pytest.raises(artifact.ArtifactError, match="damaged|unknown format"):
        artifact.load(broken, compiled.version, BUILD)


def test_a_body_that_asks_for_anything_but_engine_types_is_refused_even_with_a_good_checksum(o2c):
    _, compiled = o2c
    header, _ = _body(artifact.dump(compiled, BUILD))

    class Evil:
        def __reduce__(self):
            import os
            return os.system, ("echo never run",)

    forged = _with_body(header, pickle.dumps(Evil(), protocol=5))
    with pytest.raises(artifact.ArtifactError, match=r"asks for (posix|os|nt)\.system"):
        artifact.load(forged, compiled.version, BUILD)


def _short(text: str) -> bytes:
    raw = text.encode()
    return pickle.SHORT_BINUNICODE + bytes([len(raw)]) + raw


@pytest.mark.parametrize("body", [
    # a dotted name walks attributes from an engine module to the builtins
    b"\x80\x05" + _short("engine") + _short("artifact.builtins.eval") + pickle.STACK_GLOBAL
    + _short("6*7") + pickle.TUPLE1 + pickle.REDUCE + pickle.STOP,
    # what an engine module imported (a module, another library's class) is not the engine's own
    b"\x80\x05" + _short("engine.load") + _short("yaml") + pickle.STACK_GLOBAL + pickle.STOP,
    b"\x80\x05" + _short("engine.codegen") + _short("attrgetter") + pickle.STACK_GLOBAL + pickle.STOP,
    # a method looked up in the builtins' namespace (the dict every generated function shares)
    b"\x80\x05" + _short("engine.artifact") + _short("_method") + pickle.STACK_GLOBAL
    + _short("builtins") + pickle.BINPERSID + _short("get") + pickle.TUPLE2 + pickle.REDUCE + pickle.STOP,
], ids=["dotted name", "imported module", "imported class", "namespace method"])
def test_the_unpickler_reaches_nothing_beyond_what_a_policy_set_holds(body):
    with pytest.raises(artifact.ArtifactError, match="which no policy set holds"):
        artifact._Unpickler(io.BytesIO(body)).load()


def test_a_body_that_does_not_hold_a_policy_set_is_refused(o2c):
    _, compiled = o2c
    header, body = _body(artifact.dump(compiled, BUILD))
    with pytest.raises(artifact.ArtifactError, match="does not load"):
        artifact.load(_with_body(header, body[: len(body) // 3]), compiled.version, BUILD)
    # well-formed pickles of allowed objects that are still no policy set: each refused by name
    for pieces, message in (([("s", "a", None, 0, [])], "s/a is not a generated function"),
                            ([], "does not hold a policy set of this version")):
        stream = io.BytesIO()
        for piece in pieces + [(), ()]:
            pickle.dump(piece, stream, protocol=5)
        with pytest.raises(artifact.ArtifactError, match=message):
            artifact.load(_with_body(dict(header, pieces=len(pieces) + 2), stream.getvalue()), compiled.version, BUILD)


def test_a_source_map_with_extents_points_at_the_same_text_after_a_load():
    from engine.load import load_text

    text = (O2C_RULES / "pricing.yaml").read_text(encoding="utf-8")
    loaded_file, errors = load_text("pricing.yaml", text, extents=True)
    assert loaded_file is not None and not errors
    smap = loaded_file.source
    stream = io.BytesIO()
    artifact._Pickler(stream, protocol=5).dump(smap)
    again = artifact._Unpickler(io.BytesIO(stream.getvalue())).load()
    assert again.extents is not None and any(again.written(c) for c in artifact._containers(again.documents))
    _same(again, smap, "source map")
