"""Conditions in the verifier's model, and what it computes from them: unions of boxes.

A condition is built from :class:`Atom` (one fact's value lies in a set of its domain), :class:`And`,
:class:`Or`, :class:`Neg` and :class:`Unknown` (a test the verifier does not reason about: on
lists, between two facts, a stage graph given as a fact). A box maps some facts to a set of their
values (a fact it does not name takes any value); a condition becomes a list of boxes whose union
is where it holds ("disjunctive normal form"). An ``Unknown`` is approximated on the safe side
the caller asks for: ``over`` never misses an input where the condition holds (to prove that
something never happens), ``under`` contains only inputs where it holds (to prove that something
always happens, or to build a witness). ``exact`` tells whether an approximation was needed.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .domain import Domain

Box = dict[str, Any]  # fact name -> set of its domain
LIMIT = 512         # boxes a condition may grow to before it is approximated


@dataclass(frozen=True)
class Atom:
    fact: str
    values: Any


@dataclass(frozen=True)
class And:
    parts: tuple[Any, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Any, ...]


@dataclass(frozen=True)
class Neg:
    inner: Any


@dataclass(frozen=True)
class Unknown:
    why: str


Cond = Atom | And | Or | Neg | Unknown
TRUE = And(())


class Logic:
    """Boxes over the domains of one system's facts."""

    def __init__(self, domains: Mapping[str, Domain]):
        self.domains = domains
        self.exact = True

    def over(self, cond: Cond) -> list[Box]:
        return self._dnf(cond, True)

    def under(self, cond: Cond) -> list[Box]:
        return self._dnf(cond, False)

    def meet(self, a: Box, b: Box) -> Box | None:
        out = dict(a)
        for name, s in b.items():
            if name in out:
                s = self.domains[name].inter(out[name], s)
                if self.domains[name].is_empty(s):
                    return None
            out[name] = s
        return out

    def both(self, xs: list[Box], ys: list[Box], polarity: bool = True) -> list[Box]:
        out = [m for x in xs for y in ys if (m := self.meet(x, y)) is not None]
        return self._capped(out, polarity)

    def negate(self, boxes: list[Box], polarity: bool = True) -> list[Box]:
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
        """Every input of ``small`` is in ``big`` (pass ``big`` under- and ``small`` over-approximated)."""
        return not self.both(small, self.negate(big, True), True)

    def _capped(self, boxes: list[Box], polarity: bool) -> list[Box]:
        if len(boxes) <= LIMIT:
            return boxes
        self.exact = False
        return [{}] if polarity else []

    def _dnf(self, cond: Cond, polarity: bool) -> list[Box]:
        if isinstance(cond, Atom):
            return [] if self.domains[cond.fact].is_empty(cond.values) else [{cond.fact: cond.values}]
        if isinstance(cond, And):
            out: list[Box] = [{}]
            for part in cond.parts:
                out = self.both(out, self._dnf(part, polarity), polarity)
                if not out:
                    break
            return out
        if isinstance(cond, Or):
            return self._capped([b for part in cond.parts for b in self._dnf(part, polarity)], polarity)
        if isinstance(cond, Neg):
            return self.negate(self._dnf(cond.inner, not polarity), polarity)
        self.exact = False
        return [{}] if polarity else []
