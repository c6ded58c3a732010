"""The publish step: compile a candidate, run its YAML tests, then store (and activate) it in one
transaction. A broken candidate raises ``PublishRejected`` and writes nothing."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from .db import Database
from .errors import InvalidInput, PublishRejected
from .impact_reports import record_impact
from .schema import HEAD_ACTIVE, policy_files, policy_versions
from .versions import CompiledVersions, Version, Versions, check_text, now


def check_candidate(files: Any) -> dict[str, str]:
    if not isinstance(files, Mapping) or not files:
        raise InvalidInput("files must be a non-empty mapping of relative path -> text")
    for path, text in files.items():
        if not isinstance(path, str) or not path or not isinstance(text, str):
            raise InvalidInput(f"files must map path strings to text; got {path!r}")
        if len(path) > 500:
            raise InvalidInput(f"file path longer than 500 characters: {path[:60]!r}...")
    return {str(k): str(v) for k, v in files.items()}


def compile_and_test(files: dict[str, str]) -> Any:
    """The compiled PolicySet of a candidate that `ordergate check` accepts (no error finding: a
    row table with a gap and no `no_match` never goes live) and whose YAML tests pass and cover
    every rule."""
    import engine as policy_engine
    from engine.verify import verify

    checked = verify(files)
    if checked.errors or checked.policy is None:
        raise PublishRejected(errors=[f.to_dict() for f in checked.errors])
    ps = checked.policy
    try:
        report = policy_engine.run_tests(ps, files)
    except policy_engine.PolicyErrors as exc:
        raise PublishRejected(errors=[e.to_dict() for e in exc.errors]) from None
    if not report.passed:
        failures: list[dict[str, Any]] = [_test_failure(r) for r in report.failures]
        failures += [{"kind": "uncovered", "rule": rid,
                      "message": f"no test makes rule {rid} fire"} for rid in report.uncovered]
        raise PublishRejected(test_failures=failures)
    return ps


def publish(db: Database, versions: Versions, compiled: CompiledVersions, files: Mapping[str, str], *,
            author: str, message: str, activate: bool = True, unless_active: bool = False,
            impact: Mapping[str, Any] | None = None,
            checking: Callable[[Callable[[], Any]], Any] | None = None) -> tuple[Version, bool]:
    """Compile, run the YAML tests, then store (and activate) in one transaction; ``(version, True)``.

    The id is ``PolicySet.version``, a hash of the rule files (paths relative to the folder, tests
    not included): content already stored under that id is kept as it was (first author, message,
    files) and, with ``activate``, made active again. ``parent`` is the version active when the
    publish commits (publishes are serialised on the active-version lock). With ``unless_active``
    nothing is written when a version is active by the time the lock is held: ``(that version,
    False)`` (servers starting at once on an empty store publish once; the others find it).
    ``impact`` (the summary of the impact report the candidate passed: ``hash``, ``risky_flips``,
    ``since``) is recorded in the same transaction, so a version is never live without it.
    ``checking(check)``, when given, runs ``check`` (compile and test the candidate, raising
    ``PublishRejected``) and returns its PolicySet, before the transaction: on a thread of lower
    priority, or sharing the compiled version with the processes that will load it.
    """
    checked = check_candidate(files)
    author = check_text(author, "author", max_len=200)
    message = check_text(message, "message", max_len=10000)
    ps = compile_and_test(checked) if checking is None else checking(lambda: compile_and_test(checked))
    version_id = ps.version
    with db.write("publish", HEAD_ACTIVE) as (conn, head):
        if unless_active and head.value is not None:
            found = conn.execute(sa.select(policy_versions).where(policy_versions.c.id == head.value)).one()
            return Version.from_row(found, None), False
        existing = conn.execute(
            sa.select(policy_versions).where(policy_versions.c.id == version_id)).one_or_none()
        if existing is None:
            conn.execute(policy_versions.insert().values(
                id=version_id, author=author, message=message, created_at=now(),
                parent=head.value, file_count=len(checked)))
            conn.execute(policy_files.insert(), [
                {"version_id": version_id, "path": p, "content": t} for p, t in sorted(checked.items())])
        if impact is not None:
            record_impact(conn, version_id, impact)
        db.hook("publish_before_activate")
        if activate and head.value != version_id:
            versions.activate_locked(conn, head, version_id, actor=author,
                                     reason=f"publish: {message}" if existing is None else f"republish: {message}")
        db.hook("publish_before_commit")
        row = conn.execute(sa.select(policy_versions).where(policy_versions.c.id == version_id)).one()
        stored = dict(conn.execute(
            sa.select(policy_files.c.path, policy_files.c.content)
            .where(policy_files.c.version_id == version_id)).all())
    compiled.remember(version_id, ps)
    return Version.from_row(row, stored), True


def _test_failure(result: Any) -> dict[str, Any]:
    loc = getattr(result, "location", None)
    file = getattr(result, "file", None) or getattr(loc, "file", None)
    line = getattr(result, "line", None) or getattr(loc, "line", None)
    return {"kind": "failed", "name": result.name, "file": file, "line": line,
            "location": f"{file}:{line}" if file and line else file,
            "problems": [str(p) for p in (getattr(result, "problems", None) or ())]}
