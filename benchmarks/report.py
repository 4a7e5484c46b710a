"""How every benchmark script hands over its figures: printed, and written as JSON for `run.py`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def report(document: Any, path: Path | None) -> None:
    text = json.dumps(document, indent=2)
    print(text)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
