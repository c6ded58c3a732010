"""Which rules folder a command works on: the same rule for every command.

``--rules DIR`` (or the DIRECTORY argument) when given; else ``./rules`` when the current folder
has one; else the policy set shipped with ordergate (package data when installed, ``rules/`` of
the checkout in a development install).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import click

HELP = "Rules folder (default: ./rules when the current folder has one, else the shipped policy set)."


def shipped_rules() -> Path:
    """The shipped policy set: the ``ordergate_rules`` package data, or the checkout's rules/."""
    spec = importlib.util.find_spec("ordergate_rules")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parent.parent / "rules"


def default_rules() -> Path:
    here = Path("rules")
    return here if here.is_dir() else shipped_rules()


def rules_folder(value: str | Path | None) -> Path:
    """The folder a command reads: ``value`` when given (it must be a folder), else the default."""
    if value is None:
        return default_rules()
    path = Path(value)
    if not path.is_dir():
        raise click.BadParameter(f"`{value}` is not a folder", param_hint="rules folder")
    return path
