"""Publishing off the request threads: compile, run the YAML tests and store in a child process.

Compiling a candidate and running all its YAML tests is CPU work in Python; on a request thread
it holds the interpreter lock of a worker that is answering decisions (the p99 of decisions
nearly doubled during publishes). ``publish`` runs ``Store.publish`` in a fresh interpreter
(``python -m api.publisher``) against the same database: the request thread only waits for it. The
child lowers its CPU priority first, so that on a machine short of cores the workers answering
decisions come first (its publish takes longer instead).
The child's answer is one JSON line on stdout; the files arrive as JSON on stdin.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import typing as t

#: seconds a publish may take in the child before it is stopped (nothing is stored then)
TIMEOUT = 300.0
#: how much lower than the server's the publishing child's CPU priority is (``nice``)
NICENESS = 10


def publish(store: t.Any, database_url: str, files: t.Mapping[str, str], *, author: str, message: str,
            activate: bool, impact: t.Mapping[str, t.Any] | None = None, timeout: float = TIMEOUT) -> t.Any:
    """``store.publish(...)`` done by a child process; returns the stored ``Version``.

    Raises what ``Store.publish`` raises: ``PublishRejected`` with every error, ``InvalidInput``,
    ``StoreError`` (also when the child fails or takes longer than ``timeout``).
    """
    from store import InvalidInput, PublishRejected, StoreError

    request = json.dumps({"database_url": database_url, "files": dict(files), "author": author,
                          "message": message, "activate": activate, "impact": impact})
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


def _main() -> int:
    # the child's CPU yields to the workers answering decisions (the p99 of decisions rose 1.7x while
    # versions were published back to back on two cores); the publish itself only takes longer
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    from store import InvalidInput, PublishRejected, Store, StoreError

    request = json.loads(sys.stdin.read())
    store = Store(request["database_url"])
    try:
        version = store.publish(request["files"], author=request["author"], message=request["message"],
                                activate=request["activate"], impact=request.get("impact"))
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
