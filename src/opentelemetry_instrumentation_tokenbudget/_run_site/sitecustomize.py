"""Imported at start-up by every Python process that ``tokenbudget run`` starts (its directory is on
``PYTHONPATH``): the program's own ``sitecustomize``, if one is shadowed, still runs, then the
instrumentation is turned on (`cost_gate.start`)."""

import importlib
import logging
import os
import sys


def _chain() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    shadowed = [entry for entry in sys.path if os.path.abspath(entry or ".") == here]
    for entry in shadowed:
        sys.path.remove(entry)
    this = sys.modules.pop("sitecustomize", None)
    try:
        importlib.import_module("sitecustomize")
    except Exception:  # absent, or failing: neither is ours to raise
        logging.getLogger("opentelemetry_instrumentation_tokenbudget").debug(
            "tokenbudget run: no other sitecustomize ran", exc_info=True
        )
    finally:
        # Left off sys.path: the program sees the path it would have had without us.
        if this is not None:
            sys.modules["sitecustomize"] = this


def _start() -> None:
    try:
        from opentelemetry_instrumentation_tokenbudget.cost_gate import start
    except ImportError:  # a Python without the package: the program runs as it is
        return
    start()


_chain()
_start()
