"""A compiled PolicySet as bytes, so that one process compiles a version and others load it.

Compiling a version (YAML, schema checks, lowering, code generation and Python's ``compile``)
takes a tenth of a second for a policy set of a few hundred rules; loading what a compile
produced takes a few milliseconds. ``dump`` writes a PolicySet as an artifact; ``load`` gives back a
PolicySet that decides exactly as the compiled one did (the same generated code objects, row
indexes, constants and IR), or raises ``ArtifactError``: the caller compiles instead.

An artifact holds code: loading one runs what its writer generated, so it is only as trustworthy
as the place it was read from (the caller reads it from a folder only its own user can write).
Within that, ``load`` checks that the bytes are whole (a SHA-256 of the body), that they were
written for the expected version and by the same engine build (``build``: the caller's
fingerprint of the engine's code and of the Python that runs it; code objects only load in the
Python that made them), and rebuilds only classes and functions defined by this engine and a few
built-in types, by their plain names. It never makes a damaged or foreign artifact into a policy
set: any mismatch or damage is an ``ArtifactError`` naming what was wrong.

The body is a sequence of small pieces (one per action plan, then the rules and the IR) sharing one
pickle memo: ``dump`` and ``load`` call ``pause`` between two pieces, so a caller answering requests on other
threads can let them run (no single step holds the interpreter for long).
"""
from __future__ import annotations

import builtins
import gc
import hashlib
import io
import json
import linecache
import marshal
import pickle
import types
from array import array
from collections.abc import Callable
from typing import Any

from . import runtime
from .decision import ReadOnlyDict, ReadOnlyList
from .evaluate import PolicySet
from .load import SourceMap

__all__ = ["MAGIC", "ArtifactError", "dump", "load"]

MAGIC = b"ordergate-compiled-policy 1\n"
_PROTOCOL = 5
_GENERATED = "<ordergate plan "          # the file name of every generated code object (``codegen.file_name``)

# objects that exist once per process and are compared by identity: never copied, named instead
_SINGLETONS: dict[str, Any] = {"absent": runtime.ABSENT, "builtins": builtins.__dict__}
_SINGLETON_IDS = {id(v): k for k, v in _SINGLETONS.items()}

# what the body may rebuild: this engine's types and functions, and these built-in ones
_BUILTINS = frozenset({"bool", "bytes", "complex", "dict", "float", "frozenset", "int", "list", "object", "range",
                       "set", "slice", "str", "tuple"})
_OTHER = frozenset({("array", "array"), ("array", "_array_reconstructor")})


class ArtifactError(Exception):
    """The artifact cannot be used (damaged, for another version or engine build, or not loadable)."""


def _code(data: bytes) -> types.CodeType:
    code = marshal.loads(data)
    if type(code) is not types.CodeType or not code.co_filename.startswith(_GENERATED):
        raise ArtifactError("a code object of the artifact is not generated policy code")
    return code


def _function(code: types.CodeType, globals_: dict[str, Any], name: str, defaults: tuple[Any, ...] | None,
              closure: tuple[types.CellType, ...] | None) -> types.FunctionType:
    return types.FunctionType(code, globals_, name, defaults, closure)


# a SourceMap's positions are one array of blocks (written as they are); its extents, when kept, are
# keyed by the id() of each list and mapping of its documents: written by their place in a walk of the
# documents instead, and keyed again by the new objects' ids when loaded. Its two caches start empty.
_SOURCE_MAP_SLOTS = frozenset({"file", "documents", "flat", "root", "extents", "_parent", "_orders"})


def _containers(documents: list[Any]) -> list[Any]:
    """Every list and mapping of ``documents`` (itself first), each once, in one fixed order."""
    found: list[Any] = []
    seen: set[int] = set()
    stack: list[Any] = [documents]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        found.append(node)
        children = node.values() if isinstance(node, dict) else node
        stack.extend(reversed([c for c in children if isinstance(c, (list, dict))]))
    return found


def _by_place(documents: list[Any], positions: dict[int, Any] | None) -> dict[int, Any] | None:
    if positions is None:
        return None
    place = {id(c): i for i, c in enumerate(_containers(documents))}
    return {place[key]: value for key, value in positions.items() if key in place}


