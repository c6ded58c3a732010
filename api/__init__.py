"""The HTTP decision service: a thin Flask shell around the engine and the store.

``create_app(config)`` builds it; ``spec/http.md`` is the decision contract, ``api/openapi.yaml``
documents every route, ``api/errors.py`` is the one error table.
"""
from api.app import DEFAULTS, create_app

__all__ = ["DEFAULTS", "create_app"]
