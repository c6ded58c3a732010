"""Publishing off the request threads: compile, run the YAML tests and store in a child process.

Compiling a candidate and running all its YAML tests is CPU work in Python; on a request thread
it holds the interpreter lock of a worker that is answering decisions (the p99 of decisions
nearly doubled during publishes). ``publish`` runs ``Store.publish`` in a child process against
the same database: the request thread only waits for it. The child is forked from a fork server
that imported the store and the engine once (``FORKSERVER``; elsewhere it is a fresh ``python -m
api.publisher``, which imports them again: as much CPU as the compile and the tests). The child
compiles and tests on a thread of lower CPU priority, so that on a machine short of cores the
workers answering decisions come first (its publish takes longer instead); it writes the compiled
version for the server's workers (``api.compiled``) before the transaction that stores it, which
runs at the server's priority (it holds the writer lock that the workers' decision logs wait for).
A forked child answers through a pipe; ``python -m api.publisher`` reads the request as JSON on
stdin and answers one JSON line on stdout.
"""
from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import typing as t

T = t.TypeVar("T")

#: seconds a publish may take in the child before it is stopped (nothing is stored then)
TIMEOUT = 300.0
#: how much lower than the server's the publishing child's CPU priority is (``nice``)
NICENESS = 10


def publish(store: t.Any, database_url: str, files: t.Mapping[str, str], *, author: str, message: str,
            activate: bool, impact: t.Mapping[str, t.Any] | None = None, timeout: float = TIMEOUT,
            artifacts: str | os.PathLike[str] | None = None) -> t.Any:
    """``store.publish(...)`` done by a child process; returns the stored ``Version``.

    With ``artifacts`` (the server's folder of compiled versions, ``api.compiled``), the child writes
    the compiled candidate there once it passed, before storing it: the workers load it instead of
    compiling it again.

    Raises what ``Store.publish`` raises: ``PublishRejected`` with every error, ``InvalidInput``,
    ``StoreError`` (also when the child fails or takes longer than ``timeout``).
    """
    from store import InvalidInput, PublishRejected, StoreError

    request = {"database_url": database_url, "files": dict(files), "author": author, "message": message,
               "activate": activate, "impact": impact, "artifacts": None if artifacts is None else os.fspath(artifacts)}
    answer = _forked(request, timeout) if FORKSERVER else _spawned(request, timeout)
    if "version" in answer:
        return store.get_version(answer["version"])
    if "rejected" in answer:
        raise PublishRejected(errors=answer["rejected"]["errors"], test_failures=answer["rejected"]["test_failures"])
    if answer.get("kind") == "invalid_input":
        raise InvalidInput(answer["message"])
    raise StoreError(answer.get("message", "the publishing process failed"))


def _spawned(request: dict[str, t.Any], timeout: float) -> dict[str, t.Any]:
    """The answer of ``python -m api.publisher`` (a fresh interpreter, which imports everything again)."""
    from store import StoreError

    try:
        child = subprocess.run([sys.executable, "-m", "api.publisher"], input=json.dumps(request),
                               capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise StoreError(f"publishing took longer than {timeout:g} s and was stopped; nothing changed") from None
    try:
        return t.cast(dict[str, t.Any], json.loads(child.stdout.strip().splitlines()[-1]))
    except (IndexError, ValueError):
        detail = (child.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise StoreError(f"the publishing process failed (exit {child.returncode}): {detail}") from None


#: where the platform has it, each publish runs in a process forked from this process's fork server,
#: which imported the store and the engine once: a fresh interpreter spent as much CPU importing them
#: as compiling and testing the candidate (and that CPU slowed the workers answering decisions)
FORKSERVER = "forkserver" in multiprocessing.get_all_start_methods()
PRELOAD = ["api.publisher", "api.compiled", "store", "engine.verify", "engine.testing", "engine.artifact"]
_context: t.Any = None
_context_lock = threading.Lock()


def _forkserver() -> t.Any:
    global _context
    with _context_lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOAD)
            _context = context
        return _context


def _forked(request: dict[str, t.Any], timeout: float) -> dict[str, t.Any]:
    """The answer of ``_answer(request)`` in a process forked from the fork server."""
    from store import StoreError

    context = _forkserver()
    reader, writer = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(request, writer), name="ordergate-publish", daemon=True)
    try:
        child.start()
        writer.close()
        if not reader.poll(timeout):
            raise StoreError(f"publishing took longer than {timeout:g} s and was stopped; nothing changed")
        return t.cast(dict[str, t.Any], reader.recv())
    except EOFError:   # the child ended without an answer
        child.join(5)
        raise StoreError(f"the publishing process failed (exit {child.exitcode})") from None
    finally:
        if child.is_alive():
            child.kill()
        if child.pid is not None:
            child.join(5)
        reader.close()


def _child(request: dict[str, t.Any], writer: t.Any) -> None:
    writer.send(_answer(request))
    writer.close()


_lowered_process = False


def _lower_this_thread() -> None:
    """Lower the CPU priority of the calling thread by ``NICENESS`` (on Linux a thread has its own; elsewhere
    the whole process is lowered, once)."""
    global _lowered_process
    if sys.platform.startswith("linux"):
        me = threading.get_native_id()
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, me, min(os.getpriority(os.PRIO_PROCESS, me) + NICENESS, 19))
    elif not _lowered_process:
        _lowered_process = True
        with contextlib.suppress(OSError):
            os.nice(NICENESS)


def lowered(work: t.Callable[[], T]) -> T:
    """``work()`` run on a thread of lower CPU priority; its result, or its exception raised here."""
    done: dict[str, t.Any] = {}

    def run() -> None:
        _lower_this_thread()
        try:
            done["result"] = work()
        except BaseException as exc:  # handed to the caller
            done["error"] = exc

    thread = threading.Thread(target=run, name="ordergate-publish-check")
    thread.start()
    thread.join()
    if "error" in done:
        raise done["error"]
    return t.cast(T, done["result"])


def _imports() -> None:
    import engine.verify  # noqa: F401
    import store  # noqa: F401
    from api.compiled import engine_build

    engine_build()  # of the engine just imported


def _answer(request: dict[str, t.Any]) -> dict[str, t.Any]:
    # The child's CPU yields to the workers answering decisions (the p99 of decisions rose 1.7x while
    # versions were published back to back on two cores): its imports, the compile and the tests run
    # on a thread of lower priority. The transaction that stores the version runs at the server's
    # priority: it holds the database's writer lock, which the workers' decision logs wait for.
    lowered(_imports)
    from store import InvalidInput, PublishRejected, Store, StoreError

    store = Store(request["database_url"])
    artifacts = None
    if request.get("artifacts"):
        from api.compiled import Artifacts

        artifacts = Artifacts(request["artifacts"])

    def checking(check: t.Callable[[], t.Any]) -> t.Any:
        return lowered(check if artifacts is None else lambda: artifacts.sharing(check))

    try:
        version = store.publish(request["files"], author=request["author"], message=request["message"],
                                activate=request["activate"], impact=request.get("impact"), checking=checking)
        return {"version": version.id}
    except PublishRejected as exc:
        return {"rejected": {"errors": exc.errors, "test_failures": exc.test_failures}}
    except InvalidInput as exc:
        return {"kind": "invalid_input", "message": str(exc)}
    except StoreError as exc:
        return {"kind": "store_error", "message": str(exc)}
    finally:
        store.dispose()


def _main() -> int:
    print(json.dumps(_answer(json.loads(sys.stdin.read()))))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
