"""Persistence of ordergate: policy versions, activations and the tamper-evident decision log.

SQLite by default, PostgreSQL by URL; nothing outside this package knows which database it is.
"""
from .core import ChainReport, Store, Version, default_database_url
from .decision_log import DecisionLogWriter
from .errors import InvalidInput, PublishRejected, RecordRefused, StoreError, VersionNotFound

InvalidRecord = InvalidInput

__all__ = [
    "ChainReport", "DecisionLogWriter", "InvalidInput", "InvalidRecord", "PublishRejected", "RecordRefused",
    "Store",
    "StoreError", "Version", "VersionNotFound", "default_database_url",
]
