"""The table's silhouettes after a merge: the merged clusters' neighbours are refreshed.

A cluster's simplified silhouette depends on the labels of the spikes it is compared with
(its PC "others"), not only on its own spikes: merging two of its neighbours changes its
value although its row did not change. The table used to keep the old value."""

from __future__ import annotations

import math

import numpy as np
import pytest

from curalog import open_curation
from curalog.analysis.stats import StatsEngine
from curalog_tui.testing import open_app, settle


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from curalog.synth import synthesize

    out = tmp_path_factory.mktemp("silh") / "ds"
    synthesize(out, n_spikes=12_000, n_templates=10, seed=5, n_channels=16, pc_features=True)
    return out


def _fresh_silhouettes(folder, log) -> dict[int, float]:
    with open_curation(folder, log, readonly=True) as cur:
        eng = StatsEngine(cur.dataset, cur.state)
        return {int(r["id"]): float(r["silhouette"]) for r in eng.table_rows()}


async def test_neighbour_silhouettes_follow_a_merge(folder):
    before = _fresh_silhouettes(folder, None)
    app = open_app(folder)
    async with app.run_test(size=(200, 60)) as pilot:
        await settle(pilot)
        eng = app.stats.engine
        # every row's statistics (quality included) are in the table
        assert all(c in app.model.stats for c in app.cur.cluster_ids)
        # two clusters that are another cluster's PC neighbours
        ids = sorted(int(c) for c in app.cur.cluster_ids)
        pair, watcher = None, None
        for x in ids:
            for a in ids:
                if a == x:
                    continue
                deps = eng.silhouette_dependents([a])
                others = [b for b in ids if b not in (a, x) and x in eng.silhouette_dependents([b])]
                if x in deps and others:
                    pair, watcher = (a, others[0]), x
                    break
            if pair:
                break
        assert pair is not None, "no cluster with two PC neighbours in this folder"
        shown_before = app.model.row(watcher)["silhouette"]
        assert shown_before == pytest.approx(before[watcher])
        new = app.cur.merge(list(pair))
        await settle(pilot)
        log_path = app.cur.log_path
        shown_after = app.model.row(watcher)["silhouette"]
        assert new in app.model.stats
    after = _fresh_silhouettes(folder, log_path)
    assert not math.isclose(after[watcher], before[watcher], rel_tol=1e-9)  # it does change
    assert shown_after == pytest.approx(after[watcher], rel=1e-9)
    assert np.isfinite(after[new])
