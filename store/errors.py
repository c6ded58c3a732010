"""Exceptions raised by the store. Every one of them is a ``StoreError``."""
from __future__ import annotations

from typing import Any


class StoreError(Exception):
    """The store could not do what was asked; nothing was changed."""


class InvalidInput(StoreError, ValueError):
    """The caller passed something the store refuses (a malformed record, an empty author, ...)."""


class RecordRefused(StoreError):
    """The database refused the content of a write (a data or integrity error), as opposed to not
    answering: retrying the same rows cannot succeed, so the decision log writer isolates them."""


class VersionNotFound(StoreError, LookupError):
    """No stored policy version has this id."""

    def __init__(self, version_id: str, message: str | None = None):
        self.version_id = version_id
        super().__init__(message or f"no policy version {version_id!r}")


class PublishRejected(StoreError):
    """The candidate did not compile, or its YAML tests failed or left rules uncovered.

    ``errors``: ``[{code, message, location, help}]`` (``PolicyError.to_dict()``), sorted as the
    engine sorts them; ``test_failures``: one dict per failing test (``kind: "failed"``) and one per
    rule that no test makes fire (``kind: "uncovered"``). Nothing was written.
    """

    def __init__(self, errors: list[dict[str, Any]] | None = None,
                 test_failures: list[dict[str, Any]] | None = None):
        self.errors = list(errors or [])
        self.test_failures = list(test_failures or [])
        parts = []
        if self.errors:
            parts.append(f"{len(self.errors)} error(s)")
        failed = sum(1 for t in self.test_failures if t.get("kind") == "failed")
        uncovered = sum(1 for t in self.test_failures if t.get("kind") == "uncovered")
        if failed:
            parts.append(f"{failed} failing test(s)")
        if uncovered:
            parts.append(f"{uncovered} uncovered rule(s)")
        super().__init__("publish rejected: " + (", ".join(parts) or "no reason given"))

    @property
    def uncovered(self) -> list[str]:
        return [t["rule"] for t in self.test_failures if t.get("kind") == "uncovered"]

    def to_dict(self) -> dict[str, Any]:
        return {"errors": self.errors, "test_failures": self.test_failures}

    def lines(self, root: str = "") -> list[str]:
        """The rejection as text, one problem a line (``root``: the folder, ending in ``/``, that
        locations are relative to): ``file:line:column: code: message`` and its ``help``, each
        failing test with its problems, each uncovered rule."""
        out: list[str] = []
        for err in self.errors:
            out.append(f"{self._where(root, err.get('location'))}: {err['code']}: {err['message']}")
            if err.get("help"):
                out.append(f"    help: {err['help']}")
        for failure in self.test_failures:
            if failure.get("kind") == "uncovered":
                out.append(f"{root}tests: uncovered_rule: {failure['message']}")
            else:
                out.append(f"{self._where(root, failure.get('location'))}: test_failed: {failure['name']}")
                out += [f"    {problem}" for problem in failure.get("problems", [])]
        return out

    @staticmethod
    def _where(root: str, location: str | None) -> str:
        return f"{root}{location}" if location else (root.rstrip("/") or "-")
