"""The HTTP front of ``ordergate serve --server granian``: whole requests first, then the app.

granian (a Rust HTTP server) reads the request line and headers in its event loop, bounded by
its header read timeout. ``BufferedFront`` is the RSGI application it runs: it reads the whole
body in that same event loop, within a deadline and a size limit, and only then hands the
complete request to the Flask (WSGI) app on a thread of a fixed pool. A slow or stalled client
therefore holds a connection (bounded per worker) and a little memory, never one of the threads
that answer decisions; when its deadline passes it gets 408 and the connection is closed.

The POSTs an app lists in ``app.extensions["ordergate.direct_posts"]`` (``{path: endpoint}``: the
two decision routes, ``api.decide_http.DecisionEndpoint``) skip the WSGI environ, werkzeug and
Flask, under the same body limits and request timeout. An endpoint with ``steps`` (the decision
routes) is answered on the event loop itself when its body is small (``loop_body``: a single
decision), with no answering thread: the loop decides (the engine takes microseconds), hands the
prepared log records to the log writer without waiting (``DecisionLogWriter.record_nowait``) and
sends the answer once the writer reports their commit, which it does with one wake-up of the loop
per commit for all the requests it settled. A larger body (a batch) and any other direct endpoint
are answered by an answering thread, which waits for the commit itself: deciding a batch of 100
on the loop held every other request of the worker behind it (a third fewer batch decisions/s,
bench/README.md). Every other request goes through the WSGI app.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import logging
import queue
import sys
import threading
import typing as t

from werkzeug.sansio.utils import get_host

from api.decide_http import Answer, finish, start

log = logging.getLogger("ordergate.serve")

_BASE_ENVIRON: dict[str, t.Any] = {
    "SCRIPT_NAME": "",
    "wsgi.version": (1, 0),
    "wsgi.input_terminated": True,
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": True,
    "wsgi.multiprocess": True,
    "wsgi.run_once": False,
}


@functools.lru_cache(maxsize=256)
def _header_key(name: str) -> str | None:
    """The environ key of a header (None: the body is already read whole, its length is set)."""
    if name == "content-type":
        return "CONTENT_TYPE"
    if name in ("content-length", "transfer-encoding"):
        return None
    return "HTTP_" + name.upper().replace("-", "_")


def _client_address(scope: t.Any) -> str:
    """The client's address (``REMOTE_ADDR``) of an RSGI scope."""
    return scope.client.rpartition(":")[0]


def _header_values(scope: t.Any) -> dict[str, str]:
    """The request's headers by lowercase name, a repeated header's values joined by ``,`` (as the
    WSGI environ has them)."""
    headers: dict[str, str] = {}
    for name, value in scope.headers.items():
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _settle(settled: list[tuple[asyncio.Future, set[str]]]) -> None:
    """The fate of the log records of waiting requests (in the event loop, once per commit): the
    ids of each request's decisions NOT recorded (a request already answered or gone is skipped)."""
    for waiting, failed in settled:
        if not waiting.done():
            waiting.set_result(failed)


class BodyRefused(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: t.Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def _error(status: int, code: str, message: str, **extra: t.Any) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, **extra}}).encode()


def _failed(exc: BaseException) -> tuple[int, list[tuple[str, str]], bytes]:
    """The answer when the app failed outside its own error handlers (logged): 500, nothing allowed."""
    log.exception("ordergate: the app failed outside its error handlers", exc_info=exc)
    return 500, [("content-type", "application/json")], _error(
        500, "internal_error", f"internal error ({type(exc).__name__}); nothing was allowed")


