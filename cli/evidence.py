"""Auditor commands: ``log``, ``explain``, ``replay`` (and ``diff``, ``impact``).

Each reads either the configured database (``--database``, default ``$ORDERGATE_DATABASE_URL``)
or a running service (``--url`` with an ``audit`` token in ``--token`` / ``$ORDERGATE_TOKEN``);
both give the same JSON, since the service answers with the same functions.
Exit codes: 0 success, 1 not found or refused, 2 the database or service failed.
"""
from __future__ import annotations

import functools
import json
import sys
import typing as t

import click

_PAGE = 1000


class Failed(click.ClickException):
    """A lookup or a remote call failed; shown as ``error: ...``."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: t.IO[str] | None = None) -> None:
        click.echo(f"error: {self.message}", err=True)


class Local:
    """The evidence from a store opened on a database URL."""

    def __init__(self, database: str | None):
        from cli.store_commands import _open

        self.store = _open(database)

    def close(self) -> None:
        self.store.dispose()

    def _call(self, fn: t.Callable[..., t.Any], *args: t.Any, **kwargs: t.Any) -> t.Any:
        from api.evidence import NotFound
        from store import StoreError, VersionNotFound

        try:
            return fn(*args, **kwargs)
        except (NotFound, VersionNotFound) as exc:
            raise Failed(str(exc)) from exc
        except ValueError as exc:  # the store's InvalidInput
            raise Failed(str(exc)) from exc
        except StoreError as exc:
            raise Failed(str(exc), 2) from exc

    def resolve(self, ref: str) -> str:
        if ref == "active":
            active = self._call(self.store.active_version_id)
            if active is None:
                raise Failed("no version is active")
            return active
        return self._call(self.store.resolve_version, ref)

    def decisions(self, filters: dict[str, t.Any]) -> t.Iterator[dict[str, t.Any]]:
        from api.evidence import logged_view

        if filters.get("version"):
            filters = dict(filters, version=self.resolve(filters["version"]))
        limit, after = filters.pop("limit"), None
        while limit > 0:
            page = self._call(self.store.query_decisions, **filters, limit=min(limit, _PAGE), after_seq=after)
            yield from (logged_view(r) for r in page)
            if len(page) < min(limit, _PAGE):
                return
            limit -= len(page)
            after = page[-1]["seq"]

    def explain(self, decision_id: str) -> dict[str, t.Any]:
        from api import evidence

        return self._call(evidence.explain, self.store, decision_id)

    def replay(self, decision_id: str, version: str | None) -> dict[str, t.Any]:
        from api import evidence

        return self._call(evidence.replay, self.store, decision_id, self.resolve(version) if version else None)


class Remote:
    """The evidence from a running service (role ``audit``)."""

    def __init__(self, url: str, token: str | None):
        import requests

        self.url = url.rstrip("/")
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self.session.close()

    def _request(self, method: str, path: str, **kwargs: t.Any) -> t.Any:
        import requests

        try:
            response = self.session.request(method, self.url + path, timeout=300, **kwargs)
        except requests.RequestException as exc:
            raise Failed(f"cannot reach {self.url}: {type(exc).__name__}", 2) from None
        try:
            body = response.json()
        except ValueError:
            raise Failed(f"{self.url} answered {response.status_code} without JSON", 2) from None
        if response.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            message = error.get("message", "") if isinstance(error, dict) else ""
            raise Failed(f"{response.status_code}: {message}", 1 if response.status_code < 500 else 2)
        return body

    def decisions(self, filters: dict[str, t.Any]) -> t.Iterator[dict[str, t.Any]]:
        limit = filters.pop("limit")
        params = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in filters.items() if v is not None}
        cursor = None
        while limit > 0:
            page_params = dict(params, limit=min(limit, _PAGE), **({"cursor": cursor} if cursor else {}))
            body = self._request("GET", "/v1/decisions", params=page_params)
            yield from body["decisions"]
            limit -= len(body["decisions"])
            cursor = body.get("next_cursor")
            if not cursor:
                return

    def explain(self, decision_id: str) -> dict[str, t.Any]:
        return self._request("GET", f"/v1/decisions/{decision_id}/explain")

    def replay(self, decision_id: str, version: str | None) -> dict[str, t.Any]:
        return self._request("POST", f"/v1/decisions/{decision_id}/replay", json={"version": version})


def source_options(fn: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """``--database`` / ``--url`` / ``--token``, handed to the command as ``source``."""

    @click.option("--database", default=None,
                  help="Database URL (default: $ORDERGATE_DATABASE_URL, else sqlite:///var/ordergate.sqlite).")
    @click.option("--url", default=None, envvar="ORDERGATE_URL",
                  help="Ask a running service instead (e.g. http://127.0.0.1:8080).")
    @click.option("--token", default=None, envvar="ORDERGATE_TOKEN", help="Bearer token (role audit) for --url.")
    @functools.wraps(fn)
    def wrapper(*args: t.Any, database: str | None, url: str | None, token: str | None, **kwargs: t.Any) -> t.Any:
        if url and database:
            raise click.UsageError("give --database or --url, not both")
        source: Local | Remote = Remote(url, token) if url else Local(database)
        try:
            return fn(*args, source=source, **kwargs)
        finally:
            source.close()
    return wrapper


def _print_json(body: t.Any) -> None:
    json.dump(body, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


def _log_line(entry: dict[str, t.Any]) -> str:
    result = entry["result"]
    outcome = "ALLOW" if entry["allow"] else "DENY "
    error = result.get("error")
    why = f"error {error['code']}" + (f" ({error['field']})" if error.get("field") else "") if error else \
        ", ".join(result.get("rules") or ()) or "-"
    system = (entry["input"].get("context") or {}).get("system", "-")
    version = (entry["policy_version"] or "none")[:19]
    return f"{entry['seq']:>8} {entry['time']} {entry['decision_id']} {outcome} {system} {entry['action']} {why} {version}"


@click.command("log")
@click.option("--since", default=None, help="From this time (ISO-8601, inclusive).")
@click.option("--until", default=None, help="Up to this time (ISO-8601, exclusive).")
@click.option("--action", default=None, help="Only this action.")
@click.option("--allow", type=click.Choice(["true", "false"]), default=None, help="Only allowed / only denied.")
@click.option("--rule", default=None, help="Only decisions citing this rule id.")
@click.option("--version", "version", default=None, help="Only decisions of this version (id, prefix or `active`).")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True, help="At most this many decisions.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="One line per decision, or JSON lines (one logged decision per line).")
@source_options
def log_command(source: Local | Remote, since: str | None, until: str | None, action: str | None,
                allow: str | None, rule: str | None, version: str | None, limit: int, fmt: str) -> None:
    """Query the decision log, oldest first, with the filters of GET /v1/decisions.

    \b
    Example:
      ordergate log --action salesorder.update --allow false --limit 20
    """
    filters = {"since": since, "until": until, "action": action,
               "allow": None if allow is None else allow == "true", "rule": rule, "version": version, "limit": limit}
    for entry in source.decisions(filters):
        click.echo(json.dumps(entry, ensure_ascii=False, separators=(",", ":")) if fmt == "json" else _log_line(entry))


@click.command()
@click.argument("decision_id")
@source_options
def explain(source: Local | Remote, decision_id: str) -> None:
    """Explain logged decision DECISION_ID in business words.

    The decision is decided again, with its trace, from the logged input on the logged version
    (the trace `ordergate decide --explain` gives for that input and version), with the smallest
    fact changes that would have flipped it. Exit 1 when the rebuilt decision differs from the log.

    \b
    Example:
      ordergate explain 01M8JN2569PPTGX6SBGRA1A01N
    """
    body = source.explain(decision_id)
    _print_json(body)
    if not body["matches_log"]:
        raise SystemExit(1)


@click.command()
@click.argument("decision_id")
@click.option("--version", default=None, help="Decide on this version (id, prefix or `active`) instead of its own.")
@source_options
def replay(source: Local | Remote, decision_id: str, version: str | None) -> None:
    """Decide logged decision DECISION_ID again and compare with the log; exit 1 when it differs.

    \b
    Example:
      ordergate replay 01M8JN2569PPTGX6SBGRA1A01N --version active
    """
    body = source.replay(decision_id, version)
    _print_json(body)
    if not body["match"]:
        raise SystemExit(1)


def register(group: click.Group) -> None:
    group.add_command(log_command, name="log")
    group.add_command(explain)
    group.add_command(replay)
