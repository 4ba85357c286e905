"""The terminal UI's first-launch warm-up says what it does, then is not due any more."""

from __future__ import annotations

from curalog import warmup
from curalog_tui.warmup import TUI_MODULES, TUI_STEPS, warm_up_first_run


def test_first_launch_compiles_with_progress_then_not_again(tmp_path, monkeypatch):
    monkeypatch.setenv("CURALOG_CACHE_DIR", str(tmp_path / "cache"))
    said: list[str] = []
    warm_up_first_run(said.append)
    total = len(warmup.STEPS) + len(TUI_STEPS)
    assert len(said) == total
    assert said[0].startswith("first launch: compiling")
    assert said[-1].endswith(f"{total}/{total} terminal plots…")
    assert not warmup.needed() and not warmup.needed("tui", TUI_MODULES)
    said.clear()
    warm_up_first_run(said.append)
    assert said == []
