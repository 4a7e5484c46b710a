"""The proxy base class for wrapt 1 and 2 alike: wrapt 2 ships type hints and a generic ObjectProxy,
wrapt 1 neither, and subscripting wrapt 1's class would fail at import."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import wrapt

if TYPE_CHECKING:
    ObjectProxy = wrapt.ObjectProxy[Any]
else:
    ObjectProxy = wrapt.ObjectProxy
