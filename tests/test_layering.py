"""The packages' layering, read from the source (``ast``), no imports executed.

- ``ledger.log`` is a verifiable-log library of its own: it imports nothing of ``ledger``
  but itself and ``ledger.errors`` (so never ``ledger.fund``).
- Nothing under ``ledger/`` imports Flask or the outer packages (``api``, ``exports``,
  ``contracts``).
- Inside ``ledger/``, a module imports a name from the module that defines it, not from a
  package's facade (``ledger/log/__init__.py``, ``ledger/fund/__init__.py``).
- ``api``, ``exports`` and ``contracts`` use ``ledger`` only through its facades:
  ``ledger.log``, ``ledger.fund``, ``ledger.errors`` and ``ledger.migrate``.

Imports under ``if TYPE_CHECKING:`` count too; ``importlib`` calls are not seen.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
LEDGER = ROOT / "ledger"
LOG_MAY_IMPORT = ("ledger.log", "ledger.errors")
NOT_IN_LEDGER = ("flask", "api", "exports", "contracts")
OUTER_PACKAGES = ("api", "exports", "contracts")
FACADES = ("ledger.log", "ledger.fund", "ledger.errors", "ledger.migrate")


def _modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def _name(path: Path) -> str:
    """The dotted module name of ``path`` (a package's ``__init__.py`` is the package)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package(path: Path) -> str:
    """The package that relative imports in ``path`` start from."""
    name = _name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imports(path: Path) -> Iterator[tuple[int, str, str | None]]:
    """Every import in ``path``: (line, module imported from, name taken or None)."""
    return imports_in(path.read_text(), _package(path))


def imports_in(source: str, package: str) -> Iterator[tuple[int, str, str | None]]:
    """Every import in ``source``, a module of ``package``.

    ``import a.b`` gives ``("a.b", None)``; ``from a import b`` gives ``("a", "b")``;
    relative imports are resolved against ``package``.
    """
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, module] if module else base)
            for alias in node.names:
                yield node.lineno, module, alias.name


def _target(module: str, name: str | None) -> str:
    """The module an import reaches: ``from ledger import fund`` reaches ``ledger.fund``."""
    if name is not None and module in {"ledger", "ledger.log", "ledger.fund"}:
        candidate = f"{module}.{name}"
        folder = ROOT / Path(*candidate.split("."))
        if folder.is_dir() or folder.with_suffix(".py").is_file():
            return candidate
    return module


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def test_the_modules_are_found() -> None:
    names = {_name(path) for path in _modules(LEDGER)}
    assert {"ledger.log.append", "ledger.log.storage", "ledger.fund.views"} <= names
    for package in OUTER_PACKAGES:
        assert _modules(ROOT / package), package


def test_the_log_never_imports_the_fund() -> None:
    found = [
        f"{_where(path, line)} imports {_target(module, name)}"
        for path in _modules(LEDGER / "log")
        for line, module, name in imports(path)
        if _within(module, ("ledger",)) and not _within(_target(module, name), LOG_MAY_IMPORT)
    ]
    assert not found, "ledger.log imports only itself and ledger.errors:\n" + "\n".join(found)


def test_ledger_knows_nothing_of_the_web_exports_or_contracts() -> None:
    found = [
        f"{_where(path, line)} imports {module}"
        for path in _modules(LEDGER)
        for line, module, _ in imports(path)
        if _within(module, NOT_IN_LEDGER) or module.startswith("flask_")
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("facade", ["ledger.log", "ledger.fund"])
def test_ledger_imports_names_where_they_are_defined(facade: str) -> None:
    """A facade re-exports for other packages; inside ledger it would hide a module's real
    dependencies (and invite import cycles). Its own submodules may be imported from it."""
    facade_file = ROOT / Path(*facade.split(".")) / "__init__.py"
    found = [
        f"{_where(path, line)}: from {module} import {name}"
        for path in _modules(LEDGER)
        if path != facade_file
        for line, module, name in imports(path)
        if module == facade and _target(module, name) == module
    ]
    assert not found, "\n".join(found)


def exported(package: str) -> set[str]:
    """The names a package's facade lists in ``__all__``."""
    source = (ROOT / Path(*package.split(".")) / "__init__.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [
            "__all__"
        ]:
            return {ast.literal_eval(item) for item in getattr(node.value, "elts", ())}
    return set()


@pytest.mark.parametrize("package", OUTER_PACKAGES)
def test_outer_packages_use_ledger_through_its_facades(package: str) -> None:
    """``from ledger.log import X`` with X in ledger.log's ``__all__`` (and so for
    ledger.fund), anything of ledger.errors and ledger.migrate; no other module of ledger."""
    public = {facade: exported(facade) for facade in ("ledger.log", "ledger.fund")}
    found = []
    for path in _modules(ROOT / package):
        for line, module, name in imports(path):
            source = f"ledger.{name}" if module == "ledger" and name is not None else module
            if not _within(source, ("ledger",)):
                continue
            if source not in FACADES:
                found.append(f"{_where(path, line)} imports {source}")
            elif source in public and module == source and name not in public[source]:
                found.append(f"{_where(path, line)}: {name} is not in {source}.__all__")
    assert not found, f"{package}/ imports ledger only through {FACADES}:\n" + "\n".join(found)


def test_the_checks_see_what_they_look_for() -> None:
    """The parsing above finds each kind of import the tests must refuse."""
    source = (
        "from __future__ import annotations\n"
        "import flask\n"
        "from ledger import fund\n"
        "from ledger.fund.views import list_pools\n"
        "from ..fund import pool_views\n"
        "from . import merkle\n"
        "if TYPE_CHECKING:\n"
        "    from ledger.log import merkle, Log\n"
    )
    found = [(module, name) for _, module, name in imports_in(source, "ledger.log")]
    assert found == [
        ("__future__", "annotations"),
        ("flask", None),
        ("ledger", "fund"),
        ("ledger.fund.views", "list_pools"),
        ("ledger.fund", "pool_views"),
        ("ledger.log", "merkle"),
        ("ledger.log", "merkle"),
        ("ledger.log", "Log"),
    ]
    assert _package(LEDGER / "log" / "append.py") == "ledger.log"
    assert _package(LEDGER / "log" / "__init__.py") == "ledger.log"
    assert _target("ledger", "fund") == "ledger.fund"
    assert _target("ledger", "migrate") == "ledger.migrate"
    assert _target("ledger.log", "merkle") == "ledger.log.merkle"
    assert _target("ledger.log", "Log") == "ledger.log"
    assert _target("ledger.fund", "pool_views") == "ledger.fund.pool_views"
    assert {"Log", "merkle"} <= exported("ledger.log")
    assert {"Fund", "views"} <= exported("ledger.fund")
