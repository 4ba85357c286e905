"""The terminal UI's import contract, read from the source (an ``ast`` walk, nothing imported).

* Screens (and widgets) never import the app module: they get a
  :class:`curalog_tui.session.CurationSession`.
* The TUI imports only faces: from outside a sub-package of ``curalog_tui`` only the
  package itself (its ``__init__``); from ``curalog`` only the package, its top-level core
  modules, a package face, or a sub-module that its package's face names in ``__all__``
  without binding the name (``curalog.analysis`` names ``autolabel``, ``evaluate``, ...). A name taken from a face is one
  it lists in ``__all__``.
* ``curalog`` never imports Textual; the non-UI services of the TUI (``review``,
  ``session``) do not either.

Every import counts: module level, inside functions, under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOTS = {"curalog": ROOT / "curalog", "curalog_tui": ROOT / "tui"}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    target: str  # the module imported from (dotted, absolute)
    names: tuple[str, ...]  # for ``from target import names``; () for ``import target``
    line: int

    def where(self) -> str:
        return f"{self.importer}:{self.line}"


def module_name(top: str, path: Path) -> str:
    rel = path.relative_to(ROOTS[top]).with_suffix("")
    parts = [top, *rel.parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(top: str) -> dict[str, Path]:
    return {
        module_name(top, p): p
        for p in sorted(ROOTS[top].rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def path_of(name: str) -> Path | None:
    """The file of a dotted module of curalog or curalog_tui (package: its __init__.py)."""
    top, *rest = name.split(".")
    if top not in ROOTS:
        return None
    base = ROOTS[top].joinpath(*rest)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def is_package(name: str) -> bool:
    p = path_of(name)
    return p is not None and p.name == "__init__.py"


def face_all(name: str) -> set[str] | None:
    """The literal ``__all__`` of a package's ``__init__`` (None: it has none)."""
    p = path_of(name)
    if p is None:
        return None
    for node in ast.parse(p.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return set(ast.literal_eval(node.value))
    return None


def face_submodules(name: str) -> set[str]:
    """Sub-modules a face names in ``__all__`` without binding the name itself (as
    ``curalog.analysis`` does: "each sub-module is imported on its own")."""
    p = path_of(name)
    listed = face_all(name)
    if p is None or p.name != "__init__.py" or not listed:
        return set()
    bound: set[str] = set()
    for node in ast.parse(p.read_text()).body:
        if isinstance(node, ast.ImportFrom | ast.Import):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.Assign):
            bound |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return {n for n in listed - bound if path_of(f"{name}.{n}") is not None}


