"""Try a decision: a form built from the facts the chosen action declares (types, enumerations,
defaults, which are required); the answer with its explanation.

It decides exactly as ``POST /v1/decisions`` does (the same ``Decider.evaluate`` on the active
version) but never records the decision: nothing is written to the decision log.
"""
from __future__ import annotations

import json
import typing as t
from dataclasses import dataclass

from flask import g, request

from api.body import check_value
from api.decisions import WHY_NOT, Decider, Who
from api.errors import ApiError
from api.workbench.core import PageError, bp, render, requires_role, runtime

_FIELD = "fact."


@dataclass(frozen=True)
class FactField:
    """One field of the form: a fact the action reads."""

    name: str
    path: str
    kind: str               # boolean | enum | integer | string | json
    mode: str               # required | optional | conditional
    says: str
    choices: tuple[tuple[str, str], ...]   # (submitted value, label) of a select
    default: str | None     # the default, shown (absent means the default)

    @property
    def key(self) -> str:
        return _FIELD + self.path

    @property
    def dom_id(self) -> str:
        return "f-" + self.path.replace(".", "-")


def _kind(fact_type: t.Any) -> str:
    kind = getattr(fact_type, "kind", "object")
    return kind if kind in ("boolean", "enum", "integer", "string") else "json"


def _field(read: t.Any) -> FactField:
    fact = read.fact
    kind = _kind(fact.type)
    choices: tuple[tuple[str, str], ...] = ()
    if kind == "boolean":
        choices = (("true", "yes (true)"), ("false", "no (false)"))
    elif kind == "enum":
        choices = tuple((json.dumps(v), str(v)) for v in fact.type.values)
    has_default = read.mode == "optional" or fact.has_default
    default = read.default if read.mode == "optional" else fact.default
    return FactField(fact.name, ".".join(fact.path), kind, read.mode, fact.says, choices,
                     json.dumps(default) if has_default else None)


def fields_of(policy_set: t.Any, system: str, action: str) -> list[FactField]:
    """The form fields of an action: every fact its plan reads (the built-in ``action`` excepted)."""
    plan = policy_set.ir.systems[system].plans[action]
    return [_field(read) for read in plan.reads if read.fact.path != ("action",)]


def _value(field: FactField, text: str) -> t.Any:
    """The fact value of a submitted field (ValueError with a message when it is not one)."""
    if field.kind in ("boolean", "enum"):
        if text not in {value for value, _ in field.choices}:
            raise ValueError("choose one of the listed values")
        return json.loads(text)
    if field.kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise ValueError("must be a whole number") from None
    if field.kind == "string":
        return text
    return _json(text)


def _no_constant(name: str) -> t.NoReturn:
    raise ValueError(f"`{name}` is not JSON")


def _json(text: str) -> t.Any:
    """A JSON field's value, within the nesting depth the API allows a request (``max_depth``)."""
    depth = int(runtime().config["max_depth"])
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError(f"is nested deeper than the {depth} levels a request may have") from None
    except ValueError:
        raise ValueError("must be JSON (a list [..], an object {..}, a number, \"text\", true/false)") from None
    try:
        check_value(value, depth)
    except ApiError as exc:
        raise ValueError(exc.message) from None
    return value


def build_input(system: str, fields: list[FactField], form: t.Mapping[str, str]
                ) -> tuple[dict[str, t.Any], dict[str, str]]:
    """The decision input from the form, and the problems of fields that could not be read."""
    facts: dict[str, t.Any] = {"context": {"system": system}}
    problems: dict[str, str] = {}
    for field in fields:
        text = (form.get(field.key) or "").strip() if field.kind != "string" else form.get(field.key) or ""
        if text == "":
            continue  # absent: the engine applies the default, or says the fact is missing
        try:
            value = _value(field, text)
        except ValueError as exc:
            problems[field.key] = str(exc)
            continue
        node = facts
        *parents, leaf = field.path.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                problems[field.key] = f"`{part}` is also given a value of its own"
                break
            node = child
        else:
            node[leaf] = value
    return facts, problems


def _choice(args: t.Mapping[str, str], catalogue: t.Mapping[str, t.Sequence[str]]) -> tuple[str, str] | None:
    chosen = args.get("action") or ""
    system, _, action = chosen.partition("/")
    if not chosen:
        return None
    if action not in catalogue.get(system, ()):
        raise PageError(404, "No such action", f"The active version has no action `{chosen}`.")
    return system, action


def _loaded() -> t.Any:
    loaded = runtime().holder.current
    if loaded is None:
        raise PageError(503, "No policy version is loaded", "The service has no active version to decide with.")
    return loaded


@bp.route("/try", methods=["GET", "POST"])
@requires_role("audit")
def try_decision() -> t.Any:
    loaded = _loaded()
    source = request.form if request.method == "POST" else request.args
    choice = _choice(source, loaded.policy_set.catalogue)
    context: dict[str, t.Any] = {"catalogue": loaded.policy_set.catalogue, "version": loaded.version_id,
                                 "choice": choice, "form": request.form, "problems": {}, "answer": None}
    if choice is not None:
        system, action = choice
        fields = fields_of(loaded.policy_set, system, action)
        context["fields"] = fields
        if request.method == "POST":
            facts, problems = build_input(system, fields, request.form)
            context.update(problems=problems, request_json=json.dumps({"action": action, "input": facts}, indent=2))
            if not problems:
                context["answer"] = _decide(action, facts)
    status = 400 if context["problems"] else 200
    return render("try.html", status, title="Try a decision", **context)


def _decide(action: str, facts: dict[str, t.Any]) -> dict[str, t.Any]:
    """The decision the API would answer, with its explanation; never recorded."""
    try:
        decided = Decider(runtime()).evaluate(action, facts, WHY_NOT, Who(g.user.name, None))
    except ApiError as exc:  # the API answers such a request 400 (it could not be logged)
        return {"refused": exc.message}
    return {"result": decided.result, "trace": decided.trace or [], "why_not": decided.why_not}
