"""`curalog autolabel`: rules become label events whose reason is the rule."""

import curalog
from curalog.cli.program import main
from curalog.synth.generator import synthesize

from conftest import snapshot_dir


def test_autolabel_appends_label_events_with_the_rule(tmp_path, capsys):
    folder = tmp_path / "d"
    synthesize(folder, n_spikes=60_000, n_templates=20, seed=4)
    (folder / "cluster_group.tsv").unlink()  # no sorter groups: everything is unsorted
    assert (
        main(
            ["autolabel", str(folder), "--rule", "n_spikes > 3000 -> good", "--rule", "true -> mua"]
        )
        == 0
    )
    with curalog.open(folder, readonly=True) as cur:
        events = cur.history
        sizes = cur.state.sizes()
        assert {e.body["reason"] for e in events} == {
            "autolabel: n_spikes > 3000 -> good",
            "autolabel: true -> mua",
        }
        for cid, n in sizes.items():
            assert cur.group(cid) == ("good" if n > 3000 else "mua")
    # a second run changes nothing; a dry run writes nothing; a bad rule is one line, exit 2
    n_events = len(events)
    assert (
        main(
            ["autolabel", str(folder), "--rule", "n_spikes > 3000 -> good", "--rule", "true -> mua"]
        )
        == 0
    )
    before = snapshot_dir(folder)
    assert (
        main(["autolabel", str(folder), "--dry-run", "--overwrite", "--rule", "true -> noise"]) == 0
    )
    assert main(["autolabel", str(folder), "--rule", "n_spikes >> 3 -> good"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--rule" in err[0]
    after = snapshot_dir(folder)
    after.pop(".curalog/main.log.lock", None)
    before.pop(".curalog/main.log.lock", None)
    assert after == before
    with curalog.open(folder, readonly=True) as cur:
        assert len(cur.history) == n_events
