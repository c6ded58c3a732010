"""The ``ordergate`` command line.

Each area registers its commands in its own module (``cli/<area>.py``) and is
listed once in ``_COMMAND_MODULES``; this module only assembles the group.
"""
from __future__ import annotations

import importlib

import click

_COMMAND_MODULES = ("cli.policy", "cli.store_commands", "cli.serve", "cli.demo", "cli.evidence", "cli.catalogue",
                    "cli.tables", "cli.completion")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ordergate")
def main() -> None:
    """ordergate: policy decisions for CRM to ERP order-to-cash integration."""


for _name in _COMMAND_MODULES:
    importlib.import_module(_name).register(main)
