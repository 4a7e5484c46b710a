"""Spend stores, chosen by URL: "memory", "sqlite:///relative.db", "sqlite:////abs/path.db",
"redis://host:port/db" (also "rediss://" and "unix://").

Each store module is imported only when its URL is opened, so that the Redis store's optional
dependency is needed only by those who use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from ..store import SpendStore

__all__ = ["open_store", "redact"]

_SQLITE_PREFIX = "sqlite:///"
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def open_store(url: str, **options: Any) -> SpendStore:
    """Open the store `url` names; `options` go to that store's constructor.

    memory: `clock`, `sweep_interval`. sqlite: `clock`, `busy_timeout`, `synchronous`,
    `sweep_interval`. redis: `prefix`, `socket_timeout`, `socket_connect_timeout`, and any option of
    `redis.Redis.from_url`.
    """
    if url in ("memory", "memory://"):
        from .memory import MemoryStore

        return MemoryStore(**options)
    if url.startswith(_SQLITE_PREFIX) and len(url) > len(_SQLITE_PREFIX):
        from .sqlite import SqliteStore

        # The third slash ends the empty host, as in SQLAlchemy URLs: a fourth starts an absolute path.
        return SqliteStore(url[len(_SQLITE_PREFIX) :], **options)
    if url.startswith(_REDIS_SCHEMES):
        from .redis import RedisStore

        return RedisStore.from_url(url, **options)
    raise ValueError(
        f"unknown spend store URL {redact(url)!r}: expected 'memory', 'sqlite:///relative.db',"
        " 'sqlite:////absolute/path.db', or a redis://, rediss:// or unix:// URL"
    )


def redact(url: str) -> str:
    """The URL without its password: store URLs land in error messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))
