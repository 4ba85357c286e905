"""curalog's raw waveforms against phylib's TemplateModel, same spikes and channels.

Run with ``.venv/bin/python -m pytest -m interop tests/test_recording_interop.py`` (skips
cleanly when phylib is not installed: ``pip install -e '.[interop]'``).
"""

from __future__ import annotations

import numpy as np
import pytest
from rawlib import write_raw_folder

import curalog

pytestmark = pytest.mark.interop


def _model(folder):
    model_mod = pytest.importorskip("phylib.io.model")
    return model_mod.load_model(folder / "params.py")


@pytest.mark.parametrize(
    ("dtype", "split"),
    [("int16", None), ("float32", None), ("int16", [17_000, 40_000])],
)
def test_waveforms_equal_phylibs(tmp_path, dtype, split):
    # 8 interleaved channels in the file, 6 template channels mapped in reverse order
    folder, _ = write_raw_folder(
        tmp_path / "f", dtype=dtype, n_channels_dat=8, split_at=split, seed=3
    )
    model = _model(folder)
    try:
        with curalog.open_curation(folder, readonly=True) as cur:
            for cid in cur.cluster_ids.tolist():
                wf = cur.waveforms(cid, n=40, filtered=False)
                # the best channels are phy's (the dominant template's channel_ids)
                phy_channels = model.get_template(cid).channel_ids
                np.testing.assert_array_equal(wf.channels, phy_channels)
                assert wf.before + wf.after == model.n_samples_waveforms
                theirs = model.get_waveforms(wf.spike_ids, wf.channels)
                assert theirs.shape == wf.waveforms.shape
                np.testing.assert_array_equal(wf.waveforms, theirs.astype(np.float32))
                # raw file rows are phylib's channel mapping
                np.testing.assert_array_equal(wf.channel_ids, model.channel_mapping[wf.channels])
            # spikes at the very edges: phylib pads with zeros, so do we
            chans = np.arange(6)
            ours = cur.recording.snippets(
                np.array([5, cur.recording.n_samples - 3]), chans, 20, 20, filtered=False
            )
            from phylib.io.traces import extract_waveforms

            theirs = extract_waveforms(
                model.traces, np.array([5, cur.recording.n_samples - 3]), chans, 40
            )
            np.testing.assert_array_equal(ours, theirs.astype(np.float32))
    finally:
        model.close()
