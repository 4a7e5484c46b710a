"""The one base of every proxy that watches what an SDK call returned: a stream, a stream manager, a
raw HTTP response. Each has three hooks -- an item passed, the thing ended, the thing failed -- and
one ending, reached exactly once from whichever comes first: exhaustion, an error, `close()`, a
context manager's exit, or garbage collection of an abandoned object.

The proxies are transparent (every attribute they do not define passes to the SDK's object) and keep
their own state in `_self_*` attributes, which wrapt keeps off the wrapped object.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

import wrapt

if TYPE_CHECKING:
    # wrapt 2 ships type hints and a generic ObjectProxy, wrapt 1 neither, and subscripting wrapt 1's
    # class would fail at import.
    ObjectProxy = wrapt.ObjectProxy[Any]
else:
    ObjectProxy = wrapt.ObjectProxy

_logger = logging.getLogger(__name__)


class ProxyHooks(Protocol):
    """What a proxy does at its three moments; filled in per kind of proxy (and, through the
    adapter's accumulator, per provider)."""

    def on_item(self, item: object) -> bool:
        """See one item; return True to hide it from the user."""
        ...

    def on_end(self) -> None:
        """Read to its end, closed, exited, or abandoned."""
        ...

    def on_failure(self, error: BaseException) -> None:
        """Failed with `error` (the provider's, passed on to the user unchanged)."""
        ...


class Ending:
    """Runs the end or failure hook once, whoever gets there first; an error in it is logged.

    A stream's item generator holds it besides the proxy (`for` keeps only the generator once `iter()`
    has returned it), so it goes, and ends an abandoned stream, when the last of them goes. Nothing it
    holds refers back to them: a cycle would delay that moment until the cyclic collector runs."""

    __slots__ = ("_done", "_hooks")

    def __init__(self, hooks: ProxyHooks) -> None:
        self._hooks = hooks
        self._done = False

    def __del__(self) -> None:
        # An abandoned stream still ends its span and settles its budget reservation.
        self(None)

    def __call__(self, error: BaseException | None = None) -> None:
        if self._done:
            return
        self._done = True
        try:
            if error is None:
                self._hooks.on_end()
            else:
                self._hooks.on_failure(error)
        except Exception:
            _logger.debug("tokenbudget: could not end a call", exc_info=True)

    def hand_over(self) -> None:
        """Something else now ends the call (a raw response's parsed stream): never run the hooks."""
        self._done = True


class ObservedProxy(ObjectProxy):
    """Sync proxies: `close()` and the context manager's exit end the call."""

    def __init__(self, wrapped: Any, hooks: ProxyHooks) -> None:
        super().__init__(wrapped)
        self._self_end = Ending(hooks)

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_end()

    def __enter__(self) -> Any:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, traceback)
        finally:
            # An exception in the user's own block is theirs, not the provider's: the call just ended early.
            self._self_end()


class ObservedAsyncProxy(ObjectProxy):
    """Async proxies: `close()`, `aclose()` and the async context manager's exit end the call."""

    def __init__(self, wrapped: Any, hooks: ProxyHooks) -> None:
        super().__init__(wrapped)
        self._self_end = Ending(hooks)

    async def close(self) -> None:
        try:
            wrapped = self.__wrapped__
            # Async generators (google-genai's streams) have aclose() and no close().
            await (wrapped.close() if hasattr(wrapped, "close") else wrapped.aclose())
        finally:
            self._self_end()

    async def aclose(self) -> None:
        await self.close()

    async def __aenter__(self) -> Any:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, traceback)
        finally:
            self._self_end()
