"""Process-local counters rendered in the Prometheus text format (version 0.0.4).

Each server process (gunicorn worker) keeps its own counters; Prometheus sums them when every
worker is scraped, and a scrape through a load balancer sees one worker (docs/api.md says so).
No client library: the few series here do not justify one.
"""
from __future__ import annotations

import bisect
import threading
import typing as t

#: latency buckets in seconds (decision handling inside the process, parse to response)
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._decisions: dict[tuple[str, str], int] = {}
        self._bad_requests: dict[str, int] = {}
        self._fail_closed = 0
        self._reloads = 0
        self._reload_failures = 0
        self._bucket_counts = [0] * (len(BUCKETS) + 1)
        self._latency_sum = 0.0
        self._latency_count = 0

    def decision(self, allow: bool, error: str | None) -> None:
        self.decisions(((allow, error),))

    def decisions(self, outcomes: t.Iterable[tuple[bool, str | None]]) -> None:
        """Count decisions answered ``(allow, error code)``: a batch's under one lock (taken once per
        item, 32 threads of a worker queued on it behind the GIL)."""
        counts = self._decisions
        with self._lock:
            for allow, error in outcomes:
                key = ("true" if allow else "false", error or "")
                counts[key] = counts.get(key, 0) + 1
                if error == "decision_log_unavailable":
                    self._fail_closed += 1

    def bad_request(self, reason: str) -> None:
        with self._lock:
            self._bad_requests[reason] = self._bad_requests.get(reason, 0) + 1

    def latency(self, seconds: float, count: int = 1) -> None:
        """One observation per request (a batch of ``count`` decisions is one request)."""
        index = bisect.bisect_left(BUCKETS, seconds)
        with self._lock:
            self._bucket_counts[index] += 1
            self._latency_sum += seconds
            self._latency_count += 1

    def reload(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self._reloads += 1
            else:
                self._reload_failures += 1

    def decisions_total(self) -> int:
        with self._lock:
            return sum(self._decisions.values())

    def render(self, *, active_version: str | None, log_stats: t.Mapping[str, t.Any] | None, on_full: str) -> str:
        with self._lock:
            decisions = dict(self._decisions)
            bad = dict(self._bad_requests)
            buckets = list(self._bucket_counts)
            total_sum, total_count = self._latency_sum, self._latency_count
            fail_closed, reloads, reload_failures = self._fail_closed, self._reloads, self._reload_failures
        lines: list[str] = []
        add = lines.append
        add("# HELP ordergate_decisions_total Decisions answered, by allow and error code.")
        add("# TYPE ordergate_decisions_total counter")
        for (allow, error), value in sorted(decisions.items()):
            add(f'ordergate_decisions_total{{allow="{allow}",error="{error}"}} {value}')
        add("# HELP ordergate_bad_requests_total Malformed requests refused (400/413), by reason.")
        add("# TYPE ordergate_bad_requests_total counter")
        for reason, value in sorted(bad.items()):
            add(f'ordergate_bad_requests_total{{reason="{reason}"}} {value}')
        add("# HELP ordergate_decision_request_seconds Time to answer a decision request (single or batch).")
        add("# TYPE ordergate_decision_request_seconds histogram")
        cumulative = 0
        for bound, count in zip(BUCKETS, buckets, strict=False):
            cumulative += count
            add(f'ordergate_decision_request_seconds_bucket{{le="{bound}"}} {cumulative}')
        cumulative += buckets[-1]
        add(f'ordergate_decision_request_seconds_bucket{{le="+Inf"}} {cumulative}')
        add(f"ordergate_decision_request_seconds_sum {total_sum:.9f}")
        add(f"ordergate_decision_request_seconds_count {total_count}")
        add("# HELP ordergate_active_policy_version The policy version this process answers with.")
        add("# TYPE ordergate_active_policy_version gauge")
        if active_version:
            add(f'ordergate_active_policy_version{{version="{active_version}"}} 1')
        add("# HELP ordergate_policy_reloads_total Activations picked up (ok) or failed to load.")
        add("# TYPE ordergate_policy_reloads_total counter")
        add(f'ordergate_policy_reloads_total{{result="ok"}} {reloads}')
        add(f'ordergate_policy_reloads_total{{result="failed"}} {reload_failures}')
        stats = dict(log_stats or {})
        counters = (
            ("written", "Decisions written to the log."),
            ("failed", "Decisions whose log transaction failed or did not commit in time (answered fail closed)."),
            ("failed_batches", "Log transactions that failed."),
            ("rejected", "Decisions refused because the log queue was full or closing (answered fail closed)."),
            ("set_aside", "Decisions the database refused for their content, set aside so the rest is written."),
            ("dropped", "Decisions answered but never written (async durability only: set aside, or "
                        "unwritten at shutdown)."),
        )
        for key, text in counters:
            name = "ordergate_decision_log_" + key + "_total"
            add(f"# HELP {name} {text}")
            add(f"# TYPE {name} counter")
            add(f"{name} {int(stats.get(key, 0) or 0)}")
        gauges = (
            ("queue_depth", "queued", "Decisions waiting to be written to the log."),
            ("queue_bytes", "queued_bytes", "Bytes of decision records waiting to be written (or being written)."),
            ("queue_max_bytes", "max_queue_bytes",
             "The bound of queue_bytes: beyond it decisions block or fail closed."),
            ("at_risk", "at_risk", "Decisions answered but not yet committed (async durability; 0 with commit)."),
        )
        for name, key, text in gauges:
            add(f"# HELP ordergate_decision_log_{name} {text}")
            add(f"# TYPE ordergate_decision_log_{name} gauge")
            add(f"ordergate_decision_log_{name} {int(stats.get(key, 0) or 0)}")
        add("# HELP ordergate_decision_log_healthy 1 when the decision log writer is healthy.")
        add("# TYPE ordergate_decision_log_healthy gauge")
        add(f"ordergate_decision_log_healthy {1 if stats.get('healthy') else 0}")
        add("# HELP ordergate_decision_log_fail_closed_total Decisions answered fail closed because the log "
            "refused them.")
        add("# TYPE ordergate_decision_log_fail_closed_total counter")
        add(f"ordergate_decision_log_fail_closed_total {fail_closed}")
        add("# HELP ordergate_decision_log_on_full Configured behaviour when the log cannot keep up.")
        add("# TYPE ordergate_decision_log_on_full gauge")
        add(f'ordergate_decision_log_on_full{{mode="{on_full}"}} 1')
        add("# HELP ordergate_decision_log_durability Configured durability: commit (answered after the "
            "commit) or async.")
        add("# TYPE ordergate_decision_log_durability gauge")
        add(f'ordergate_decision_log_durability{{mode="{stats.get("durability", "commit")}"}} 1')
        return "\n".join(lines) + "\n"
