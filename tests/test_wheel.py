"""What the built wheel carries: the package's modules and the fake provider, nothing only the tests read."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

# In the dev extra; a .venv made before it was added lacks it until `./run tests` reinstalls.
WheelBuilder = pytest.importorskip("hatchling.builders.wheel").WheelBuilder

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "opentelemetry_instrumentation_tokenbudget"


def _tracked_package_files() -> set[str]:
    listed = subprocess.run(
        ["git", "ls-files", f"src/{PACKAGE}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return {path.removeprefix("src/") for path in listed}


def test_the_wheel_holds_the_packages_files_and_nothing_else(tmp_path: Path) -> None:
    (wheel,) = (
        Path(built) for built in WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])
    )
    names = set(zipfile.ZipFile(wheel).namelist())
    metadata = {name for name in names if ".dist-info/" in name}
    assert {name.rsplit("/", 1)[1] for name in metadata} == {
        "METADATA",
        "WHEEL",
        "RECORD",
        "entry_points.txt",
    }
    assert names - metadata == _tracked_package_files()
    # The generated registry is read by the tests only, from the repository.
    assert not any("semconv_registry" in name for name in names)
    assert f"{PACKAGE}/py.typed" in names
    assert f"{PACKAGE}/testing/fake_provider.py" in names
    assert not any(name.startswith(("tests/", "benchmarks/", "semconv/")) for name in names)


def test_the_fake_provider_imports_only_what_is_declared() -> None:
    """`testing/` is public: what it imports beyond the standard library and the core dependencies is
    the `testing` extra."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["optional-dependencies"]["testing"] == ["httpx2>=2,<3"]
    imported: set[str] = set()
    for path in (ROOT / "src" / PACKAGE / "testing").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    assert imported - sys.stdlib_module_names - {"__future__", "opentelemetry"} == {"httpx2"}
