"""The workbench: server-rendered pages at /ui for auditors and analysts (read-only, role ``audit``).

``core`` holds the blueprint, sign-in, the session cookie, CSRF and ``requires_role``; each
``page_*.py`` module adds its pages to the blueprint and is imported here, so a new page is a new
module and a template, with no list to edit.
"""
from __future__ import annotations

import importlib
import pkgutil

from api.workbench.core import bp, init_app, requires_role

for _module in pkgutil.iter_modules(__path__):
    if _module.name.startswith("page_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["bp", "init_app", "requires_role"]
