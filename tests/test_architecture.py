"""The core's import contract, read from the source (an ``ast`` walk, nothing imported).

* Layers: a module imports only modules of its own layer or of lower ones (the order is
  :data:`LAYERS`, drawn in ``docs/ARCHITECTURE.md``). ``Curation`` therefore never
  imports ``io`` (exports live in ``io``; callers call them).
* ``curalog`` never imports ``curalog_tui``, except ``curalog/cli/ui.py``, the one thin UI
  entry (the ``tui`` and ``serve`` commands).
* No import cycles among curalog modules: what runs (module level and inside functions).

Every import counts for the layers: module level, inside functions, under
``TYPE_CHECKING``. Imports under ``if TYPE_CHECKING:`` run only in the type checker, so they
cannot form a cycle at run time and are left out of the cycle check (a module may name a
type of a module that imports it). The terminal UI's own rules are in
``tests/test_architecture_tui.py``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "curalog"

#: Lowest first. A module belongs to the first entry one of whose prefixes names it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("curalog.errors", "curalog.atomic", "curalog._version")),
    ("data", ("curalog.events", "curalog.dataset", "curalog.templates", "curalog.recording")),
    ("model", ("curalog.clustering", "curalog.labels", "curalog.store", "curalog.waveforms")),
    ("session", ("curalog.binding", "curalog.replaying", "curalog.snapshot", "curalog.curation")),
    ("analysis", ("curalog.analysis",)),
    ("history", ("curalog.history",)),
    ("io", ("curalog.io",)),
    ("tools", ("curalog.synth", "curalog.warmup")),
    ("cli", ("curalog.cli", "curalog.__main__")),
]
#: The package face ``curalog`` re-exports the session: it sits with it.
FACE_LAYER = "session"
#: The one curalog module that may import the terminal UI.
UI_ENTRY = "curalog.cli.ui"


@dataclass(frozen=True)
class Import:
    importer: str
    target: str  # dotted module (a curalog module, or anything else as written)
    line: int
    typing_only: bool = False  # under ``if TYPE_CHECKING:``


def module_name(path: Path) -> str:
    parts = ["curalog", *path.relative_to(PKG).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {
    module_name(p): p for p in sorted(PKG.rglob("*.py")) if "__pycache__" not in p.parts
}


def _resolve(name: str) -> str:
    """The curalog module an import of ``name`` loads last (the longest existing prefix)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports_of(module: str) -> list[Import]:
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: list[Import] = []
    typing_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If)
        and (
            (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
            or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")
        )
        for stmt in node.body
        for inner in ast.walk(stmt)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name
                if target.split(".")[0] == "curalog":
                    target = _resolve(target)
                out.append(Import(module, target, node.lineno, id(node) in typing_only))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            if source.split(".")[0] != "curalog":
                out.append(Import(module, source, node.lineno, id(node) in typing_only))
                continue
            for alias in node.names:
                full = f"{source}.{alias.name}"
                target = full if full in MODULES else _resolve(source)
                out.append(Import(module, target, node.lineno, id(node) in typing_only))
    return out


ALL_IMPORTS = {m: imports_of(m) for m in MODULES}


def layer_of(module: str) -> int:
    if module == "curalog":
        return [name for name, _ in LAYERS].index(FACE_LAYER)
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and docs/ARCHITECTURE.md)")


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def test_the_walk_sees_function_level_imports() -> None:
    """The contract would be hollow if imports inside functions were missed."""
    tree = ast.parse("def f():\n    from curalog.io.phy import export_phy\n")
    assert any(isinstance(n, ast.ImportFrom) for n in ast.walk(tree))
    found = [i for imports in ALL_IMPORTS.values() for i in imports]
    assert len(found) > 100


@pytest.mark.parametrize("module", sorted(MODULES))
def test_lower_layers_never_import_upper_ones(module: str) -> None:
    mine = layer_of(module)
    bad = [
        f"{i.importer}:{i.line} imports {i.target} ({LAYERS[layer_of(i.target)][0]} layer)"
        for i in ALL_IMPORTS[module]
        if i.target.split(".")[0] == "curalog" and layer_of(i.target) > mine
    ]
    assert not bad, f"{module} is in the {LAYERS[mine][0]} layer: " + "; ".join(bad)


def test_curation_never_imports_io() -> None:
    targets = {i.target for i in ALL_IMPORTS["curalog.curation"]}
    assert not {t for t in targets if t.startswith("curalog.io")}


def test_curalog_never_imports_the_ui_except_its_entry() -> None:
    """Only the UI entry imports ``curalog_tui``, inside its command functions, never Textual
    itself; only the CLI imports the entry; so the CLI's path (``curalog.cli``, its parser,
    every other command) never loads the UI."""
    bad = [
        f"{i.importer}:{i.line} imports {i.target}"
        for imports in ALL_IMPORTS.values()
        for i in imports
        if (i.target.split(".")[0] == "curalog_tui" and i.importer != UI_ENTRY)
        or i.target.split(".")[0] == "textual"
        or (i.target == UI_ENTRY and not i.importer.startswith("curalog.cli."))
    ]
    assert not bad, "; ".join(bad)
    entry = ALL_IMPORTS[UI_ENTRY]
    assert any(i.target.startswith("curalog_tui") for i in entry)
    module_level = {
        node.lineno
        for node in ast.parse(MODULES[UI_ENTRY].read_text()).body
        if isinstance(node, ast.Import | ast.ImportFrom)
    }
    eager = [i for i in entry if i.target.startswith("curalog_tui") and i.line in module_level]
    assert not eager, f"{UI_ENTRY} imports the UI at module level: {eager}"
    code = (
        "import sys, curalog.cli\n"
        "curalog.cli.build_parser()\n"
        "print(','.join(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('curalog_tui', 'textual'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"the CLI's parser loaded the UI: {out.stdout}"


def _cycles() -> list[list[str]]:
    graph = {
        m: sorted(
            {
                i.target
                for i in imports
                if i.target in MODULES and i.target != m and not i.typing_only
            }
        )
        for m, imports in ALL_IMPORTS.items()
    }
    # Tarjan's strongly connected components: a component of more than one module is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    assert _cycles() == []


def test_type_checking_imports_are_seen_for_the_layers() -> None:
    lock = [i for i in ALL_IMPORTS.get("curalog.store.lock", []) if i.typing_only]
    found = [i for imports in ALL_IMPORTS.values() for i in imports if i.typing_only]
    assert found, "no TYPE_CHECKING import found: the marker is not detected"
    assert all(i.target.startswith("curalog.store") for i in lock)


def test_the_cycle_check_finds_a_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = dict(ALL_IMPORTS)
    fake["curalog.errors"] = [Import("curalog.errors", "curalog.atomic", 1)]
    fake["curalog.atomic"] = [Import("curalog.atomic", "curalog.errors", 1)]
    monkeypatch.setitem(globals(), "ALL_IMPORTS", fake)
    assert ["curalog.atomic", "curalog.errors"] in _cycles()
