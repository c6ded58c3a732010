"""ERP → CRM back-flow: durable_rules correlates ERP events per order; results go through the gate.

durable_rules is used only here, and only within limits found by trying it:

* the rules are declared in ``reactions.yaml``, read by the engine's loader, checked and compiled
  to its JSON ruleset API by :mod:`connector.reaction_rules` (the C parser's errors are opaque
  numbers);
* :class:`_Host` overrides ``Host._run`` so no dispatcher or timer thread ever starts;
* a :class:`ReactionEngine` belongs to the thread that created it and refuses calls from any
  other (it is not thread-safe); :class:`Correlator` owns one on its own thread, fed by a queue;
* one session (sid) per open order, ``delete_state`` when the order is done, at most
  ``max_sessions`` (< 1000, the C engine crashes past 1024) live at once, least recently used
  evicted: a session is a cache rebuilt from the order book, so eviction loses nothing;
* exceptions inside actions are stored by durable_rules in ``state['exception']`` and would be
  swallowed: they are raised as :class:`ReactionError` and the session is dropped.
"""
from __future__ import annotations

import contextlib
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from durable import engine as durable_engine

from .reaction_rules import DO, NOOP, ErpUpdate, Reactions, load_reactions

MAX_SESSIONS_LIMIT = 999          # durable_rules: 1024 live sids per ruleset, then MemoryError + segfault


class ReactionError(RuntimeError):
    """An action raised inside durable_rules (its traceback text is in the message)."""


class WrongThread(RuntimeError):
    """A ReactionEngine was called from a thread that does not own it."""


# --------------------------------------------------------------------------- the engine

class _Host(durable_engine.Host):  # type: ignore[misc]  # durable_rules is untyped
    """A durable_rules host with no background threads; actions record what they decided."""

    def __init__(self, sink: Callable[[str, str], None]) -> None:
        self._sink = sink
        super().__init__()

    def _run(self) -> None:  # the stock Host starts two perpetual timer threads here
        pass

    def get_action(self, action_name: str) -> Callable[[Any], None]:
        if action_name == NOOP:
            return lambda c: None

        def action(c: Any) -> None:
            self._sink(action_name, c.s.sid)
        return action


@dataclass
class OrderState:
    """What a session is rebuilt from: taken from the order book."""

    invoiced: bool
    lines: dict[int, dict[str, int]]     # line_no -> {ordered, shipped, invoiced}


