"""Compile curalog's numba kernels ahead of use, once per installation ("warm-up").

numba compiles a kernel the first time it is called with a given argument type; every
kernel here is ``njit(cache=True)``, so the machine code is written to numba's on-disk
cache and later processes load it in milliseconds. A first-time user would otherwise pay
that compilation (10-30 s in all, on a loaded 2-core machine) on their first actions:
the first merge, the first feature view.

:func:`warm_up` runs the library's own code paths (log replay, merge / split / undo,
statistics and their composition on merge, feature views, merge proposals, history diffs)
on a tiny folder written to a temporary directory, with the argument types real folders
give (read-only memory-mapped int64 times and int32 templates, float32 and float64
amplitudes), so that exactly the signatures a session needs are compiled and cached.
The terminal UI calls it at its first launch with a progress message
(:func:`needed` says whether a warm-up is due); ``curalog warmup`` does it at install time.

A marker in the user's cache directory (``$CURALOG_CACHE_DIR``, else
``$XDG_CACHE_HOME/curalog``) records a completed warm-up, keyed by the versions of curalog,
numba and Python, the numba cache directory and the size and time of every module that
holds kernels: editing or upgrading any of them (which invalidates numba's cache) makes a
warm-up due again. The marker is only a hint; if numba's cache was deleted meanwhile the
kernels are simply compiled on first use, as without a warm-up.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["WarmupReport", "needed", "warm_up", "marker_path", "write_tiny_folder"]

#: Modules whose numba kernels the warm-up compiles (their files key the marker).
KERNEL_MODULES = (
    "curalog.dataset",
    "curalog.clustering",
    "curalog.history",
    "curalog.events",  # the packing of logged selections
    "curalog.analysis.stats",  # every statistics and quality-metric kernel
    "curalog.analysis.features",
    "curalog.analysis.proposals",
)

Progress = Callable[[str, int, int], None]
Step = tuple[str, Callable[[Path], None]]


@dataclass
class WarmupReport:
    """What a warm-up did: seconds per step, and the steps that failed (with the reason)."""

    steps: list[tuple[str, float]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(s for _, s in self.steps)


# ---------------------------------------------------------------------- the marker
def _cache_dir() -> Path:
    base = os.environ.get("CURALOG_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "curalog",
    )
    return Path(base)


def _module_files(names: Sequence[str]) -> list[str]:
    files = []
    for name in names:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        if not origin:
            continue
        root = Path(origin)
        # a package: every module in it (kernels may live in any of them)
        paths = sorted(root.parent.rglob("*.py")) if root.name == "__init__.py" else [root]
        for p in paths:
            with contextlib.suppress(OSError):
                st = p.stat()
                files.append(f"{p}:{st.st_size}:{st.st_mtime_ns}")
    return files


def _key(group: str, modules: Sequence[str]) -> str:
    import numba

    from curalog._version import __version__

    parts = [
        group,
        __version__,
        numba.__version__,
        sys.version,
        os.environ.get("NUMBA_CACHE_DIR", ""),
        *_module_files(modules),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def marker_path(group: str = "core", modules: Sequence[str] = KERNEL_MODULES) -> Path:
    """Where a completed warm-up of ``group`` (whose kernels live in ``modules``) is recorded."""
    return _cache_dir() / "warmup" / f"{group}-{_key(group, modules)}"


def needed(group: str = "core", modules: Sequence[str] = KERNEL_MODULES) -> bool:
    """True when no warm-up of the current code of ``modules`` was recorded."""
    try:
        return not marker_path(group, modules).exists()
    except (OSError, ImportError, ValueError):
        return True


# ---------------------------------------------------------------------- the tiny folder
def write_tiny_folder(
    folder: Path,
    *,
    amplitude_dtype: str = "float32",
    n_spikes: int = 6000,
    n_templates: int = 6,
    n_channels: int = 16,
    seed: int = 0,
) -> Path:
    """A small Kilosort-style folder with the dtypes Kilosort writes (for the warm-up)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    fs = 30_000.0
    times = np.sort(rng.integers(0, int(120 * fs), n_spikes)).astype(np.int64)
    templates_of = rng.integers(0, n_templates, n_spikes).astype(np.int32)
    n_samples, n_pcs, k = 41, 3, min(8, n_channels)
    wave = -np.exp(-0.5 * ((np.arange(n_samples) - 15) / 3.0) ** 2)
    templates = np.zeros((n_templates, n_samples, n_channels), dtype=np.float32)
    for t in range(n_templates):
        centre = t * n_channels // n_templates
        gain = np.exp(-0.5 * ((np.arange(n_channels) - centre) / 2.0) ** 2)
        templates[t] = wave[:, None] * gain[None, :]
    ind = np.array(
        [np.sort(np.argsort(-np.abs(templates[t]).max(0))[:k]) for t in range(n_templates)],
        dtype=np.uint32,
    )
    arrays = {
        "spike_times": times,
        "spike_templates": templates_of,
        "amplitudes": rng.gamma(6.0, 3.0, n_spikes).astype(amplitude_dtype),
        "templates": templates,
        "channel_map": np.arange(n_channels, dtype=np.int32),
        "channel_positions": np.column_stack(
            [np.tile([0.0, 32.0], n_channels // 2), 20.0 * (np.arange(n_channels) // 2)]
        ),
        "channel_shanks": np.zeros(n_channels, dtype=np.int32),
        "similar_templates": rng.random((n_templates, n_templates)).astype(np.float32),
        "whitening_mat_inv": np.eye(n_channels),
        "pc_features": rng.normal(size=(n_spikes, n_pcs, k)).astype(np.float32),
        "pc_feature_ind": ind,
        "template_features": rng.normal(size=(n_spikes, 4)).astype(np.float32),
        "template_feature_ind": np.tile(np.arange(4, dtype=np.uint32), (n_templates, 1)),
    }
    for name, arr in arrays.items():
        np.save(folder / f"{name}.npy", arr)
    (folder / "params.py").write_text(
        f"dat_path = 'raw.dat'\nn_channels_dat = {n_channels}\ndtype = 'int16'\n"
        f"offset = 0\nsample_rate = {fs}\nhp_filtered = False\n"
    )
    return folder


# ---------------------------------------------------------------------- the steps
def _clustering(folder: Path) -> None:
    import curalog
    from curalog.io.phy import export_phy

    log = folder / "warmup.log"
    with curalog.open(folder, log, sync=False) as cur:
        ids = [int(c) for c in cur.cluster_ids]
        new = cur.merge([ids[0], ids[1]])
        cur.merge([ids[2], ids[3], ids[4]])
        sp = cur.spikes(new)
        cur.split(sp[: len(sp) // 3])
        both = np.concatenate([cur.spikes(int(c))[:50] for c in cur.cluster_ids[:2]])
        cur.split(both, labels=np.arange(both.shape[0]) % 2)
        cur.undo()
        cur.undo()
        cur.redo()
        cur.label([int(cur.cluster_ids[-1])], group="good")
        _ = cur.spike_clusters
    with curalog.open(folder, log, readonly=True) as cur:  # replay of a log
        _ = cur.spike_clusters
        export_phy(cur, folder / "export", info=False)


def _stats(folder: Path) -> None:
    import curalog
    from curalog.analysis.stats import StatsEngine

    for sub in ("", "f64"):
        path = folder / sub if sub else folder
        with curalog.open(path, path / "stats.log", sync=False) as cur:
            engine = StatsEngine(cur.dataset, cur.state)
            cur.subscribe(engine.on_update)
            engine.table_rows()
            ids = [int(c) for c in cur.cluster_ids]
            engine.similar(ids[0])
            engine.ccg(ids[0], ids[1])
            engine.acg(ids[0])
            new = cur.merge([ids[0], ids[1]])  # composed from cached parents
            engine.get(new)
            new = cur.merge([new, ids[2], ids[3]])
            engine.get(new)
            engine.similar(new)
            cur.undo()
            engine.table_rows()
            engine.compute_all(n_threads=2)


def _features(folder: Path) -> None:
    import curalog
    from curalog.analysis import features as F

    with curalog.open(folder, readonly=True, log=folder / "stats.log") as cur:
        src = F.FeatureSource(cur.dataset)
        ids = [int(c) for c in cur.cluster_ids]
        one = {ids[0]: cur.spikes(ids[0])}
        two = {ids[0]: cur.spikes(ids[0]), ids[1]: cur.spikes(ids[1])}
        specs = [F.amplitude_view(src, one), F.feature_view(src, one), F.feature_view(src, two)]
        with contextlib.suppress(F.ViewUnavailableError):
            specs.append(F.template_feature_view(src, two))
        for spec in specs:
            data = F.compute_view(spec)
            xs = np.concatenate([layer.x for layer in data.layers if layer.x is not None])
            ys = np.concatenate([layer.y for layer in data.layers if layer.y is not None])
            lo_x, hi_x = float(np.min(xs)), float(np.max(xs))
            lo_y, hi_y = float(np.min(ys)), float(np.max(ys))
            poly = [(lo_x, lo_y), (hi_x, lo_y), ((lo_x + hi_x) / 2, hi_y)]
            F.split_preview(data, poly)
            F.spikes_in_polygon(spec, poly)


def _proposals(folder: Path) -> None:
    import curalog
    from curalog.analysis.proposals import ProposalEngine

    with curalog.open(folder, folder / "proposals.log", sync=False) as cur:
        engine = ProposalEngine(cur, n_threads=1)
        found = engine.proposals()
        if found:
            engine.evidence(found[0])
            engine.accept(found[0])
        ids = [int(c) for c in cur.cluster_ids]
        engine.score(ids[0], ids[1])


def _history(folder: Path) -> None:
    import importlib

    history = importlib.import_module("curalog.history")
    history.diff_histories(folder, folder / "warmup.log", folder / "stats.log")


#: The library's steps, in the order a session needs them.
STEPS: tuple[Step, ...] = (
    ("cluster state and log replay", _clustering),
    ("statistics and correlograms", _stats),
    ("feature views", _features),
    ("merge proposals", _proposals),
    ("history diffs", _history),
)


def warm_up(
    progress: Progress | None = None,
    *,
    steps: Sequence[Step] = STEPS,
    group: str = "core",
    modules: Sequence[str] = KERNEL_MODULES,
    write_marker: bool = True,
) -> WarmupReport:
    """Compile and cache kernels by running ``steps`` on a tiny folder.

    Parameters
    ----------
    progress : callable, optional
        ``progress(step_label, done, total)`` before each step and once at the end.
    steps : sequence of (label, callable(folder))
        Default: the library's (:data:`STEPS`); the terminal UI passes its plot kernels'.
    group, modules : str, sequence of str
        Name of the marker, and the modules holding the steps' kernels (they key it).
    write_marker : bool
        Record the warm-up so that :func:`needed` is False afterwards (only when every step
        succeeded).

    A failing step is recorded in the report and the others still run: a warm-up never
    stops a session from starting.
    """
    report = WarmupReport()
    with tempfile.TemporaryDirectory(prefix="curalog-warmup-") as tmp:
        folder = write_tiny_folder(Path(tmp) / "ds")
        write_tiny_folder(folder / "f64", amplitude_dtype="float64")
        for k, (label, fn) in enumerate(steps):
            if progress is not None:
                progress(label, k, len(steps))
            t0 = time.perf_counter()
            try:
                fn(folder)
            except Exception as exc:  # noqa: BLE001 - recorded, never fatal
                last = traceback.extract_tb(exc.__traceback__)[-1]
                where = f"{Path(last.filename).name}:{last.lineno}"
                report.errors.append((label, f"{exc.__class__.__name__}: {exc} ({where})"))
            report.steps.append((label, time.perf_counter() - t0))
    if progress is not None:
        progress("done", len(steps), len(steps))
    if write_marker and not report.errors:
        with contextlib.suppress(OSError):
            path = marker_path(group, modules)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{time.time():.0f} {report.seconds:.1f}\n")
    return report
