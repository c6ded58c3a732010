"""The HTTP decision service: a thin Flask shell around the engine and the store.

``create_app(config)`` builds it; docs/api.md describes the decision contract, ``api/openapi.yaml``
documents every route, ``api/errors.py`` is the one error table.

``create_app`` and ``DEFAULTS`` are imported on first use: the command line imports
``api.evidence`` for ``ordergate log`` and ``explain`` without paying for Flask.
"""
from __future__ import annotations

import typing as t

__all__ = ["DEFAULTS", "create_app"]

if t.TYPE_CHECKING:
    from api.app import DEFAULTS, create_app


def __getattr__(name: str) -> t.Any:
    if name in __all__:
        import importlib

        return getattr(importlib.import_module("api.app"), name)
    raise AttributeError(f"module 'api' has no attribute {name!r}")