def _source_map(file: str, documents: list[Any], flat: Any, root: int, extents: dict[int, Any] | None) -> SourceMap:
    smap = SourceMap(file, extents=extents is not None)
    if not isinstance(flat, array) or flat.typecode != "q" or type(root) is not int or not 0 <= root < len(flat):
        raise ArtifactError(f"the positions of {file} are damaged")
    smap.documents, smap.flat, smap.root = documents, flat, root
    if extents is not None:
        containers = _containers(documents)
        try:
            smap.extents = {id(containers[i]): e for i, e in extents.items()}
        except (IndexError, TypeError):
            raise ArtifactError(f"the positions of {file} do not fit its documents") from None
    return smap


def _cell(*contents: Any) -> types.CellType:
    return types.CellType(*contents)         # no argument: an empty cell


def _method(owner: Any, name: str) -> Any:
    if name.startswith("_") and name != "__contains__":
        raise ArtifactError(f"the artifact asks for the private attribute {name!r}")
    if isinstance(owner, (dict, types.ModuleType, type)):
        # a bound method of a policy set's objects: never a look-up in a namespace (the builtins'
        # dict, a module) or on a class, which would reach any function
        raise ArtifactError(f"the artifact asks for {name!r} of a {type(owner).__name__}, which no policy set holds")
    return getattr(owner, name)


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> str | None:
        return _SINGLETON_IDS.get(id(obj))

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is types.FunctionType and obj.__code__.co_filename.startswith(_GENERATED):
            return _function, (obj.__code__, obj.__globals__, obj.__name__, obj.__defaults__, obj.__closure__)
        if kind is types.CodeType:
            return _code, (marshal.dumps(obj),)
        if kind is types.CellType:
            try:
                return _cell, (obj.cell_contents,)
            except ValueError:  # empty
                return _cell, ()
        if kind is types.MethodType:
            return _method, (obj.__self__, obj.__func__.__name__)
        if kind is types.BuiltinMethodType and not isinstance(obj.__self__, types.ModuleType):
            return _method, (obj.__self__, obj.__name__)
        if kind is SourceMap:
            if set(SourceMap.__slots__) != _SOURCE_MAP_SLOTS:
                raise ArtifactError("the engine's SourceMap changed: artifact.py must learn what it holds")
            return _source_map, (obj.file, obj.documents, obj.flat, obj.root, _by_place(obj.documents, obj.extents))
        if kind is ReadOnlyDict:        # its own __reduce__ makes copies plain dicts; here it stays read-only
            return ReadOnlyDict, (dict(obj),)
        if kind is ReadOnlyList:
            return ReadOnlyList, (list(obj),)
        if kind is types.FunctionType and obj.__module__ == "__main__":
            raise ArtifactError(f"function {obj.__qualname__} cannot be named in another process")
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    def persistent_load(self, pid: Any) -> Any:
        try:
            return _SINGLETONS[pid]
        except (KeyError, TypeError):
            raise ArtifactError(f"the artifact names an unknown object {pid!r}") from None

    def find_class(self, module: str, name: str) -> Any:
        if module == __name__:
            allowed = {"_cell": _cell, "_code": _code, "_function": _function, "_method": _method,
                       "_source_map": _source_map}
            if name in allowed:
                return allowed[name]
        elif "." in name:  # a dotted name walks attributes (pickle protocol 4): anything reachable
            pass
        elif (module == "engine" or module.startswith("engine.")) and not name.startswith("__"):
            found = super().find_class(module, name)
            # a class or function this engine defines, not a name one of its modules imported
            if isinstance(found, (type, types.FunctionType)) and _engine_made(found):
                return found
        elif (module == "builtins" and name in _BUILTINS) or (module, name) in _OTHER:
            return super().find_class(module, name)
        raise ArtifactError(f"the artifact asks for {module}.{name}, which no policy set holds")


def _engine_made(obj: Any) -> bool:
    made_in = getattr(obj, "__module__", None)
    return isinstance(made_in, str) and (made_in == "engine" or made_in.startswith("engine."))


def _pieces(ps: PolicySet) -> list[Any]:
    """What the body holds, in order: each action's plan, generated function and source; then the rules
    and the IR (by then mostly references to what the plans already brought)."""
    pieces: list[Any] = []
    for system, actions in ps.catalogue.items():
        for action in actions:
            fn = ps.function(system, action)
            plan = ps.ir.plan(system, action)
            if fn is None or plan is None:
                raise ArtifactError(f"{system}/{action} has no generated function")
            pieces.append((system, action, plan, fn, _source(fn.__code__.co_filename)))
    pieces.append(ps.rules)
    pieces.append(ps.ir)
    return pieces