class ReactionEngine:
    """The durable_rules ruleset and its per-order sessions, usable only from its owner thread."""

    def __init__(self, reactions: Reactions, load_order: Callable[[str], OrderState], *,
                 max_sessions: int = 256) -> None:
        if not 0 < max_sessions <= MAX_SESSIONS_LIMIT:
            raise ValueError(f"max_sessions must be 1..{MAX_SESSIONS_LIMIT} (durable_rules caps live sessions at 1024)")
        self._owner = threading.get_ident()
        self.reactions = reactions
        self.max_sessions = max_sessions
        self._load_order = load_order
        self._fired: list[tuple[str, str]] = []
        self._host = _Host(lambda action, sid: self._fired.append((action, sid)))
        self._host.set_rulesets(_deep_copy(reactions.ruleset))
        self._name = reactions.name
        self._sessions: OrderedDict[str, dict[str, Any]] = OrderedDict()   # sid -> {key: asserted fact}
        self._complete: set[str] = set()                        # sids whose order is fully invoiced
        self.rebuilds = 0
        self.evictions = 0

    # -- ownership -----------------------------------------------------------------------------
    def _check_thread(self) -> None:
        if threading.get_ident() != self._owner:
            raise WrongThread("ReactionEngine is owned by another thread (durable_rules is not thread-safe); "
                              "feed events through its Correlator")

    @property
    def live_sessions(self) -> list[str]:
        self._check_thread()
        return list(self._sessions)

    # -- sessions ------------------------------------------------------------------------------
    def _call(self, fn: Callable[..., Any], sid: str, message: dict[str, Any]) -> None:
        state = fn(self._name, message)
        if isinstance(state, dict) and state.get("exception"):
            self.drop(sid)
            raise ReactionError(f"reaction failed for order {sid}: {state['exception']}")

    def _assert(self, sid: str, key: str, fact: dict[str, Any]) -> None:
        facts = self._sessions[sid]
        old = facts.get(key)
        if old == fact:
            return
        if old is not None:
            self._call(self._host.retract_fact, sid, old)
            del facts[key]
        self._call(self._host.assert_fact, sid, fact)
        facts[key] = fact

    def _ensure(self, sid: str) -> None:
        if sid in self._sessions:
            self._sessions.move_to_end(sid)
            return
        while len(self._sessions) >= self.max_sessions:
            oldest = next(iter(self._sessions))
            self.drop(oldest)
            self.evictions += 1
        state = self._load_order(sid)
        self._sessions[sid] = {}
        self.rebuilds += 1
        try:
            self._assert(sid, "order", {"sid": sid, "kind": "order", "invoiced": bool(state.invoiced)})
            for line_no, q in sorted(state.lines.items()):
                self._assert(sid, f"line:{line_no}", self._line_fact(sid, line_no, q))
        except BaseException:
            self.drop(sid)
            raise
        # A rebuild only restores the cache: what it re-derives was applied before, except that a
        # completed correlation (an order already fully invoiced) must stay known for later events.
        if any(a == "mark_fully_invoiced" and s == sid for a, s in self._fired):
            self._complete.add(sid)
        self._fired.clear()

    @staticmethod
    def _line_fact(sid: str, line_no: int, q: dict[str, Any]) -> dict[str, Any]:
        return {"sid": sid, "kind": "line", "line_no": line_no,
                "open": int(q.get("invoiced", 0)) < int(q.get("ordered", 0)),
                "ordered": int(q.get("ordered", 0)), "invoiced": int(q.get("invoiced", 0))}

    def drop(self, sid: str) -> None:
        """Forget an order's session (done, evicted, or its state can no longer be trusted)."""
        self._check_thread()
        self._complete.discard(sid)
        if self._sessions.pop(sid, None) is not None:
            # durable_rules raises "error code 309" when it holds no state for the sid
            with contextlib.suppress(Exception):
                self._host.delete_state(self._name, sid)

    # -- events --------------------------------------------------------------------------------
    def process(self, event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """Correlate one ERP event; returns the actions that fired, each with the event."""
        self._check_thread()
        order = event.get("order")
        etype = event.get("type")
        if not isinstance(order, str) or not order:
            raise ValueError(f"ERP event without an order number: {event!r}")
        if etype not in self.reactions.events:
            raise ValueError(f"unknown ERP event type {etype!r} (known: {', '.join(self.reactions.events)})")
        fields = self.reactions.events[etype]
        missing = [f for f in fields if not isinstance(event.get(f), int) or isinstance(event.get(f), bool)]
        if missing:
            raise ValueError(f"ERP event {etype} needs integer {', '.join(missing)}: {event!r}")
        sid = order
        self._ensure(sid)
        self._fired.clear()
        message = {"sid": sid, "kind": "event", "type": etype, **{f: event[f] for f in fields}}
        self._call(self._host.post, sid, message)
        # then bring the persistent facts up to date (this may complete a correlation)
        facts = self._sessions[sid]
        if etype == "line_invoiced":
            key = f"line:{event['line_no']}"
            old = facts.get(key)
            if old is None:
                self.drop(sid)
                raise ValueError(f"order {order} has no line {event['line_no']}")
            self._assert(sid, key, self._line_fact(sid, event["line_no"],
                                                   {"ordered": old["ordered"], "invoiced": event["quantity"]}))
        elif etype == "order_invoiced":
            self._assert(sid, "order", {"sid": sid, "kind": "order", "invoiced": True})
        out, seen = [], set()
        for action, s in self._fired:       # $or / re-fires can repeat an action: dedupe
            if action == "mark_fully_invoiced" and s == sid:
                self._complete.add(sid)
            if s == sid and action not in seen:
                seen.add(action)
                out.append((action, dict(event)))
        self._fired.clear()
        return out

    def is_complete(self, sid: str) -> bool:
        """The order of this session is fully invoiced (correlated now or found so on rebuild)."""
        self._check_thread()
        return sid in self._complete

    def any_invoiced(self, sid: str) -> bool:
        self._check_thread()
        return any(f.get("invoiced", 0) > 0 for k, f in self._sessions.get(sid, {}).items() if k.startswith("line:"))


def _deep_copy(value: Any) -> Any:
    # durable_rules' Ruleset deletes 'run' from the definitions it is given
    import copy
    return copy.deepcopy(value)


# --------------------------------------------------------------------------- correlator

class Correlator:
    """Owns a ReactionEngine on one thread; ERP events go in through a queue and come out as
    ``opportunity.apply_erp_update`` mutations through the connector's gate.

    ``submit(event)`` returns a Future resolving to the :class:`~connector.gate.Applied` mutation
    (or ``None`` when nothing fired), or raising what the mutation raised (``PolicyDenied``, ...).
    """

    def __init__(self, connector: Any, *, user: str = "integration", max_sessions: int = 256,
                 reactions: Reactions | None = None) -> None:
        self.connector = connector
        self.user = user
        self._reactions = reactions or load_reactions()
        system, action = self._reactions.apply
        target = connector.systems[system]
        self._apply: Callable[..., Any] = getattr(target, target.operations[action])   # the file's `apply`
        self._max_sessions = max_sessions
        self._queue: queue.Queue[Any] = queue.Queue()
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.engine: ReactionEngine | None = None
        self._thread = threading.Thread(target=self._run, name="ordergate-correlator", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    # -- public --------------------------------------------------------------------------------
    def submit(self, event: dict[str, Any]) -> Future[Any]:
        fut: Future[Any] = Future()
        self._queue.put((event, fut))
        return fut

    def process(self, event: dict[str, Any], timeout: float = 30.0) -> Any:
        return self.submit(event).result(timeout)

    def call(self, fn: Callable[[ReactionEngine], Any], timeout: float = 30.0) -> Any:
        """Run ``fn(engine)`` on the owner thread (inspection in tests and tools)."""
        fut: Future[Any] = Future()
        self._queue.put((fn, fut))
        return fut.result(timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(10)

    def __enter__(self) -> Correlator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- owner thread --------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self.engine = ReactionEngine(self._reactions, self._load_order, max_sessions=self._max_sessions)
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        while True:
            item = self._queue.get()
            if item is None:
                return
            work, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                result = work(self.engine) if callable(work) else self._handle(work)
            except BaseException as exc:
                fut.set_exception(exc)
            else:
                fut.set_result(result)

    def _load_order(self, number: str) -> OrderState:
        import sqlalchemy as sa

        from .orders import SalesOrder
        with self.connector.book.session() as s:
            order = s.scalar(sa.select(SalesOrder).where(SalesOrder.number == number))
            if order is None:
                raise LookupError(f"ERP event for unknown order {number!r}")
            return OrderState(order.erp_invoiced, {
                ln.line_no: {"ordered": ln.quantity, "shipped": ln.shipped_quantity, "invoiced": ln.invoiced_quantity}
                for ln in order.lines})

    def _handle(self, event: dict[str, Any]) -> Any:
        engine = self.engine
        assert engine is not None
        fired = engine.process(event)
        if not fired:
            return None
        order = event["order"]
        update = ErpUpdate()
        for action, ev in fired:
            DO[action](update, ev)
        if update.invoice_status is None:
            if engine.is_complete(order):       # a late event for an order already fully invoiced
                update.invoice_status = "fully_invoiced"
            else:
                update.invoice_status = "partially_invoiced" if engine.any_invoiced(order) else "not_invoiced"
        try:
            applied = self._apply(order, user=self.user, lines=update.lines, order_invoiced=update.order_invoiced,
                                  invoice_status=update.invoice_status)
        except BaseException:
            engine.drop(order)      # the order book did not change: the cache must be rebuilt from it
            raise
        if update.invoice_status == "fully_invoiced":
            engine.drop(order)      # the order is done
        return applied
