"""Publishing off the request threads: compile, run the YAML tests and store in a child process.

Compiling a candidate and running all its YAML tests is CPU work in Python; on a request thread
it holds the interpreter lock of a worker that is answering decisions (the p99 of decisions
nearly doubled during publishes). ``publish`` runs ``Store.publish`` in a fresh interpreter
(``python -m api.publisher``) against the same database: the request thread only waits for it. The
child compiles and tests on a thread of lower CPU priority, so that on a machine short of cores the
workers answering decisions come first (its publish takes longer instead); it writes the compiled
version for the server's workers (``api.compiled``) before the transaction that stores it, which
runs at the server's priority (it holds the writer lock that the workers' decision logs wait for).
The child's answer is one JSON line on stdout; the files arrive as JSON on stdin.
"""
from __future__ import annotations

import contextlib
import json
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

    request = json.dumps({"database_url": database_url, "files": dict(files), "author": author,
                          "message": message, "activate": activate, "impact": impact,
                          "artifacts": None if artifacts is None else os.fspath(artifacts)})
    try:
        child = subprocess.run([sys.executable, "-m", "api.publisher"], input=request, capture_output=True,
                               text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise StoreError(f"publishing took longer than {timeout:g} s and was stopped; nothing changed") from None
    try:
        answer = json.loads(child.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        detail = (child.stderr.strip().splitlines() or ["no output"])[-1][:300]
        raise StoreError(f"the publishing process failed (exit {child.returncode}): {detail}") from None
    if "version" in answer:
        return store.get_version(answer["version"])
    if "rejected" in answer:
        raise PublishRejected(errors=answer["rejected"]["errors"], test_failures=answer["rejected"]["test_failures"])
    if answer.get("kind") == "invalid_input":
        raise InvalidInput(answer["message"])
    raise StoreError(answer.get("message", "the publishing process failed"))


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


def _main() -> int:
    # The child's CPU yields to the workers answering decisions (the p99 of decisions rose 1.7x while
    # versions were published back to back on two cores): its imports, the compile and the tests run
    # on a thread of lower priority. The transaction that stores the version runs at the server's
    # priority: it holds the database's writer lock, which the workers' decision logs wait for.
    request = json.loads(sys.stdin.read())
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
        answer: dict[str, t.Any] = {"version": version.id}
    except PublishRejected as exc:
        answer = {"rejected": {"errors": exc.errors, "test_failures": exc.test_failures}}
    except InvalidInput as exc:
        answer = {"kind": "invalid_input", "message": str(exc)}
    except StoreError as exc:
        answer = {"kind": "store_error", "message": str(exc)}
    finally:
        store.dispose()
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
