"""Analyst commands: check rule files, run their YAML tests, try one decision."""
from __future__ import annotations

import json
import sys
import typing as t
from pathlib import Path

import click

from cli.folders import HELP as RULES_HELP
from cli.folders import rules_folder

if t.TYPE_CHECKING:
    import engine


def _load(directory: str | Path) -> engine.PolicySet:
    import engine  # imported when used: every other command starts without it

    try:
        return engine.load_policy_set(directory)
    except engine.PolicyErrors as exc:
        for err in exc.errors:
            click.echo(err.render(), err=True)
        n = len(exc.errors)
        click.echo(f"{n} error{'s' if n != 1 else ''} in {directory}", err=True)
        raise SystemExit(1) from exc


@click.command(epilog="Exit status: 0 when nothing is wrong (warnings allowed unless --strict), "
                      "1 when there are errors (or warnings with --strict), 2 on a usage error.")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="`json` prints one object with every finding, for editors and CI.")
def check(directory: str | None, strict: bool, fmt: str) -> None:
    """Verify the rule files in DIRECTORY and list every finding in one run.

    DIRECTORY defaults to ./rules when the current folder has one, else the shipped policy set.

    Errors: the files do not load, do not fit the format, do not compile, or a table overlaps,
    has a gap or a row that never applies. Warnings: things that are probably not meant.

    \b
    Example:
      ordergate check --strict rules/
    """
    import engine
    from engine.verify import verify

    directory = str(rules_folder(directory))
    try:
        files = engine.read_folder(directory)
    except engine.PolicyErrors as exc:
        if any(e.code == "load_no_folder" for e in exc.errors):
            raise click.UsageError(exc.errors[0].message) from exc
        # a file too large, not text, or a link out of the folder: errors in the files, not usage
        for err in exc.errors:
            click.echo(err.render(), err=True)
        raise SystemExit(1) from exc
    root = Path(directory).as_posix().rstrip("/") + "/"
    report = verify(files, display_root=root)
    passed = report.passed(strict)
    if fmt == "json":
        out = {"ok": passed, "errors": len(report.errors), "warnings": len(report.warnings),
               "findings": [f.to_dict() for f in report.findings],
               "policy_version": report.policy.version if report.policy else None}
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
        raise SystemExit(0 if passed else 1)
    for finding in report.findings:
        click.echo(finding.render(), err=not passed)
    counts = _counts(len(report.errors), len(report.warnings))
    if not passed:
        click.echo(f"{counts} in {directory}", err=True)
        raise SystemExit(1)
    policy = report.policy
    assert policy is not None  # a report without errors carries its compiled policy
    try:  # the YAML tests must be well formed too (their results are test-rules' job)
        engine.run_tests(policy, files, display_root=root)
    except engine.PolicyErrors as exc:
        for err in exc.errors:
            click.echo(err.render(), err=True)
        click.echo(f"{_counts(len(exc.errors), 0)} in {root}tests/", err=True)
        raise SystemExit(1) from exc
    systems = ", ".join(f"{s} ({len(a)} actions)" for s, a in sorted(policy.catalogue.items()))
    click.echo(f"ok: {len(policy.rules)} rules; {systems}" + (f"; {counts}" if report.warnings else ""))
    click.echo(f"policy version {policy.version}")


def _counts(errors: int, warnings: int) -> str:
    parts = [f"{errors} error{'s' if errors != 1 else ''}"] if errors or not warnings else []
    if warnings:
        parts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    return ", ".join(parts)


