"""Moved to :mod:`fastgate.session.cache`; this name stays only while the last
importers move."""

from fastgate.session.cache import CachedSession, SessionCache  # noqa: F401
from fastgate.storage.base import run_now  # noqa: F401
