"""Every ``.md`` file a docstring or comment cites exists in the repository.

Citations are paths from the repository root (``docs/DESIGN.md``, ``README.md``); the walk
covers the package, the terminal UI, the tests, the benchmarks and the examples.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TREES = ("curalog", "tui", "tests", "bench", "examples")
CITED = re.compile(r"(?<![\w./-])((?:[\w-]+/)*[\w.-]+\.md)\b")


def citations(path: Path) -> list[tuple[int, str]]:
    out = []
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    for tok in tokens:
        if tok.type in (tokenize.COMMENT, tokenize.STRING):
            for m in CITED.finditer(tok.string):
                out.append((tok.start[0], m.group(1)))
    return out


def all_citations() -> list[tuple[Path, int, str]]:
    return [
        (p, line, cited)
        for tree in TREES
        for p in sorted((ROOT / tree).rglob("*.py"))
        if p != Path(__file__).resolve()  # its own example below cites files that do not exist
        for line, cited in citations(p)
    ]


def test_cited_markdown_files_exist() -> None:
    found = all_citations()
    assert len(found) > 20  # the walk sees the citations
    missing = [
        f"{p.relative_to(ROOT)}:{line} cites {cited}"
        for p, line, cited in found
        if not (ROOT / cited).is_file()
    ]
    assert not missing, "; ".join(missing)


def test_the_walk_reads_docstrings_and_comments(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text('"""See docs/NOWHERE.md."""\n# and OTHER.md\nx = 1\n')
    assert [c for _, c in citations(f)] == ["docs/NOWHERE.md", "OTHER.md"]
