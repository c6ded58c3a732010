"""Packages of the ordergate distribution (the rest of the metadata is in pyproject.toml).

The shipped policy set, rules/ with its YAML tests, is installed as the package data of
``ordergate_rules``, so that an installed ``ordergate`` finds it from any folder (cli/folders.py).
"""
from setuptools import find_namespace_packages, setup

setup(
    packages=find_namespace_packages(include=["engine*", "api*", "connector*", "store*", "cli*"])
    + ["ordergate_rules", "ordergate_rules.tests"],
    package_dir={"ordergate_rules": "rules", "ordergate_rules.tests": "rules/tests"},
)
