"""Saying once per model that it has no price: a missing cost must be loud, but not once per call."""

from __future__ import annotations

import logging
import threading
from typing import Final

MAX_REPORTED_MODELS: Final = 1000
"""Models beyond this many are not named one by one: their names could come from responses."""


class UnpricedWarnings:
    """A WARNING on `logger` the first time each (provider, model) has no price, for a bounded number
    of models, then one line saying that further ones are counted but not named."""

    def __init__(self, logger: logging.Logger, max_models: int = MAX_REPORTED_MODELS) -> None:
        self._logger = logger
        self._max_models = max_models
        self._lock = threading.Lock()
        self._reported: set[tuple[str, str]] = set()
        self._silenced = False

    def warn(self, provider: str, model: str, consequence: str) -> None:
        """`consequence`: what the missing price means where it was found, as a clause."""
        key = (provider, model)
        if key in self._reported:
            return
        with self._lock:
            if key in self._reported or self._silenced:
                return
            if len(self._reported) >= self._max_models:
                self._silenced = True
                self._logger.warning(
                    "tokenbudget: %d models without a price were reported; further ones are not named",
                    self._max_models,
                )
                return
            self._reported.add(key)
        self._logger.warning(
            "tokenbudget: no price is known for model %r of provider %r; %s. Pass prices={%r: {...}}"
            " to price it",
            model,
            provider,
            consequence,
            model,
        )
