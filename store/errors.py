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
