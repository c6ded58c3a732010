"""Domains of values and exact sets over them: the verifier's model of one fact.

A fact is one of three shapes of domain, and a table cell or a test on a fact is a set of its
values:

- :class:`Finite` — booleans and enums (a scale adds ranks): a set is an ``int`` bit mask;
- :class:`Interval` — whole numbers between ``min`` and ``max`` (either may be open): a set is a
  sorted tuple of disjoint closed intervals ``((lo, hi), ...)``;
- :class:`Opaque` — text and other values with no useful order: a set is ``(negated, values)``,
  ``values`` when not negated, every value but ``values`` when negated.

Every operation is exact; nothing is sampled. ``split`` is the one workhorse of the table
analyses: it cuts a region of the domain into the parts on which every given set either holds or
does not ("atoms"), so a table can be analysed one column at a time.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

INF = float("inf")

_CMP = {"at_least": lambda a, b: a >= b, "above": lambda a, b: a > b,
        "at_most": lambda a, b: a <= b, "below": lambda a, b: a < b}
RANGE_OPS = tuple(_CMP)


class Unsupported(Exception):
    """A test the verifier cannot reason about exactly (it then says so instead of guessing)."""


class Domain:
    """The common interface; sets are plain values (int, tuple) so they hash and compare."""

    full: Any
    empty: Any

    def inter(self, a: Any, b: Any) -> Any: raise NotImplementedError
    def union(self, a: Any, b: Any) -> Any: raise NotImplementedError
    def complement(self, a: Any) -> Any: raise NotImplementedError
    def pick(self, a: Any) -> Any: raise NotImplementedError
    def literal(self, value: Any) -> Any: raise NotImplementedError
    def compare(self, op: str, value: Any) -> Any: raise NotImplementedError
    def split(self, region: Any, cells: Sequence[Any]) -> list[tuple[Any, list[int]]]: raise NotImplementedError
    def cell(self, a: Any) -> Any: raise NotImplementedError
    def values_of(self, a: Any) -> list[Any] | None: return None

    def narrow(self, a: Any) -> Any:
        """A part of ``a`` that one table cell can write (``a`` itself unless it cannot)."""
        return a

    def is_empty(self, a: Any) -> bool:
        return bool(a == self.empty)

    def is_full(self, a: Any) -> bool:
        return bool(a == self.full)

    def diff(self, a: Any, b: Any) -> Any:
        return self.inter(a, self.complement(b))

    def within(self, a: Any, b: Any) -> bool:
        """``a`` ⊆ ``b``."""
        return self.is_empty(self.diff(a, b))

    def members(self, values: Iterable[Any]) -> Any:
        out = self.empty
        for v in values:
            out = self.union(out, self.literal(v))
        return out

    def entered(self, flag: bool) -> Any:
        """`entered: true` holds for every value but the empty text (and nothing)."""
        blank = self.inter(self.full, self.literal_loose(""))
        return self.diff(self.full, blank) if flag else blank

    def literal_loose(self, value: Any) -> Any:
        try:
            return self.literal(value)
        except Unsupported:
            return self.empty


class Finite(Domain):
    """Booleans and enums; ``rank`` orders the values of a scale."""

    def __init__(self, values: Sequence[Any], rank: dict[Any, int] | None = None):
        self.values = tuple(values)
        self.rank = rank
        self.index = {(type(v), v): i for i, v in enumerate(self.values)}
        self.full = (1 << len(self.values)) - 1
        self.empty = 0

    def inter(self, a: Any, b: Any) -> Any: return a & b
    def union(self, a: Any, b: Any) -> Any: return a | b
    def complement(self, a: Any) -> Any: return self.full & ~a

    def literal(self, value: Any) -> Any:
        i = self.index.get((type(value), value))
        if i is None:
            raise Unsupported(f"`{value}` is not a value of the fact")
        return 1 << i

    def compare(self, op: str, value: Any) -> Any:
        if self.rank is None or value not in self.rank:
            raise Unsupported(f"`{op}` needs a scale")
        limit = self.rank[value]
        cmp: Callable[[int, int], bool] = _CMP[op]
        return self.members(v for v in self.values if v in self.rank and cmp(self.rank[v], limit))

    def values_of(self, a: Any) -> list[Any]:
        return [v for i, v in enumerate(self.values) if a >> i & 1]

    def pick(self, a: Any) -> Any:
        return self.values[(a & -a).bit_length() - 1]

    def split(self, region: Any, cells: Sequence[Any]) -> list[tuple[Any, list[int]]]:
        holders: dict[int, list[int]] = {}
        for k, c in enumerate(cells):
            bits = c & region
            while bits:
                low = bits & -bits
                holders.setdefault(low, []).append(k)
                bits ^= low
        groups: dict[tuple[int, ...], int] = {}
        rest = region
        for low, ks in holders.items():
            key = tuple(ks)
            groups[key] = groups.get(key, 0) | low
            rest &= ~low
        out = [(atom, list(key)) for key, atom in groups.items()]
        if rest:
            out.append((rest, []))
        return out

    def cell(self, a: Any) -> Any:
        if a == self.full:
            return "-"
        vals = self.values_of(a)
        if len(vals) == 1:
            return vals[0]
        rest = self.values_of(self.full & ~a)
        return {"not_in": rest} if len(rest) < len(vals) and len(rest) > 1 else (
            {"is_not": rest[0]} if len(rest) == 1 else {"in": vals})


def _norm(intervals: Iterable[tuple[Any, Any]]) -> tuple[tuple[Any, Any], ...]:
    out: list[list[Any]] = []
    for lo, hi in sorted(intervals):
        if lo > hi:
            continue
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((lo, hi) for lo, hi in out)


class Interval(Domain):
    """Whole numbers in ``[lo, hi]``; ``-inf``/``inf`` for an open end."""

    def __init__(self, lo: int | None = None, hi: int | None = None):
        self.lo: float = -INF if lo is None else lo
        self.hi: float = INF if hi is None else hi
        self.full = ((self.lo, self.hi),)
        self.empty = ()

    def inter(self, a: Any, b: Any) -> Any:
        out: list[tuple[Any, Any]] = []
        i = j = 0
        while i < len(a) and j < len(b):
            lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
            if lo <= hi:
                out.append((lo, hi))
            if a[i][1] < b[j][1]:
                i += 1
            else:
                j += 1
        return tuple(out)

    def union(self, a: Any, b: Any) -> Any:
        return _norm(a + b)

    def complement(self, a: Any) -> Any:
        out: list[tuple[Any, Any]] = []
        start = self.lo
        for lo, hi in a:
            if lo > start:
                out.append((start, lo - 1))
            start = hi + 1
        if start <= self.hi and start != INF:
            out.append((start, self.hi))
        return tuple(out)

    def literal(self, value: Any) -> Any:
        if type(value) is not int:
            raise Unsupported(f"`{value}` is not a whole number")
        return self.inter(self.full, ((value, value),))

    def compare(self, op: str, value: Any) -> Any:
        if type(value) is not int:
            raise Unsupported(f"`{op}` needs a whole number")
        bound = {"at_least": (value, INF), "above": (value + 1, INF),
                 "at_most": (-INF, value), "below": (-INF, value - 1)}[op]
        return self.inter(self.full, (bound,))

    def pick(self, a: Any) -> Any:
        lo, hi = a[0]
        if lo != -INF:
            return int(lo)
        return int(hi) if hi != INF else 0

    def split(self, region: Any, cells: Sequence[Any]) -> list[tuple[Any, list[int]]]:
        cuts: set[Any] = set()
        for lo, hi in region:
            cuts.update((lo, hi + 1))
        clipped = [self.inter(c, region) for c in cells]
        for c in clipped:
            for lo, hi in c:
                cuts.update((lo, hi + 1))
        points = sorted(cuts)
        at = {p: i for i, p in enumerate(points)}
        cover: list[list[int]] = [[] for _ in points]
        for k, c in enumerate(clipped):
            for lo, hi in c:
                for s in range(at[lo], at[hi + 1]):
                    cover[s].append(k)
        inside = [False] * len(points)
        for lo, hi in region:
            for s in range(at[lo], at[hi + 1]):
                inside[s] = True
        groups: dict[tuple[int, ...], list[tuple[Any, Any]]] = {}
        for s in range(len(points) - 1):
            if inside[s]:
                groups.setdefault(tuple(cover[s]), []).append((points[s], points[s + 1] - 1))
        return [(_norm(parts), list(key)) for key, parts in groups.items()]

    def cell(self, a: Any) -> Any:
        if a == self.full:
            return "-"
        if len(a) == 1:
            lo, hi = a[0]
            if lo == hi:
                return int(lo)
            out: dict[str, int] = {}
            if lo != self.lo:
                out["at_least"] = int(lo)
            if hi != self.hi:
                out["at_most"] = int(hi)
            return out
        if all(lo == hi for lo, hi in a):
            return {"in": [int(lo) for lo, _ in a]}
        holes = self.complement(a)
        if all(lo == hi for lo, hi in holes):
            return {"not_in": [int(lo) for lo, _ in holes]}
        raise Unsupported("a set of several ranges has no single cell")

    def narrow(self, a: Any) -> Any:
        try:
            self.cell(a)
            return a
        except Unsupported:
            return a[:1]


class Opaque(Domain):
    """Values compared only for equality (text): finite sets and their complements."""

    def __init__(self, excluded: Iterable[Any] = ()):
        self.full = (True, frozenset(excluded))
        self.empty = (False, frozenset())

    def inter(self, a: Any, b: Any) -> Any:
        (na, va), (nb, vb) = a, b
        if na and nb:
            return (True, va | vb)
        if na:
            return (False, vb - va)
        if nb:
            return (False, va - vb)
        return (False, va & vb)

    def union(self, a: Any, b: Any) -> Any:
        (na, va), (nb, vb) = a, b
        if na and nb:
            return (True, va & vb)
        if na:
            return (True, va - vb)
        if nb:
            return (True, vb - va)
        return (False, va | vb)

    def complement(self, a: Any) -> Any:
        return self.inter(self.full, (not a[0], a[1]))

    def literal(self, value: Any) -> Any:
        return self.inter(self.full, (False, frozenset((value,))))

    def compare(self, op: str, value: Any) -> Any:
        raise Unsupported(f"`{op}` needs a number or a scale")

    def pick(self, a: Any) -> Any:
        negated, vals = a
        if not negated:
            return sorted(vals, key=repr)[0]
        n, name = 1, "other"
        while name in vals:
            n += 1
            name = f"other_{n}"
        return name

    def split(self, region: Any, cells: Sequence[Any]) -> list[tuple[Any, list[int]]]:
        negated, vals = region
        holders: dict[Any, list[int]] = {}
        others: list[int] = []
        mentioned = set(vals)
        for c in cells:
            mentioned |= c[1]
        for k, (cn, cv) in enumerate(cells):
            if cn:
                others.append(k)
            else:
                for v in cv:
                    holders.setdefault(v, []).append(k)
        for k, (cn, cv) in enumerate(cells):
            if cn:
                for v in mentioned - cv:
                    holders.setdefault(v, []).append(k)
        groups: dict[tuple[int, ...], set[Any]] = {}
        for v in mentioned:
            if (v in vals) != negated:
                groups.setdefault(tuple(sorted(holders.get(v, ()))), set()).add(v)
        out = [((False, frozenset(vs)), list(key)) for key, vs in groups.items()]
        if negated:
            out.append(((True, frozenset(mentioned)), others))
        return out

    def cell(self, a: Any) -> Any:
        negated, vals = a
        if a == self.full:
            return "-"
        shown = sorted(vals - self.full[1], key=repr) if negated else sorted(vals, key=repr)
        if negated:
            return {"is_not": shown[0]} if len(shown) == 1 else {"not_in": shown}
        return shown[0] if len(shown) == 1 else {"in": shown}