@click.command("test-rules")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option("-v", "--verbose", is_flag=True, help="List every test, not only failures.")
def test_rules(directory: str | None, verbose: bool) -> None:
    """Run the YAML tests in DIRECTORY/tests and report rule coverage.

    Exit 1 when a test fails or a rule is fired by no test. DIRECTORY defaults to ./rules when
    the current folder has one, else the shipped policy set.

    \b
    Example:
      ordergate test-rules rules/ -v
    """
    import engine

    folder = rules_folder(directory)
    policy = _load(folder)
    root = folder.as_posix().rstrip("/") + "/"
    try:
        report = engine.run_tests(policy, engine.read_folder(folder), display_root=root)
    except engine.PolicyErrors as exc:
        for err in exc.errors:
            click.echo(err.render(), err=True)
        raise SystemExit(1) from exc
    if verbose:
        for r in report.results:
            click.echo(f"{'ok  ' if r.passed else 'FAIL'} {r.location}: {r.name}")
    if not report.results:
        click.echo(f"no tests found in {root}tests/", err=True)
        raise SystemExit(1)
    click.echo(report.render())
    if not report.passed:
        raise SystemExit(1)


@click.command()
@click.argument("action")
@click.option("--input", "input_file", required=True, type=click.File("r"),
              help="JSON (or YAML) file with the request input; `-` reads standard input.")
@click.option("--rules", "directory", default=None, type=click.Path(file_okay=False), help=RULES_HELP)
@click.option("--explain", is_flag=True, help="Add the trace: which conditions held and which did not.")
def decide(action: str, input_file, directory: str | None, explain: bool) -> None:
    """Decide ACTION for the input in --input and print the decision as JSON.

    Exit 0 when allowed, 2 when denied, 3 on a decision error.

    \b
    Example:
      ordergate decide salesorder.update --input request.json --explain
    """
    from engine.load import MAX_FILE_BYTES, load_text

    text = input_file.read(MAX_FILE_BYTES + 1)
    if len(text) > MAX_FILE_BYTES:
        raise click.UsageError(f"--input is larger than {MAX_FILE_BYTES:,} characters")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        # YAML with the rule files' limits (size, depth, aliases, tags)
        loaded, errors = load_text(input_file.name, text)
        if errors:
            raise click.UsageError(f"--input is neither JSON nor YAML: {errors[0]}") from None
        data = loaded.documents[0] if loaded is not None and loaded.documents else None
    if isinstance(data, dict) and set(data) >= {"action", "input"}:  # a whole request body is accepted too
        if data.get("action") != action:
            raise click.UsageError(f"--input is a request for action `{data.get('action')}`, not `{action}`; "
                                   f"decide `{data.get('action')}`, or give the file of a `{action}` request")
        data = data["input"]
    policy = _load(rules_folder(directory))
    decision = policy.decide(action, data, explain=explain)
    json.dump(decision.to_dict(), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    if decision.error is not None and decision.error.code == "unknown_action":
        from engine.errors import did_you_mean

        system = data.get("context", {}).get("system") if isinstance(data, dict) else None
        hint = did_you_mean(action, policy.catalogue.get(system, ()) if isinstance(system, str) else ())
        if hint:
            click.echo(f"help: {hint}", err=True)
    raise SystemExit(0 if decision.allow else (3 if decision.error else 2))


@click.command()
@click.argument("system")
@click.argument("action")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
def plan(system: str, action: str, directory: str | None) -> None:
    """Print the Python code generated for ACTION of SYSTEM from the rules in DIRECTORY.

    This is the code every decision of that action runs (facts read and checked, then the rules
    in order); a traceback of a failed decision points into it. Exit 2 for an unknown system or action.
    DIRECTORY defaults to ./rules when the current folder has one, else the shipped policy set.

    \b
    Example:
      ordergate plan d365_sales salesorder.update rules/
    """
    from engine.codegen import source_of

    policy = _load(rules_folder(directory))
    fn = policy.function(system, action)
    if fn is None:
        known = policy.catalogue.get(system)
        what = (
            f"unknown system `{system}`"
            if known is None
            else f"action `{action}` is not in the catalogue of `{system}`"
        )
        click.echo(f"{what}; known: " + ", ".join(known if known is not None else sorted(policy.catalogue)), err=True)
        raise SystemExit(2)
    click.echo(source_of(fn), nl=False)


def register(group: click.Group) -> None:
    group.add_command(plan)
    group.add_command(check)
    group.add_command(test_rules)
    group.add_command(decide)
