"""The workbench's plumbing: the blueprint, the session cookie, sign-in, CSRF, roles, error pages.

Every page module (``api/workbench/page_*.py``) adds its routes to ``bp`` and guards them with
``requires_role("audit")``; it reads the store through ``store()`` / ``call()`` and renders with
``render()``. Nothing here decides: the service's own ``Authenticator`` checks tokens, and the
session only remembers who signed in (a token's name and role, never its secret).

The session is Flask's signed cookie (itsdangerous). Its key must be the same in every worker
process of a server, so it is derived, never drawn at random per process: from
``ORDERGATE_SESSION_SECRET`` when set, else by HMAC from the configured token secrets (changing or
removing a token then signs every session out), else — with no tokens, where authentication is off
and only this machine is served — from the database URL.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import typing as t
from datetime import timedelta

from flask import Blueprint, Flask, current_app, g, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from markupsafe import Markup
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BuildError
from werkzeug.wrappers import Response as WerkzeugResponse

from api import whole_log
from api.auth import LOOPBACK, ROLES, Authenticator, Principal, from_this_machine, token_mark
from api.errors import ApiError

bp = Blueprint("workbench", __name__, url_prefix="/ui", template_folder="templates", static_folder="static",
               static_url_path="/static")

SESSION_COOKIE = "ordergate_workbench"
SESSION_LIFETIME = timedelta(hours=8)
CSRF_FIELD = "csrf_token"
_SECRET_ENV = "ORDERGATE_SESSION_SECRET"
_SECURE_ENV = "ORDERGATE_SESSION_COOKIE_SECURE"
#: the navigation of every page: (label, endpoint); an endpoint not (yet) registered is shown as text
NAV = (("Versions", "workbench.versions"), ("Policies", "workbench.policies"), ("Diff", "workbench.diff"),
       ("Decisions", "workbench.decisions"), ("Try", "workbench.try_decision"))
_RANK = {role: number for number, role in enumerate(ROLES)}  # decide < audit < admin
_SECURITY_HEADERS = {
    # everything comes from this server; no inline script, no frames, forms post here only
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class PageError(Exception):
    """An error shown as a page: ``status``, a title and a sentence that says what to do."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


def whole_log_read(what: str) -> t.ContextManager[None]:
    """Run a read of the whole decision log (a chain verify, an impact replay), or answer a 429 page
    when one is already running in this worker (``api.whole_log``, shared with the API)."""
    return whole_log.one_at_a_time(lambda: PageError(
        429, "Another long read is running",
        f"This server is already reading the whole decision log for another request; {what} "
        "was not started. Try again when that one has finished (it writes nothing)."))


# -- the session ----------------------------------------------------------------------------------


def session_secret(tokens: Authenticator, database_url: str, environ: t.Mapping[str, str] | None = None) -> bytes:
    """The key that signs session cookies: the same in every worker of a server (see the module)."""
    environ = os.environ if environ is None else environ
    configured = environ.get(_SECRET_ENV, "").strip()
    purpose = b"ordergate workbench session"
    if configured:
        return hmac.new(purpose, configured.encode("utf-8"), hashlib.sha256).digest()
    derived = tokens.derive_key(purpose)
    if derived is not None:
        return derived
    return hmac.new(purpose + b" without authentication", database_url.encode("utf-8"), hashlib.sha256).digest()


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, marked ``Secure`` when the request came over https (or when
    ``ORDERGATE_SESSION_COOKIE_SECURE=1`` says a proxy in front terminates TLS)."""

    salt = "ordergate-workbench-session"

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure or os.environ.get(_SECURE_ENV) == "1"


def init_app(app: Flask, authenticator: Authenticator, database_url: str) -> None:
    """Mount the workbench at /ui on ``app``."""
    app.secret_key = session_secret(authenticator, database_url)
    app.session_interface = _SessionInterface()
    app.config.update(SESSION_COOKIE_NAME=SESSION_COOKIE, SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_PATH="/ui",
                      PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME)
    app.extensions["ordergate.workbench"] = authenticator
    app.register_blueprint(bp)


def authenticator() -> Authenticator:
    return t.cast(Authenticator, current_app.extensions["ordergate.workbench"])


def auth_enabled() -> bool:
    return authenticator().enabled


def top_role(principal: Principal) -> str:
    return max(principal.roles, key=_RANK.__getitem__)


def csrf_token() -> str:
    """This session's CSRF token (made on first use); every POST form carries it."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