def _source(filename: str) -> list[str]:
    lines = linecache.getlines(filename)
    if not lines:
        raise ArtifactError(f"the generated source of {filename} is not known in this process")
    return list(lines)


def dump(ps: PolicySet, build: str, *, pause: Callable[[], object] = lambda: None) -> bytes:
    """The artifact of a compiled PolicySet (``build``: the engine build it is only valid for);
    ``pause`` is called between two pieces."""
    body = io.BytesIO()
    pickler = _Pickler(body, protocol=_PROTOCOL)
    pieces = _pieces(ps)
    for piece in pieces:
        try:
            pickler.dump(piece)            # one memo for every piece: shared objects stay shared
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise ArtifactError(f"the policy set cannot be written as an artifact: {exc}") from None
        pause()
    data = body.getvalue()
    header = {"version": ps.version, "build": build, "pieces": len(pieces), "bytes": len(data),
              "sha256": hashlib.sha256(data).hexdigest()}
    return MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n" + data


def _header(data: bytes, version: str, build: str) -> tuple[dict[str, Any], memoryview]:
    if not data.startswith(MAGIC):
        raise ArtifactError("not an artifact of this engine (unknown format)")
    end = data.find(b"\n", len(MAGIC))
    try:
        header = json.loads(data[len(MAGIC):end]) if end > 0 else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or not {"version", "build", "pieces", "bytes", "sha256"} <= header.keys():
        raise ArtifactError("the artifact's header is damaged")
    if header["version"] != version:
        raise ArtifactError(f"the artifact is of version {str(header['version'])[:80]}, not {version}")
    if header["build"] != build:
        raise ArtifactError("the artifact was written by another engine build")
    body = memoryview(data)[end + 1:]
    if len(body) != header["bytes"] or hashlib.sha256(body).hexdigest() != header["sha256"]:
        raise ArtifactError("the artifact is damaged (its checksum does not match)")
    if type(header["pieces"]) is not int or header["pieces"] < 2:
        raise ArtifactError("the artifact's header is damaged")
    return header, body


def load(data: bytes, version: str, build: str, *, pause: Callable[[], object] = lambda: None) -> PolicySet:
    """The PolicySet of an artifact written by ``dump`` for ``version`` with the same ``build``.

    ``pause`` is called between two pieces of the body. Raises ``ArtifactError`` when the artifact is
    damaged, for another version or build, or holds anything a compiled policy set does not.
    """
    header, body = _header(data, version, build)
    was_collecting = gc.isenabled()
    gc.disable()   # as in compile: what a load allocates all lives on, a collection would find nothing
    try:
        return _load(header, body, version, pause)
    finally:
        if was_collecting:
            gc.enable()


def _load(header: dict[str, Any], body: memoryview, version: str, pause: Callable[[], object]) -> PolicySet:
    reader = _Unpickler(io.BytesIO(body))
    functions: dict[str, dict[str, Any]] = {}
    sources: dict[str, list[str]] = {}
    try:
        for _ in range(header["pieces"] - 2):
            system, action, _plan, fn, source = reader.load()
            if type(fn) is not types.FunctionType:
                raise ArtifactError(f"{system}/{action} is not a generated function")
            functions.setdefault(system, {})[action] = fn
            sources[fn.__code__.co_filename] = source
            pause()
        rules = reader.load()
        pause()
        policy_ir = reader.load()
    except ArtifactError:
        raise
    except Exception as exc:  # a body that passed the checksum but does not load: refused all the same
        raise ArtifactError(f"the artifact does not load: {type(exc).__name__}: {exc}") from None
    return _assemble(policy_ir, functions, rules, sources, version)


def _assemble(policy_ir: Any, functions: dict[str, dict[str, Any]], rules: Any, sources: dict[str, list[str]],
              version: str) -> PolicySet:
    if getattr(policy_ir, "version", None) != version or type(rules) is not tuple:
        raise ArtifactError("the artifact does not hold a policy set of this version")
    plans = {name: set(s.plans) for name, s in policy_ir.systems.items()}
    if {name: set(actions) for name, actions in functions.items()} != {k: v for k, v in plans.items() if v}:
        raise ArtifactError("the artifact's generated functions do not match its plans")
    for filename, lines in sources.items():   # tracebacks and ``codegen.source_of`` show generated code
        linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)
    return PolicySet(policy_ir, functions, rules)
