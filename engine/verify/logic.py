"""Conditions as unions of boxes: what the verifier knows about `when`, `deny_when` and `move`.

A box maps some facts to a set of their values (a fact it does not name takes any value); a
condition becomes a list of boxes whose union is exactly where it holds ("disjunctive normal
form"). Tests the verifier cannot reason about (on lists, between two facts, a stage graph given
as a fact) are approximated on the safe side, and the caller asks for the side it needs:
``over`` never misses an input where the condition holds (to prove that something never happens),
``under`` contains only inputs where it holds (to prove that something always happens, or to
build a witness). ``exact`` tells whether any approximation was needed.
"""
from __future__ import annotations

from typing import Any, Mapping

from .domain import Domain, Unsupported, leaf_set

Box = dict          # fact name -> set of its domain
LIMIT = 512         # boxes a condition may grow to before it is approximated


class Logic:
    """Conditions of one system over the domains of its facts (facts without one are opaque)."""

    def __init__(self, domains: Mapping[str, Domain | None]):
        self.domains = domains
        self.exact = True

    def over(self, cond: Any) -> list[Box]:
        return self._dnf(cond, True)

    def under(self, cond: Any) -> list[Box]:
        return self._dnf(cond, False)

    # -- boxes --------------------------------------------------------------------------------
    def meet(self, a: Box, b: Box) -> Box | None:
        out = dict(a)
        for name, s in b.items():
            if name in out:
                s = self.domains[name].inter(out[name], s)
                if self.domains[name].is_empty(s):
                    return None
            out[name] = s
        return out

    def both(self, xs: list[Box], ys: list[Box], polarity: bool) -> list[Box]:
        out = [m for x in xs for y in ys if (m := self.meet(x, y)) is not None]
        return self._capped(out, polarity)

    def negate(self, boxes: list[Box], polarity: bool) -> list[Box]:
        out: list[Box] = [{}]
        for box in boxes:
            parts = []
            for name, s in box.items():
                comp = self.domains[name].complement(s)
                if not self.domains[name].is_empty(comp):
                    parts.append({name: comp})
            out = self.both(out, parts, polarity)
            if not out:
                break
        return out

    def covers(self, big: list[Box], small: list[Box]) -> bool:
        """Every input of ``small`` is in ``big`` (``big`` an under-, ``small`` an over-approximation)."""
        return not self.both(small, self.negate(big, True), True)

    def _capped(self, boxes: list[Box], polarity: bool) -> list[Box]:
        if len(boxes) <= LIMIT:
            return boxes
        self.exact = False
        return [{}] if polarity else []

    def _unknown(self, polarity: bool) -> list[Box]:
        self.exact = False
        return [{}] if polarity else []

    # -- conditions ---------------------------------------------------------------------------
    def _dnf(self, cond: Any, polarity: bool) -> list[Box]:
        if cond is None or cond == "always":
            return [{}]
        if not isinstance(cond, dict):
            return self._unknown(polarity)
        out: list[Box] = [{}]
        for key, spec in cond.items():
            if key == "all":
                part: list[Box] = [{}]
                for c in spec:
                    part = self.both(part, self._dnf(c, polarity), polarity)
            elif key == "any":
                part = self._capped([b for c in spec for b in self._dnf(c, polarity)], polarity)
            elif key == "not":
                part = self.negate(self._dnf(spec, not polarity), polarity)
            elif key == "move":
                part = self._move(spec, polarity)
            else:
                part = self._leaf(key, spec, polarity)
            out = self.both(out, part, polarity)
            if not out:
                break
        return out

    def _leaf(self, name: str, spec: Any, polarity: bool) -> list[Box]:
        dom = self.domains.get(name)
        if dom is None:
            return self._unknown(polarity)
        try:
            s = leaf_set(dom, spec)
        except Unsupported:
            return self._unknown(polarity)
        return [] if dom.is_empty(s) else [{name: s}]

    def _move(self, spec: Any, polarity: bool) -> list[Box]:
        graph = spec.get("graph") if isinstance(spec, dict) else None
        src, dst = (self.domains.get(spec.get(k)) for k in ("from", "to")) if isinstance(spec, dict) else (None, None)
        if not isinstance(graph, dict) or src is None or dst is None:
            return self._unknown(polarity)
        a, b = spec["from"], spec["to"]
        try:
            boxes = [{a: src.literal(stage), b: dst.members(nexts)} for stage, nexts in graph.items() if nexts]
            if spec.get("unlisted", "allowed") == "allowed":
                rest = src.complement(src.members(graph))
                if not src.is_empty(rest):
                    boxes.append({a: rest})
        except Unsupported:
            return self._unknown(polarity)
        return [box for box in boxes if not any(self.domains[n].is_empty(s) for n, s in box.items())]