def csrf_field() -> Markup:
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, csrf_token())


def start_session(principal: Principal, secret: str) -> None:
    """Sign ``principal`` in: a fresh session (new CSRF token) holding its name, its role and the mark
    of the token ``secret`` it signed in with (an HMAC under the session key, never the secret)."""
    session.clear()
    session["name"] = principal.name
    session["role"] = top_role(principal)
    session["token"] = token_mark(secret.encode("utf-8", "surrogatepass"), _mark_key())
    session[CSRF_FIELD] = secrets.token_urlsafe(32)
    session.permanent = True


def current_user() -> Principal | None:
    """Who is signed in, checked against the tokens configured now (a removed token signs out)."""
    if not auth_enabled():
        return Principal(LOOPBACK, frozenset(ROLES))
    name, role, mark = session.get("name"), session.get("role"), session.get("token")
    if not isinstance(name, str) or role not in _RANK or not isinstance(mark, str):
        return None
    # the token that signed in must still be configured: removed or rotated ends the session, even
    # when ORDERGATE_SESSION_SECRET keeps the cookie's signing key the same
    return authenticator().principal_named(name, role, mark, _mark_key())


def _mark_key() -> bytes:
    return hmac.new(t.cast(bytes, current_app.secret_key), b"token marks", hashlib.sha256).digest()


# -- guards ---------------------------------------------------------------------------------------


def _only_this_machine() -> None:
    if not from_this_machine(request.remote_addr, request.host):
        raise PageError(403, "Only this machine is served",
                        "Authentication is off (no access tokens are configured), so the workbench answers "
                        "callers on this machine only, addressing it as 127.0.0.1 or localhost.")


F = t.TypeVar("F", bound=t.Callable[..., t.Any])


def requires_role(role: str) -> t.Callable[[F], F]:
    """A page that needs ``role`` (``audit`` for reading): not signed in goes to the sign-in page,
    a token without the role gets 403. ``g.user`` is the signed-in principal from here on."""
    if role not in _RANK:
        raise ValueError(f"unknown role {role!r}")

    def wrap(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: t.Any, **kwargs: t.Any) -> t.Any:
            if not auth_enabled():
                _only_this_machine()
            user = current_user()
            if user is None:
                return redirect(url_for("workbench.sign_in", next=request.full_path.rstrip("?")), 303)
            if role not in user.roles:
                raise PageError(403, "Not allowed",
                                f"Token `{user.name}` does not hold the `{role}` role this page needs.")
            g.user = user
            return view(*args, **kwargs)

        return t.cast(F, guarded)

    return wrap


@bp.before_request
def _check_csrf() -> None:
    """Every POST to the workbench carries this session's CSRF token, compared in constant time."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    expected = session.get(CSRF_FIELD)
    sent = request.form.get(CSRF_FIELD, "")
    if not isinstance(expected, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise PageError(400, "The form could not be accepted",
                        "The form did not carry this session's security token (it is older than your "
                        "sign-in, or it was sent from another site). Nothing was done. Open the page again "
                        "and resend the form.")


@bp.after_app_request
def _headers(response: WerkzeugResponse) -> WerkzeugResponse:
    # every answer under /ui, also the error page of a path no route matches (not the blueprint's)
    if request.path != "/ui" and not request.path.startswith("/ui/"):
        return response
    for name, value in _SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


# -- the store ------------------------------------------------------------------------------------


def runtime() -> t.Any:
    return current_app.extensions["ordergate"]


def store() -> t.Any:
    found = runtime().store
    if found is None:
        raise PageError(503, "The store is not available", "The service has no policy store configured.")
    return found


def call(fn: t.Callable[..., t.Any], *args: t.Any, **kwargs: t.Any) -> t.Any:
    """``fn(*args, **kwargs)`` with the store's errors turned into error pages."""
    from api import evidence
    from store import InvalidInput, StoreError, VersionNotFound

    try:
        return fn(*args, **kwargs)
    except VersionNotFound as exc:
        raise PageError(404, "No such version", f"There is no policy version `{exc.version_id}`.") from exc
    except evidence.NotFound as exc:
        raise PageError(404, "Not found", str(exc)) from exc
    except InvalidInput as exc:
        raise PageError(400, "The request cannot be answered", str(exc)) from exc
    except StoreError as exc:
        from api.admin import map_store_error

        raise PageError(503, "The store does not answer", map_store_error(exc).message) from exc


