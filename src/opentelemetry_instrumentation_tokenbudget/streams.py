"""Proxies that watch a provider's stream as the user reads it, and end its call exactly once.

The user keeps the SDK's own stream object behind a transparent proxy (every other attribute passes
through). Each item goes to an observer first, which may ask to hide it: that is how the usage chunk
we asked OpenAI for is kept out of a stream whose owner never asked for it. The end is reached from
exhaustion, an error while reading, `close()`, the context manager's exit, or garbage collection of
an abandoned stream; whichever comes first ends the call, the others do nothing.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from ._proxy import ObjectProxy

_logger = logging.getLogger(__name__)


class StreamObserver(Protocol):
    def on_item(self, item: object) -> bool:
        """See one item; return True to hide it from the user."""
        ...

    def on_end(self, error: BaseException | None) -> None:
        """The stream is over: read to its end, closed, abandoned, or failed with `error`."""
        ...


class _ObservedStreamBase(ObjectProxy):
    def __init__(self, wrapped: Any, observer: StreamObserver) -> None:
        super().__init__(wrapped)
        self._self_observer = observer
        # Bound once: every item of a long stream passes here, and each attribute look-up through
        # the proxy costs a little.
        self._self_on_item = observer.on_item
        self._self_ended = False

    def _self_hides(self, item: object) -> bool:
        try:
            return self._self_on_item(item)
        except Exception:
            _logger.debug("tokenbudget: could not read a stream item", exc_info=True)
            return False

    def _self_end(self, error: BaseException | None) -> None:
        if self._self_ended:
            return
        self._self_ended = True
        try:
            self._self_observer.on_end(error)
        except Exception:
            _logger.debug("tokenbudget: could not end a stream's call", exc_info=True)

    def __del__(self) -> None:
        # An abandoned stream still ends its span and settles its budget reservation.
        self._self_end(None)


class ObservedStream(_ObservedStreamBase):
    def __init__(self, wrapped: Any, observer: StreamObserver) -> None:
        super().__init__(wrapped, observer)
        self._self_next = wrapped.__next__

    def __iter__(self) -> ObservedStream:
        return self

    def __next__(self) -> Any:
        next_item = self._self_next
        on_item = self._self_on_item
        while True:
            try:
                item = next_item()
            except StopIteration:
                self._self_end(None)
                raise
            except BaseException as error:
                self._self_end(error)
                raise
            # The observer inline rather than through _self_hides: this is the per-item path.
            try:
                if not on_item(item):
                    return item
            except Exception:
                _logger.debug("tokenbudget: could not read a stream item", exc_info=True)
                return item

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_end(None)

    def __enter__(self) -> ObservedStream:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, traceback)
        finally:
            # An exception in the user's own block is theirs, not the stream's: the call just ended early.
            self._self_end(None)


class ObservedAsyncStream(_ObservedStreamBase):
    def __init__(self, wrapped: Any, observer: StreamObserver) -> None:
        super().__init__(wrapped, observer)
        self._self_anext = wrapped.__anext__

    def __aiter__(self) -> ObservedAsyncStream:
        return self

    async def __anext__(self) -> Any:
        while True:
            try:
                item = await self._self_anext()
            except StopAsyncIteration:
                self._self_end(None)
                raise
            except BaseException as error:
                self._self_end(error)
                raise
            if not self._self_hides(item):
                return item

    async def close(self) -> None:
        try:
            await self.__wrapped__.close()
        finally:
            self._self_end(None)

    async def aclose(self) -> None:
        await self.close()

    async def __aenter__(self) -> ObservedAsyncStream:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, traceback: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, traceback)
        finally:
            self._self_end(None)
