"""The core must stay usable without the terminal UI (Harlequin's rule)."""

import subprocess
import sys


def test_core_does_not_import_textual():
    code = (
        "import sys, curalog, curalog.cli, curalog.curation, curalog.io.phy\n"
        "import curalog.store.log, curalog.events, curalog.dataset, curalog.clustering\n"
        "try:\n    import curalog.analysis.stats\nexcept ImportError:\n    pass\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core imported textual modules: {out.stdout}"


def test_public_api_names():
    import curalog

    for name in ("open", "replay", "Curation", "load_dataset", "CuralogError"):
        assert hasattr(curalog, name)
