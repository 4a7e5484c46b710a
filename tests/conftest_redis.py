"""Fixtures for tests that need a real Redis; import them into a test module (or the root conftest).

Without redis-server the tests that use them fail with a message saying how to install it, because a
skipped Redis suite looks green while testing nothing; TOKENBUDGET_SKIP_REDIS=1 turns the failure into
a skip for machines that cannot have it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
import redis

from tests.redis_server import (
    RedisServer,
    RedisServerUnavailableError,
    redis_server_binary,
    running_redis_server,
    skip_redis_requested,
)


def _require_redis_server() -> None:
    if skip_redis_requested():
        pytest.skip("TOKENBUDGET_SKIP_REDIS=1")
    try:
        redis_server_binary()
    except RedisServerUnavailableError as exc:
        problem = str(exc)
    else:
        return
    pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One server for the session; `redis_url` empties it before each test."""
    _require_redis_server()
    with running_redis_server() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushall()
        yield redis_server.url
    finally:
        client.close()


@pytest.fixture
def redis_server_factory() -> Callable[[], AbstractContextManager[RedisServer]]:
    """For a test that stops or freezes its own server: `with redis_server_factory() as server:`."""
    _require_redis_server()
    return running_redis_server
