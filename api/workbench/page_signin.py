"""Sign-in by access token, sign-out, and the front page."""
from __future__ import annotations

import posixpath
import typing as t
from urllib.parse import urlsplit

from flask import redirect, request, session, url_for
from werkzeug.wrappers import Response

from api.errors import ApiError
from api.workbench.core import (
    PageError,
    auth_enabled,
    authenticator,
    bp,
    current_user,
    render,
    requires_role,
    start_session,
)


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of the workbench, never another site."""
    default = url_for("workbench.home")
    if not target or any(ch in "\\\x7f" or ord(ch) < 32 for ch in target):
        return default  # a backslash reads as a slash to browsers; a control character breaks the header
    parts = urlsplit(target)
    path = posixpath.normpath(parts.path) if parts.path else ""
    if parts.scheme or parts.netloc or target.startswith("//") or not (path == "/ui" or path.startswith("/ui/")):
        return default
    return target


@bp.get("/")
@requires_role("audit")
def home() -> Response:
    return redirect(url_for("workbench.versions"), 303)


@bp.get("/sign-in")
def sign_in() -> t.Any:
    if not auth_enabled():
        return redirect(url_for("workbench.home"), 303)
    return render("sign_in.html", next=_safe_next(request.args.get("next")), user=current_user())


@bp.post("/sign-in")
def sign_in_post() -> t.Any:
    if not auth_enabled():
        return redirect(url_for("workbench.home"), 303)
    secret = request.form.get("token", "").strip()
    next_url = _safe_next(request.form.get("next"))
    try:
        principal = authenticator().authenticate(f"Bearer {secret}" if secret else None)
    except ApiError:
        return render("sign_in.html", 401, next=next_url, user=None,
                      problem="That token is not valid. Paste the secret part of an access token of role "
                              "`audit` or `admin`.")
    if "audit" not in principal.roles:
        raise PageError(403, "Not allowed",
                        f"Token `{principal.name}` has the `decide` role only; the workbench needs a token "
                        "of role `audit` or `admin`.")
    start_session(principal, secret)
    return redirect(next_url, 303)


@bp.post("/sign-out")
def sign_out() -> t.Any:
    session.clear()
    return redirect(url_for("workbench.sign_in") if auth_enabled() else url_for("workbench.home"), 303)
