"""Versions: every stored version with its author, time, message, parent and activations; a
version's page with its files; a file's text with line numbers (rules link to their line)."""
from __future__ import annotations

import datetime as dt
import typing as t

from flask import request, url_for
from werkzeug.routing import BuildError

from api.workbench.core import PageError, bp, call, render, requires_role, resolve, section, store

PAGE_SIZE = 50


@bp.app_template_filter("short")
def short_version(version_id: str | None) -> str:
    """``sha256:0123456789ab…`` as ``0123456789ab`` (enough to be unique, and accepted as a reference)."""
    if not version_id:
        return ""
    return version_id.removeprefix("sha256:")[:12]


@bp.app_template_filter("when")
def when(value: t.Any) -> str:
    """A time as people read it: ``2026-11-29 05:47:33 UTC`` (from a datetime or an ISO string)."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return f"{value.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC" if isinstance(value, dt.datetime) else str(value)


def policies_url(version_id: str) -> str | None:
    """The link to a version's policy pages, when that page exists."""
    try:
        return url_for("workbench.policies", version=version_id)
    except BuildError:  # the policy pages are not there
        return None


def _activations_by_version() -> dict[str, list[dict[str, t.Any]]]:
    by_version: dict[str, list[dict[str, t.Any]]] = {}
    for activation in call(store().activation_history):
        by_version.setdefault(activation["version_id"], []).append(activation)
    return by_version


@bp.get("/versions")
@requires_role("audit")
def versions() -> t.Any:
    every = call(store().list_versions)
    cursor = request.args.get("after")
    start = 0
    if cursor:
        ids = [v.id for v in every]
        if cursor not in ids:
            raise PageError(400, "Unknown page", "The page link is out of date; start from the first page.")
        start = ids.index(cursor) + 1
    page = every[start:start + PAGE_SIZE]
    more = len(every) > start + PAGE_SIZE
    return render("versions.html", title="Versions", versions=page, total=len(every),
                  active=call(store().active_version_id), activations=_activations_by_version(),
                  next_after=page[-1].id if more and page else None, first_page=start == 0,
                  policies_url=policies_url)


@bp.get("/versions/<ref>")
@requires_role("audit")
def version(ref: str) -> t.Any:
    version_id = resolve(ref)
    found = call(store().get_version, version_id)
    return render("version.html", title=f"Version {short_version(version_id)}", version=found,
                  active=call(store().active_version_id), activations=_activations_by_version().get(version_id, []),
                  policies_url=policies_url(version_id))


@bp.get("/versions/<ref>/files/<path:path>")
@requires_role("audit")
def version_file(ref: str, path: str) -> t.Any:
    version_id = resolve(ref)
    found = call(store().get_version, version_id)
    text = (found.files or {}).get(path)
    if text is None:
        raise PageError(404, "No such file", f"Version {short_version(version_id)} has no file `{path}`.")
    return render("file.html", title=path, version=found, path=path, lines=text.splitlines())


section("workbench.versions", "workbench.version", "workbench.version_file")