def resolve(ref: str) -> str:
    """A version id from a reference: an id, a unique prefix of one, or ``active``."""
    if ref == "active":
        active = call(store().active_version_id)
        if active is None:
            raise PageError(404, "No active version", "No policy version is active yet.")
        return t.cast(str, active)
    return t.cast(str, call(store().resolve_version, ref))


# -- rendering ------------------------------------------------------------------------------------


def nav_links() -> list[tuple[str, str | None, bool]]:
    """``(label, url or None, current)`` of each navigation entry."""
    links = []
    for label, endpoint in NAV:
        try:
            url: str | None = url_for(endpoint)
        except BuildError:  # a page of the navigation that is not built yet
            url = None
        current = request.endpoint == endpoint or request.endpoint in _SECTIONS.get(endpoint, ())
        links.append((label, url, current))
    return links


#: endpoints that belong to a navigation entry's section (page modules add theirs)
_SECTIONS: dict[str, set[str]] = {}


def section(nav_endpoint: str, *endpoints: str) -> None:
    """Mark ``endpoints`` as pages of the navigation entry ``nav_endpoint`` (highlighted there)."""
    _SECTIONS.setdefault(nav_endpoint, set()).update(endpoints)


def render(template: str, http_status: int = 200, /, **context: t.Any) -> tuple[str, int]:
    """``template`` rendered with ``context``, answered with ``http_status``."""
    return render_template(template, **context), http_status


@bp.app_context_processor
def _template_globals() -> dict[str, t.Any]:
    return {"csrf_field": csrf_field, "nav_links": nav_links, "auth_enabled": auth_enabled,
            "signed_in": lambda: getattr(g, "user", None) or (current_user() if request.blueprint == "workbench"
                                                               else None)}


def error_page(status: int, title: str, message: str) -> tuple[str, int]:
    return render("error.html", status, title=title, message=message, status=status)


@bp.errorhandler(PageError)
def _on_page_error(exc: PageError) -> tuple[str, int]:
    return error_page(exc.status, exc.title, exc.message)


@bp.errorhandler(ApiError)
def _on_api_error(exc: ApiError) -> tuple[str, int]:
    return error_page(exc.status, exc.code.replace("_", " ").capitalize(), exc.message)


def http_error_page(exc: HTTPException) -> tuple[str, int]:
    """A routing or protocol error under /ui, as a page (the API answers these in JSON)."""
    status = exc.code or 500
    if status == 404:
        return error_page(404, "Page not found", f"There is no page at {request.path}.")
    if status == 405:
        return error_page(405, "Not allowed", f"{request.method} is not allowed on this page.")
    return error_page(status, exc.name, (exc.description or exc.name).rstrip("."))


@bp.errorhandler(HTTPException)
def _on_http_error(exc: HTTPException) -> tuple[str, int]:
    return http_error_page(exc)


@bp.errorhandler(Exception)
def _on_defect(exc: Exception) -> tuple[str, int]:
    current_app.logger.exception("ordergate: workbench error on %s %s", request.method, request.path)
    return error_page(500, "Internal error", f"The page failed ({type(exc).__name__}); the server log has "
                                             "the details. Nothing was changed.")
