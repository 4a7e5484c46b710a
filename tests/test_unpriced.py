from __future__ import annotations

import logging

import pytest

from opentelemetry_instrumentation_tokenbudget.unpriced import UnpricedWarnings


def test_each_model_is_named_once_up_to_the_bound(caplog: pytest.LogCaptureFixture) -> None:
    warnings = UnpricedWarnings(logging.getLogger("test.unpriced"), max_models=2)
    with caplog.at_level(logging.WARNING, logger="test.unpriced"):
        for model in ("a", "b", "a", "c", "d", "b"):
            warnings.warn("openai", model, "it costs nothing here")

    assert [r.getMessage() for r in caplog.records] == [
        "tokenbudget: no price is known for model 'a' of provider 'openai'; it costs nothing here."
        " Pass prices={'a': {...}} to price it",
        "tokenbudget: no price is known for model 'b' of provider 'openai'; it costs nothing here."
        " Pass prices={'b': {...}} to price it",
        "tokenbudget: 2 models without a price were reported; further ones are not named",
    ]
