"""Shared fixtures: the real phy test folder and tiny hand-made Kilosort folders."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
#: ``../shared`` beside the repository (CI, /work/main); CURALOG_SHARED points elsewhere
#: (e.g. from a git worktree whose parent has no shared/ folder).
SHARED = Path(os.environ.get("CURALOG_SHARED", REPO.parent / "shared"))
SHARED_PHY_TEMPLATE = SHARED / "data" / "phy-template"


def write_folder(
    path: Path,
    spike_templates,
    *,
    spike_times=None,
    sample_rate: float = 30_000.0,
    n_templates: int | None = None,
    amplitudes=None,
    groups: dict[int, str] | None = None,
) -> Path:
    """Write a minimal Kilosort folder (params.py, spike_times, spike_templates, amplitudes)."""
    path.mkdir(parents=True, exist_ok=True)
    st = np.asarray(spike_templates, dtype=np.int32)
    if spike_times is None:
        spike_times = np.arange(st.shape[0], dtype=np.int64) * 100
    (path / "params.py").write_text(
        f"dat_path = 'raw.dat'\nn_channels_dat = 4\ndtype = 'int16'\noffset = 0\nsample_rate = {sample_rate}\n"
    )
    np.save(path / "spike_times.npy", np.asarray(spike_times, dtype=np.int64))
    np.save(path / "spike_templates.npy", st)
    if amplitudes is None:
        amplitudes = np.ones(st.shape[0], dtype=np.float32)
    np.save(path / "amplitudes.npy", np.asarray(amplitudes))
    if n_templates is not None:
        rng = np.random.default_rng(0)
        np.save(path / "templates.npy", rng.normal(size=(n_templates, 20, 4)).astype(np.float32))
    if groups:
        lines = ["cluster_id\tgroup"] + [f"{c}\t{g}" for c, g in sorted(groups.items())]
        (path / "cluster_group.tsv").write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def phy_template(tmp_path: Path) -> Path:
    """A writable copy of the real phy test folder (314 spikes, 64 templates)."""
    if not SHARED_PHY_TEMPLATE.exists():
        pytest.skip("../shared/data/phy-template is not beside the repository")
    dest = tmp_path / "phy-template"
    shutil.copytree(SHARED_PHY_TEMPLATE, dest)
    for p in [dest, *dest.iterdir()]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    return dest


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """Ten spikes in clusters 3, 4 and 8 (docs/PHY_SEMANTICS.md's examples)."""
    return write_folder(tmp_path / "tiny", [3, 3, 3, 4, 4, 4, 4, 8, 8], n_templates=9)


SNAPSHOTS = Path(__file__).parent / "tui_snapshots"


def check_snapshot(name: str, text: str) -> None:
    """Compare a screen's text with ``tui_snapshots/<name>.txt``
    (``CURALOG_UPDATE_SNAPSHOTS=1`` rewrites the files; a missing one is created and skipped)."""
    import os

    update = bool(os.environ.get("CURALOG_UPDATE_SNAPSHOTS"))
    path = SNAPSHOTS / f"{name}.txt"
    if update or not path.exists():
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text)
        if not update:
            pytest.skip(f"snapshot {path.name} created; run again to compare")
    expected = path.read_text()
    assert text == expected, (
        f"screen differs from {path} (CURALOG_UPDATE_SNAPSHOTS=1 to accept):\n{text}"
    )


def snapshot_dir(path: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under ``path`` with size, mtime and content, to prove nothing was written."""
    out = {}
    for p in sorted(path.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(path))] = (st.st_size, st.st_mtime_ns, p.read_bytes())
    return out


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory):
    """Keep fingerprint/validation caches out of the user's ~/.cache during tests."""
    import os

    old = os.environ.get("CURALOG_CACHE_DIR")
    os.environ["CURALOG_CACHE_DIR"] = str(tmp_path_factory.mktemp("curalog-cache"))
    yield
    if old is None:
        os.environ.pop("CURALOG_CACHE_DIR", None)
    else:
        os.environ["CURALOG_CACHE_DIR"] = old
