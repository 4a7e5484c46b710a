"""Saying once per model that it has no price: a missing cost must be loud, but not once per call."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

MAX_REPORTED_MODELS: Final = 1000
"""Models beyond this many are not named one by one: their names could come from responses."""
REPEAT_AFTER_SECONDS: Final = 3600.0
"""A model still unpriced is named again after an hour, so that a long-running process says it."""


class UnpricedWarnings:
    """A WARNING on `logger` when a (provider, model, endpoint) has no price, at most once an hour
    each, for a bounded number of models, then one line saying that further ones are counted but not
    named."""

    def __init__(
        self,
        logger: logging.Logger,
        max_models: int = MAX_REPORTED_MODELS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._max_models = max_models
        self._clock = clock
        self._lock = threading.Lock()
        self._reported: dict[tuple[str, str, str | None], float] = {}
        self._silenced = False

    def warn(self, provider: str, model: str, consequence: str, endpoint: str | None = None) -> None:
        """`consequence`: what the missing price means where it was found, as a clause; `endpoint`:
        the host the call went to, when one is known."""
        key = (provider, model, endpoint)
        now = self._clock()
        last = self._reported.get(key)
        if last is not None and now - last < REPEAT_AFTER_SECONDS:
            return
        with self._lock:
            last = self._reported.get(key)
            if (last is not None and now - last < REPEAT_AFTER_SECONDS) or self._silenced:
                return
            if last is None and len(self._reported) >= self._max_models:
                self._silenced = True
                self._logger.warning(
                    "tokenbudget: %d models without a price were reported; further ones are not named",
                    self._max_models,
                )
                return
            self._reported[key] = now
        self._logger.warning(
            "tokenbudget: no price is known for model %r of provider %r%s; %s. Pass prices={%r: {...}}"
            " to price it",
            model,
            provider,
            f" at {endpoint}" if endpoint else "",
            consequence,
            model,
        )