class BufferedFront:
    """An RSGI application serving a WSGI app with complete, bounded requests.

    :param load_app: builds the WSGI app; called once in each worker process (after the fork).
    :param threads: size of the pool that runs the app (requests answered concurrently per worker).
    :param body_timeout: seconds a client has to send the whole body once its headers arrived.
    :param request_timeout: seconds the app may take for one request; past it the caller gets 503
        (the thread finishes its work, but its late answer is dropped).
    :param max_body: bytes accepted in a body; larger ones get 413 without being read.
    :param on_close: called with the app when the worker stops (after its last answer).
    :param decide_on_loop: answer the direct endpoints that have ``steps`` on the event loop (False:
        on the answering threads, as every other direct endpoint) ...
    :param loop_body: ... when their body has at most this many bytes.
    """

    def __init__(self, load_app: t.Callable[[], t.Any], *, threads: int, body_timeout: float,
                 request_timeout: float, max_body: int, on_close: t.Callable[[t.Any], None] | None = None,
                 decide_on_loop: bool = True, loop_body: int = 4096) -> None:
        # the largest body decided on the loop (a larger one, a batch, holds the loop for longer
        # than the requests waiting behind it should wait: it is decided on an answering thread)
        self._loop_body = loop_body if decide_on_loop else -1
        self._load_app = load_app
        self._threads = threads
        self._body_timeout = body_timeout
        self._request_timeout = request_timeout
        self._max_body = max_body
        self._on_close = on_close
        self.app: t.Any = None
        self._workers: list[threading.Thread] = []

    # -- RSGI worker life cycle (granian calls these in each worker) ----------------------------

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.app = self._load_app()
        self._direct: dict[str, t.Any] = getattr(self.app, "extensions", {}).get("ordergate.direct_posts") or {}
        self._queue: queue.SimpleQueue[t.Any] = queue.SimpleQueue()
        def committed(settled: list[tuple[asyncio.Future, set[str]]]) -> None:
            loop.call_soon_threadsafe(_settle, settled)

        # what the log writer's thread calls once per commit: one wake-up of this loop for all
        self._committed = committed
        self._workers = [threading.Thread(target=self._serve, name=f"ordergate-http-{i}", daemon=True)
                         for i in range(self._threads)]
        for thread in self._workers:
            thread.start()

    def _serve(self) -> None:
        """One answering thread: run the app on complete requests and send the answers itself."""
        while True:
            job = self._queue.get()
            if job is None:
                return
            answer, request, proto, loop, done = job
            try:
                status, headers, payload = answer(*request)
                proto.response_bytes(status, headers, payload)
            except BaseException as exc:
                proto.response_bytes(*_failed(exc))
            finally:
                # a closed loop: the worker is stopping, nobody waits
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_resolve, done)

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        for _ in self._workers:
            self._queue.put(None)
        for thread in self._workers:
            thread.join()
        if self._on_close is not None and self.app is not None:
            self._on_close(self.app)

    # -- one request ----------------------------------------------------------------------------

    async def __rsgi__(self, scope: t.Any, proto: t.Any) -> None:
        if scope.proto != "http":
            return
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None  # granian runs each request as a task
        late: list[bool] = []

        def expire() -> None:
            late.append(True)
            task.cancel()

        # a timer, not asyncio.wait_for: no extra task per request on the event loop
        timer = loop.call_later(self._body_timeout, expire)
        try:
            body = await self._read_body(scope, proto)
        except BodyRefused as refused:
            proto.response_bytes(refused.status, [("content-type", "application/json"), ("connection", "close")],
                                 _error(refused.status, refused.code, refused.message, **refused.extra))
            return
        except asyncio.CancelledError:
            if not late:
                raise
            task.uncancel()
            message = f"the request body did not arrive within {self._body_timeout:g} s"
            proto.response_bytes(408, [("content-type", "application/json"), ("connection", "close")],
                                 _error(408, "bad_request", message, reason="body_timeout"))
            return
        except Exception:  # the client went away while sending
            return
        finally:
            timer.cancel()
        direct = self._direct.get(scope.path) if scope.method == "POST" else None
        if direct is not None and len(body) <= self._loop_body and hasattr(direct, "steps"):
            await self._answer_on_loop(direct, scope, proto, body, loop)
            return
        done = loop.create_future()
        if direct is not None:
            self._queue.put((self._call_direct, (direct, scope, body), proto, loop, done))
        else:
            self._queue.put((self._call, (self._environ(scope, body),), proto, loop, done))
        timer = loop.call_later(self._request_timeout, self._expire, scope, proto, done)
        try:
            await done
        finally:
            timer.cancel()

    def _expire(self, scope: t.Any, proto: t.Any, done: asyncio.Future) -> None:
        """The app has not answered in time: answer 503 (whichever answer comes first is sent)."""
        if done.done():
            return
        self._answer_late(scope, proto)
        done.set_result(None)

    def _answer_late(self, scope: t.Any, proto: t.Any) -> None:
        log.error("ordergate: %s %s took longer than %g s; answered 503", scope.method, scope.path,
                  self._request_timeout)
        proto.response_bytes(503, [("content-type", "application/json")], _error(
            503, "timeout", f"the request took longer than {self._request_timeout:g} s; nothing was allowed"))

    # -- a decision answered on the event loop ---------------------------------------------------

    async def _answer_on_loop(self, endpoint: t.Any, scope: t.Any, proto: t.Any, body: bytes,
                              loop: asyncio.AbstractEventLoop) -> None:
        """Decide in the loop, let the log writer commit the records, answer once it has.

        Everything but the wait for the commit happens here, without a thread hop: the endpoint's
        ``steps`` up to its log records, then (once their fate is known, or what recording raised)
        up to the answer. The request timeout answers 503 as for any request; the log's
        ``commit_timeout`` answers the decisions fail closed as ``DecisionLogWriter.record`` does.
        """
        late: list[bool] = []  # the request timeout answered first; the answer is then dropped
        try:
            steps = endpoint.steps(*self._direct_values(scope, body))
            records = start(steps)
            answer = records if isinstance(records, tuple) else await self._recorded(
                endpoint.writer, steps, records, scope, proto, loop, late)
        except Exception as exc:
            answer = _failed(exc)
        if not late:
            proto.response_bytes(*answer)

    async def _recorded(self, writer: t.Any, steps: t.Any, records: list[t.Any], scope: t.Any, proto: t.Any,
                        loop: asyncio.AbstractEventLoop, late: list[bool]) -> Answer:
        """The answer of ``steps`` once ``records`` are committed (or not) by ``writer``."""
        waiting: asyncio.Future[set[str]] = loop.create_future()
        try:
            nowait = getattr(writer, "record_nowait", None)
            group = None if nowait is None else nowait(records, self._committed, waiting)
            if isinstance(group, set):  # known at once: refused, or queued by an `async` log
                return finish(steps, group)
            if group is None:  # it would wait for room in the log's queue (or can only wait): on a thread
                waiting = t.cast(asyncio.Future, loop.run_in_executor(None, writer.record, records))
            timers: list[asyncio.TimerHandle] = []
            if group is not None and writer.commit_timeout < self._request_timeout:
                timers.append(loop.call_later(max(writer.commit_timeout, 0.0), self._give_up, writer, group, waiting))
            else:
                timers.append(loop.call_later(self._request_timeout, self._overdue, writer, group, waiting, scope,
                                              proto, late, timers))
            try:
                unrecorded = await waiting
            finally:
                for timer in timers:
                    timer.cancel()
        except Exception as exc:
            return finish(steps, error=exc)
        except BaseException:  # cancelled (the worker is stopping): its records stay queued
            steps.close()
            raise
        return finish(steps, unrecorded)

    def _overdue(self, writer: t.Any, group: t.Any, waiting: asyncio.Future, scope: t.Any, proto: t.Any,
                 late: list[bool], timers: list[asyncio.TimerHandle]) -> None:
        """The request timeout passed while its records wait for their commit: answer 503 now, and
        stop waiting at the log's ``commit_timeout`` (the decision is counted then, as on a thread)."""
        if waiting.done():
            return
        late.append(True)
        self._answer_late(scope, proto)
        if group is not None:
            timers.append(waiting.get_loop().call_later(max(writer.commit_timeout - self._request_timeout, 0.0),
                                                        self._give_up, writer, group, waiting))

    @staticmethod
    def _give_up(writer: t.Any, group: t.Any, waiting: asyncio.Future) -> None:
        """The log's ``commit_timeout`` passed: the decisions not committed yet are answered fail closed."""
        if not waiting.done():
            waiting.set_result(writer.give_up(group))

    async def _read_body(self, scope: t.Any, proto: t.Any) -> bytes:
        declared = scope.headers.get("content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                raise BodyRefused(400, "bad_request", "`Content-Length` is not a number",
                                  reason="bad_content_length") from None
            if length > self._max_body:
                raise BodyRefused(413, "bad_request", f"the request body is larger than {self._max_body} bytes",
                                  reason="body_too_large", limit=self._max_body)
            if length == 0:
                return b""
            return await proto()  # granian reads exactly `length` bytes
        if "transfer-encoding" not in scope.headers:
            return b""
        chunks: list[bytes] = []
        size = 0
        async for chunk in proto:
            size += len(chunk)
            if size > self._max_body:
                raise BodyRefused(413, "bad_request", f"the request body is larger than {self._max_body} bytes",
                                  reason="body_too_large", limit=self._max_body)
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _environ(scope: t.Any, body: bytes) -> dict[str, t.Any]:
        server_host, _, server_port = scope.server.rpartition(":")
        environ = dict(_BASE_ENVIRON)
        environ.update({
            "REQUEST_METHOD": scope.method,
            "PATH_INFO": scope.path,
            "QUERY_STRING": scope.query_string,
            "SERVER_NAME": server_host,
            "SERVER_PORT": server_port,
            "SERVER_PROTOCOL": f"HTTP/{scope.http_version}",
            "REMOTE_ADDR": _client_address(scope),
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.url_scheme": scope.scheme,
            "wsgi.input": io.BytesIO(body),
        })
        for name, value in scope.headers.items():
            key = _header_key(name)
            if key is None:
                continue
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    @staticmethod
    def _direct_values(scope: t.Any, body: bytes) -> tuple[str, str, dict[str, str], bytes, str, str]:
        """What a direct endpoint is called with: the values a WSGI app would read of the request."""
        headers = _header_values(scope)
        server_host, _, server_port = scope.server.rpartition(":")
        host = get_host(scope.scheme, headers.get("host"), (server_host, int(server_port) if server_port else None))
        return scope.method, scope.path, headers, body, _client_address(scope), host

    @classmethod
    def _call_direct(cls, endpoint: t.Callable[..., t.Any], scope: t.Any, body: bytes) -> Answer:
        """A request answered by a direct endpoint on an answering thread."""
        return endpoint(*cls._direct_values(scope, body))

    def _call(self, environ: dict[str, t.Any]) -> tuple[int, list[tuple[str, str]], bytes]:
        captured: list[t.Any] = []
        written: list[bytes] = []  # the legacy write() callable of PEP 3333

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: t.Any = None) -> t.Callable:
            captured[:] = [status, headers]
            return written.append

        result = self.app(environ, start_response)
        try:
            payload = b"".join([*written, *result])
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = captured
        return int(status.split(" ", 1)[0]), headers, payload
