"""Layering rules of the package: which module may import which (DESIGN.md, "Layout")."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dynrep

PACKAGE = Path(dynrep.__file__).parent


def imports_of(path: Path) -> list[tuple[str, str]]:
    """``(module, name)`` for every ``from module import name`` in ``path`` (``name`` "" for ``import module``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names]
    return found


def modules(under: str) -> list[Path]:
    return sorted((PACKAGE / under).rglob("*.py"))


@pytest.mark.parametrize("path", modules("models"), ids=lambda p: p.name)
def test_models_do_not_import_training(path):
    # A model is trained; it does not train. Shared schedules live in dynrep.schedules.
    assert not [m for m, _ in imports_of(path) if m.startswith("dynrep.training")]


@pytest.mark.parametrize("path", [p for p in PACKAGE.rglob("*.py") if "envs" not in p.parts],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_argument_checks_come_from_the_neutral_module(path):
    # check_int / as_generator are used by every layer: they live in dynrep.checks, not in envs/base.py.
    wrong = [(m, n) for m, n in imports_of(path) if m.startswith("dynrep.envs") and n in ("check_int", "as_generator")]
    assert not wrong


def test_checks_and_schedules_modules_are_neutral():
    for name in ("checks.py", "schedules.py"):
        assert not [m for m, _ in imports_of(PACKAGE / name) if m.startswith("dynrep")]