def imports_of(name: str, path: Path) -> list[Import]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [Import(name, a.name, (), node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = str(node.module)
            names = tuple(a.name for a in node.names)
            # ``from pkg import submodule`` imports the sub-module itself
            subs = tuple(n for n in names if path_of(f"{target}.{n}") is not None)
            rest = tuple(n for n in names if n not in subs)
            out += [Import(name, f"{target}.{n}", (), node.lineno) for n in subs]
            if rest:
                out.append(Import(name, target, rest, node.lineno))
    return out


def tui_imports() -> list[Import]:
    return [i for name, p in modules("curalog_tui").items() for i in imports_of(name, p)]


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


# ---------------------------------------------------------------------- the rules
def face_violation(imp: Import) -> str | None:
    """Why ``imp`` (made by a curalog_tui module) is not an import of a face, or None."""
    target = imp.target
    top = target.split(".")[0]
    if top not in ROOTS or path_of(target) is None:
        return None  # the standard library, textual, rich, numpy, ...
    parent = target.rpartition(".")[0]
    if top == "curalog_tui":
        # the package that holds the target (itself, if it is a package)
        holder = target if is_package(target) else parent
        if holder != "curalog_tui" and not within(imp.importer, holder) and not is_package(target):
            return f"imports {target}, inside {holder}: import from the face {holder}"
    else:
        ok = (
            target == "curalog"
            or is_package(target)
            or parent == "curalog"  # the core's top-level modules (errors, labels, ...)
            or target.rpartition(".")[2] in face_submodules(parent)
        )
        if not ok:
            return f"imports {target}, inside {parent}: import from the face {parent}"
    if is_package(target) and imp.names and not within(imp.importer, target):
        listed = face_all(target)
        if listed is None:
            return f"takes {', '.join(imp.names)} from {target}, a face without __all__"
        missing = [n for n in imp.names if n not in listed]
        if missing:
            return f"takes {', '.join(missing)} from {target}, whose __all__ does not list it"
    return None


def test_screens_and_widgets_never_import_the_app():
    bad = [
        f"{i.where()} imports {i.target}"
        for i in tui_imports()
        if within(i.importer, "curalog_tui.screens") or within(i.importer, "curalog_tui.widgets")
        if within(i.target, "curalog_tui.app")
    ]
    assert not bad, "screens and widgets talk to the app through CurationSession:\n" + "\n".join(
        bad
    )


def test_tui_imports_only_faces():
    bad = [f"{i.where()} {why}" for i in tui_imports() if (why := face_violation(i))]
    assert not bad, "\n".join(bad)


def test_curalog_never_imports_textual():
    bad = [
        f"{i.where()} imports {i.target}"
        for name, p in modules("curalog").items()
        for i in imports_of(name, p)
        if within(i.target, "textual")
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", ["curalog_tui.review", "curalog_tui.session"])
def test_tui_services_are_ui_free(name):
    path = path_of(name)
    assert path is not None
    bad = [
        f"{i.where()} imports {i.target}"
        for i in imports_of(name, path)
        if within(i.target, "textual")
        or any(within(i.target, f"curalog_tui.{ui}") for ui in ("app", "screens", "widgets"))
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("face", ["curalog_tui.screens", "curalog_tui.widgets"])
def test_tui_faces_list_what_they_export(face):
    import importlib

    listed = face_all(face)
    assert listed, f"{face} has no __all__"
    module = importlib.import_module(face)
    assert all(hasattr(module, n) for n in listed), sorted(
        n for n in listed if not hasattr(module, n)
    )


def test_the_rules_catch_what_they_forbid():
    """The checker itself: each forbidden shape is reported, the allowed ones are not."""
    screen = "curalog_tui.screens.views"
    assert face_violation(Import(screen, "curalog_tui.widgets.scatter", (), 1))
    assert face_violation(Import("curalog_tui.app", "curalog_tui.screens.views", (), 1))
    assert face_violation(Import(screen, "curalog_tui.widgets", ("FAST_CELLS",), 1))
    assert face_violation(Import(screen, "curalog.events.envelope", ("Event",), 1))
    assert face_violation(Import(screen, "curalog.analysis.stats.engine", ("StatsEngine",), 1))
    assert not face_violation(Import(screen, "curalog_tui.widgets", ("ScatterView",), 1))
    assert not face_violation(Import(screen, "curalog_tui.screens.help", ("KeyTableHelp",), 1))
    assert not face_violation(Import(screen, "curalog_tui.braille", ("BinCache",), 1))
    assert not face_violation(Import(screen, "curalog.events", ("Event",), 1))
    assert not face_violation(Import(screen, "curalog.errors", ("CuralogError",), 1))
    assert not face_violation(Import(screen, "curalog.analysis.autolabel", ("parse_rule",), 1))
    rel = imports_of(screen, ROOTS["curalog_tui"] / "screens" / "views.py")
    assert any(i.target == "curalog_tui.widgets" for i in rel)  # relative imports resolved


def test_the_app_implements_the_session():
    """Every member of CurationSession exists on CuralogApp, of the same kind and parameters."""
    from curalog_tui.app import CuralogApp
    from curalog_tui.session import CurationSession

    source = inspect.getsource(CuralogApp)
    members = [n for n in vars(CurationSession) if not n.startswith("_")]
    assert {"cur", "attempt", "review", "undo", "select_cluster"} <= set(members)
    for name in members:
        spec = vars(CurationSession)[name]
        if isinstance(spec, property):  # an annotated or assigned attribute, or a property
            assert (
                name in CuralogApp.__annotations__
                or isinstance(getattr(CuralogApp, name, None), property)
                or re.search(rf"self\.{name}\s*[:=]", source)
            ), f"CuralogApp has no attribute {name}"
            continue
        impl = getattr(CuralogApp, name)
        want = list(inspect.signature(spec).parameters)
        got = list(inspect.signature(impl).parameters)
        assert got == want, f"CuralogApp.{name}{got} != CurationSession.{name}{want}"
