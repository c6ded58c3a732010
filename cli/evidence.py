"""Auditor commands: ``log``, ``explain``, ``replay`` (and ``diff``, ``impact``).

Each reads either the configured database (``--database``, default ``$ORDERGATE_DATABASE_URL``)
or a running service (``--url`` with an ``audit`` token in ``--token`` / ``$ORDERGATE_TOKEN``);
both give the same JSON, since the service answers with the same functions.
Exit codes: 0 success, 1 not found or refused, 2 the database or service failed.
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import json
import os
import sys
import typing as t

import click

_PAGE = 1000


class Failed(click.ClickException):
    """A lookup or a remote call failed; shown as ``error: ...``, exit status 1."""

    def show(self, file: t.IO[str] | None = None) -> None:
        click.echo(f"error: {self.message}", err=True)


class Unavailable(Failed):
    """The store or the service failed or did not answer: exit status 2."""

    exit_code = 2


@dataclasses.dataclass(frozen=True)
class Candidate:
    """Rules to compare: a folder on disk, or a stored version (``ref``)."""

    ref: str
    folder: str | None
    files: dict[str, str]
    policy_set: t.Any


def candidate(source: Local | Remote, ref: str) -> Candidate:
    """A rules folder when ``ref`` is a folder, else a stored version (id, prefix or ``active``)."""
    import engine

    if os.path.isdir(ref):
        from cli.policy import _load

        return Candidate(ref, ref, engine.read_folder(ref), _load(ref))
    files, policy_set = source.version(ref)
    return Candidate(ref, None, files, policy_set)


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
            raise Unavailable(str(exc)) from exc

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

    def version(self, ref: str) -> tuple[dict[str, str], t.Any]:
        """The files and PolicySet of a stored version."""
        version_id = self.resolve(ref)
        return self._call(self.store.get_version, version_id).files or {}, self._call(self.store.policy_set, version_id)

    def impact(self, candidate: Candidate, **options: t.Any) -> dict[str, t.Any]:
        from api import evidence

        total = self._call(self.store.decision_count)
        if not sys.stderr.isatty() or total == 0:
            return self._call(evidence.impact, self.store, candidate.policy_set, **options)
        with click.progressbar(length=total, label="replaying", file=sys.stderr) as bar:
            return self._call(evidence.impact, self.store, candidate.policy_set, progress=bar.update, **options)

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
            raise Unavailable(f"cannot reach {self.url}: {type(exc).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            raise Unavailable(f"{self.url} answered {response.status_code} without JSON") from None
        if response.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            message = error.get("message", "") if isinstance(error, dict) else ""
            raise (Failed if response.status_code < 500 else Unavailable)(f"{response.status_code}: {message}")
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

    def version(self, ref: str) -> tuple[dict[str, str], t.Any]:
        import engine

        files = self._request("GET", f"/v1/versions/{ref}")["files"]
        return files, engine.compile_files(files)

    def impact(self, candidate: Candidate, **options: t.Any) -> dict[str, t.Any]:
        body = {k: v for k, v in options.items() if v is not None}
        if candidate.folder is not None:
            return self._request("POST", "/v1/versions/candidate/impact", json=dict(body, files=candidate.files))
        return self._request("POST", f"/v1/versions/{candidate.ref}/impact", json=body)

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
    return (
        f"{entry['seq']:>8} {entry['time']} {entry['decision_id']} {outcome} {system} {entry['action']} {why} {version}"
    )


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


def _explain_text(body: dict[str, t.Any]) -> str:
    decision = body["explanation"]
    outcome = "ALLOW" if decision["allow"] else "DENY"
    differs = "" if body["matches_log"] else " (DIFFERS FROM THE LOG)"
    lines = [f"{body['decision_id']} {body['time']} {body['action']}: {outcome} "
             f"by {', '.join(decision['rules']) or 'no rule'} on {body['policy_version']}{differs}"]
    if decision["error"]:
        lines.append(f"  error {decision['error']['code']}: {decision['error']['message']}")
    for o in decision["obligations"]:
        lines.append(
            f"  must: {o['name']}" + (f" {json.dumps(o['params'], ensure_ascii=False)}" if o["params"] else "")
        )
    for step in decision.get("trace") or ():
        if "rule" in step:
            lines.append(f"  {step['rule']} ({step['kind']}, {step['outcome']}): {step['says']}")
        for condition in step.get("conditions") or ():
            lines.append(f"      {condition['says']}")
    why_not = body["why_not"] or {}
    for direction in ("to_allow", "to_deny"):
        if direction in why_not:
            lines.append(f"  {direction.replace('_', ' ')}, change one of these sets of facts:")
            lines.extend(f"    - {a['says']}" for a in why_not[direction])
    return "\n".join(lines)


@click.command()
@click.argument("decision_id")
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="json", show_default=True,
              help="JSON (`explanation` is what `decide --explain` prints), or the trace in sentences.")
@source_options
def explain(source: Local | Remote, decision_id: str, fmt: str) -> None:
    """Explain logged decision DECISION_ID in business words.

    The decision is decided again, with its trace, from the logged input on the logged version
    (the trace `ordergate decide --explain` gives for that input and version), with the smallest
    fact changes that would have flipped it. Exit 1 when the rebuilt decision differs from the log.

    \b
    Example:
      ordergate explain 01M8JN2569PPTGX6SBGRA1A01N
    """
    body = source.explain(decision_id)
    if fmt == "json":
        _print_json(body)
    else:
        click.echo(_explain_text(body))
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


def _diff_text(body: dict[str, t.Any]) -> str:
    def show(value: t.Any) -> str:
        if value is None:
            return "(none)"
        return f"`{value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}`"

    lines = [body["summary"]]
    if body["hash"]["layout_only"]:
        lines[0] += " (the content hash differs only by order and layout)"
    elif body["hash"]["same"]:
        lines[0] += " (the same content hash)"
    for r in body["rules_added"]:
        lines.append(f"+ {r['system']} {r['id']} ({r['kind']}): {r['says']}")
    for r in body["rules_removed"]:
        lines.append(f"- {r['system']} {r['id']} ({r['kind']}): {r['says']}")
    for r in body["rules_changed"]:
        lines.append(f"~ {r['system']} {r['id']} ({r['kind']}): {r['says']}")
        for c in r.get("cells") or r["changes"]:
            where = f"cell {c['column']}" if "column" in c else c["path"]
            lines.append(f"    {where}: {show(c['from'])} -> {show(c['to'])}")
    for d in body["declarations_changed"]:
        lines.append(f"~ {d['system']} {d['section']} {d['id']}: {d['change']}")
        for c in d.get("changes", ()):
            lines.append(f"    {c['path']}: {show(c['from'])} -> {show(c['to'])}")
    for w in body["wording_changed"]:
        lines.append(f"  wording of {w['system']} {w['section']} {w['id']}: "
                     + "; ".join(f"{c['path']} {show(c['from'])} -> {show(c['to'])}" for c in w["changes"]))
    requests = body.get("requests")
    if requests:
        lines.append("requests that change (every combination of declared fact values):")
        for a in requests["changed"]:
            kinds = ", ".join(f"{k} {n}" for k, n in a["kinds"].items())
            lines.append(f"  {a['system']} {a['action']}: {a['changed']} of {a['requests']} ({kinds}); "
                         f"rules {', '.join(a['rules'])}")
        if requests["not_finite"]:
            lines.append(f"  not compared (a fact without a finite domain): {len(requests['not_finite'])} actions")
    return "\n".join(lines)


@click.command()
@click.argument("a")
@click.argument("b")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@source_options
def diff(source: Local | Remote, a: str, b: str, fmt: str) -> None:
    """What changes in behaviour from A to B (each a rules folder or a stored version).

    Versions that differ only in the order of rules, rows or keys, or in YAML formatting, are the
    same policy: "no change in behaviour". Exit 0 when the behaviour is the same, 1 when it differs.

    \b
    Example:
      ordergate diff rules/ ../candidate-rules/
    """
    from api import evidence

    first, second = candidate(source, a), candidate(source, b)
    body = evidence.diff(first.files, first.policy_set, second.files, second.policy_set)
    if fmt == "json":
        _print_json(body)
    else:
        click.echo(_diff_text(body))
    raise SystemExit(0 if body["same_behaviour"] else 1)


def print_impact(body: dict[str, t.Any], fmt: str) -> None:
    from engine.impact import CSV_COLUMNS, csv_rows, text

    if fmt == "json":
        _print_json(body)
    elif fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_rows(body))
    else:
        click.echo(text(body))
        if "exhaustive" in body:
            for a in body["exhaustive"]["changed"]:
                kinds = ", ".join(f"{k} {n}" for k, n in a["kinds"].items())
                click.echo(f"exhaustive {a['system']} {a['action']}: {a['changed']} of {a['requests']} "
                           f"combinations change ({kinds}); rules {', '.join(a['rules'])}")
        click.echo(f"report {body['hash']}")


@click.command()
@click.argument("candidate_ref", metavar="CANDIDATE")
@click.option("--since", default=None, help="Replay decisions from this time (ISO-8601, inclusive).")
@click.option("--until", default=None, help="Up to this time (ISO-8601, exclusive).")
@click.option("--action", default=None, help="Only this action.")
@click.option("--system", default=None, help="Only this system.")
@click.option("--rule", default=None, help="Only decisions that cited this rule.")
@click.option("--examples", type=click.IntRange(0, 100), default=5, show_default=True,
              help="Example decision ids per group.")
@click.option("--exhaustive", is_flag=True,
              help="Also compare with the active version over every combination of declared fact values.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True)
@source_options
def impact(source: Local | Remote, candidate_ref: str, since: str | None, until: str | None, action: str | None,
           system: str | None, rule: str | None, examples: int, exhaustive: bool, fmt: str) -> None:
    """Replay the logged decisions against CANDIDATE (a rules folder or a stored version).

    Groups what would change by kind (deny_to_allow, the risk; allow_to_deny; new_error;
    obligations_changed; rules_changed), rules, system and action, with counts and example
    decision ids. `ordergate publish --impact-since` runs the same report as its gate.

    \b
    Example:
      ordergate impact ../candidate-rules/ --since 2026-11-01T00:00:00Z --format csv
    """
    body = source.impact(candidate(source, candidate_ref), since=since, until=until, action=action,
                      system=system, rule=rule, examples=examples, exhaustive=exhaustive)
    print_impact(body, fmt)


def register(group: click.Group) -> None:
    group.add_command(log_command, name="log")
    group.add_command(explain)
    group.add_command(replay)
    group.add_command(diff)
    group.add_command(impact)
