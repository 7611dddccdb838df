"""The house: the tree shows the parts, imports point down only, and nothing imports in a cycle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

import dcml_bot

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(dcml_bot.__file__).resolve().parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

SHELL = {
    "__init__",
    "__main__",
    "app",
    "cli",
    "config",
    "server",
    "http_limits",
    "settings",
    "scheduler",
}
PARTS = {"catalog", "store", "core", "platforms"}


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter with the project's contracts on the package found in ``package_parent``."""
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(
        [str(LINT_IMPORTS), str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_top_level_is_the_shell_and_the_four_parts() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert modules == SHELL
    assert folders == PARTS


def test_the_import_contracts_hold() -> None:
    result = lint_imports(PACKAGE.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 6 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # An adapter reaching back into the root that builds it.
        ("platforms/slack/platform.py", "from dcml_bot.app import build_bot", "Layers"),
        # The core depending on the shell's settings.
        ("core/delivery.py", "from dcml_bot.settings import Settings", "Layers"),
        # The pure catalog opening a database.
        ("catalog/query.py", "import sqlalchemy", "The catalog is pure"),
        # The CLI wiring an adapter itself instead of asking the composition root.
        ("cli.py", "from dcml_bot.platforms import slack", "Only the composition root"),
        # One platform reaching into another instead of sharing through common/.
        ("platforms/local/web.py", "from dcml_bot.platforms.slack import blocks", "Platforms:"),
        ("platforms/feishu/cards.py", "from dcml_bot.platforms.slack import blocks", "Platforms:"),
        # The shared lifecycle depending on one platform.
        ("platforms/common/inbox.py", "from dcml_bot.platforms.feishu import joins", "Platforms:"),
        # The local lab loading a chat SDK.
        ("platforms/local/web.py", "import slack_sdk", "load no chat SDK"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    copy = tmp_path / "dcml_bot"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(
        target.read_text(encoding="utf-8").replace(
            "from __future__ import annotations\n",
            f"from __future__ import annotations\n\n{line}  # noqa\n",
            1,
        ),
        encoding="utf-8",
    )
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout


def test_no_module_imports_itself_through_others() -> None:
    graph = grimp.build_graph("dcml_bot", cache_dir=None)
    cycles = []
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            chain = graph.find_shortest_chain(importer=imported, imported=module)
            if chain is not None:
                cycles.append(" -> ".join((module, *chain)))
    assert cycles == []
