"""The HTTP front of ``ordergate serve --server granian``: whole requests first, then the app.

granian (a Rust HTTP server) reads the request line and headers in its event loop, bounded by
its header read timeout. ``BufferedFront`` is the RSGI application it runs: it reads the whole
body in that same event loop, within a deadline and a size limit, and only then hands the
complete request to the Flask (WSGI) app on a thread of a fixed pool. A slow or stalled client
therefore holds a connection (bounded per worker) and a little memory, never one of the threads
that answer decisions; when its deadline passes it gets 408 and the connection is closed.

The POSTs an app lists in ``app.extensions["ordergate.direct_posts"]`` (``{path: endpoint}``: the
two decision routes, ``api.decide_http.DecisionEndpoint``) skip the WSGI environ, werkzeug and
Flask: the answering thread calls the endpoint with the request's values, under the same body
limits and request timeout. Every other request goes through the WSGI app.
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


class BodyRefused(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: t.Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def _error(status: int, code: str, message: str, **extra: t.Any) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, **extra}}).encode()


class BufferedFront:
    """An RSGI application serving a WSGI app with complete, bounded requests.

    :param load_app: builds the WSGI app; called once in each worker process (after the fork).
    :param threads: size of the pool that runs the app (requests answered concurrently per worker).
    :param body_timeout: seconds a client has to send the whole body once its headers arrived.
    :param request_timeout: seconds the app may take for one request; past it the caller gets 503
        (the thread finishes its work, but its late answer is dropped).
    :param max_body: bytes accepted in a body; larger ones get 413 without being read.
    :param on_close: called with the app when the worker stops (after its last answer).
    """

    def __init__(self, load_app: t.Callable[[], t.Any], *, threads: int, body_timeout: float,
                 request_timeout: float, max_body: int, on_close: t.Callable[[t.Any], None] | None = None) -> None:
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
                log.exception("ordergate: the app failed outside its error handlers")
                proto.response_bytes(
                    500,
                    [("content-type", "application/json")],
                    _error(500, "internal_error", f"internal error ({type(exc).__name__}); nothing was allowed"),
                )
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
        done = loop.create_future()
        direct = self._direct.get(scope.path) if scope.method == "POST" else None
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
        log.error("ordergate: %s %s took longer than %g s; answered 503", scope.method, scope.path,
                  self._request_timeout)
        proto.response_bytes(503, [("content-type", "application/json")], _error(
            503, "timeout", f"the request took longer than {self._request_timeout:g} s; nothing was allowed"))
        done.set_result(None)

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
    def _call_direct(endpoint: t.Callable[..., t.Any], scope: t.Any,
                     body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """A request answered by a direct endpoint: the values a WSGI app would read of it."""
        headers = _header_values(scope)
        server_host, _, server_port = scope.server.rpartition(":")
        host = get_host(scope.scheme, headers.get("host"), (server_host, int(server_port) if server_port else None))
        return endpoint(scope.method, scope.path, headers, body, _client_address(scope), host)

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
