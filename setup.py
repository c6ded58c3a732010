"""Packages of the ordergate distribution (the rest of the metadata is in pyproject.toml).

The shipped policy set, rules/ with its YAML tests, is installed as the package data of
``ordergate_rules``, so that an installed ``ordergate`` finds it from any folder (cli/folders.py).

``engine._fastload`` (engine/_fastload.c) loads the common rule file in C against the system's
libyaml (Debian: libyaml-dev). It is optional: without a C compiler or libyaml's headers the build
only warns, and engine/load.py loads every file with its Python path.
"""
from setuptools import Extension, find_namespace_packages, setup

setup(
    packages=find_namespace_packages(include=["engine*", "api*", "connector*", "store*", "cli*"])
    + ["ordergate_rules", "ordergate_rules.tests"],
    package_dir={"ordergate_rules": "rules", "ordergate_rules.tests": "rules/tests"},
    ext_modules=[Extension("engine._fastload", ["engine/_fastload.c"], libraries=["yaml"], optional=True)],
)
