"""One test harness: the fakes live in tests/fakes/ and tests/support.py, and no test module or
bench imports a test module (``test_*``) to borrow its helpers."""

from __future__ import annotations

import ast
from pathlib import Path

import httpx
import pytest

from fakes.slack import FakeSlack

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*(ROOT / "tests").glob("test_*.py"), *(ROOT / "bench").glob("*.py")])


def imported_test_modules(source: str) -> list[str]:
    """The ``test_*`` modules a source imports, anywhere in it (in functions too), as written."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            # ``from . import test_x`` / ``from tests import test_x`` name the module in an alias.
            names = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found += [n for n in names if any(p.startswith("test_") for p in n.split("."))]
    return sorted(set(found))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_module_imports_a_test_module(path: Path) -> None:
    assert imported_test_modules(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    "source",
    [
        "from test_slack import FakeSlack",
        "import test_feishu",
        "from tests.test_digest import GUIDE",
        "from . import test_browser",
        "from tests import test_shutdown as shutdown",
        "def f():\n    from test_slack_blocks import synthetic_guide\n",
    ],
)
def test_the_check_finds_each_way_of_importing_a_test_module(source: str) -> None:
    assert imported_test_modules(source) != []


def test_the_check_passes_the_harness_imports() -> None:
    source = "from fakes.slack import FakeSlack\nfrom support import Clock\nimport pytest\n"
    assert imported_test_modules(source) == []
    assert len(SOURCES) > 40  # it reads the tree it means to


def test_a_fake_starts_and_stops_in_a_with_block_and_its_hits_can_be_waited_for() -> None:
    with FakeSlack() as fake:
        assert not fake.wait_hits("/api/auth.test", 1, timeout=0.05)
        answer = httpx.post(fake.base + "/api/auth.test", timeout=5).json()
        assert answer["ok"] and answer["user_id"] == "U0BOT"
        assert fake.wait_hits("/api/auth.test", 1, timeout=5)
        assert len(fake.requests("/api/auth.test")) == 1
    with pytest.raises(httpx.TransportError):
        httpx.post(fake.base + "/api/auth.test", timeout=2)
