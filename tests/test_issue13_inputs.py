"""Issue 13, inputs: sorter files never overwritten, field names validated the same way
everywhere, TSV encodings, strict ids and selections, honest split sizes, rule nesting."""

from __future__ import annotations

import numpy as np
import pytest

import curalog
from curalog.cli import main
from curalog.errors import CuralogError, DatasetError, InvalidActionError
from curalog.io.phy import export_phy

import faultlib


@pytest.fixture(autouse=True)
def _fp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CURALOG_CACHE_DIR", str(tmp_path / "fp-cache"))


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _ks_folder(tmp_path, name="ds"):
    folder = faultlib.make_dataset(tmp_path / name, 2000, 20)
    (folder / "cluster_KSLabel.tsv").write_text(
        "cluster_id\tKSLabel\n" + "".join(f"{c}\tgood\n" for c in range(20))
    )
    return folder


# ---------------------------------------------------------------------- 2. sorter files
@pytest.mark.parametrize("name", ["KSLabel", "kslabel", "ContamPct", "Amplitude", "n_spikes"])
def test_sorter_column_names_are_refused_as_fields(tmp_path, name):
    folder = faultlib.make_dataset(tmp_path / "plain", 2000, 20)  # has no cluster_KSLabel.tsv
    with curalog.open(folder) as cur, pytest.raises(InvalidActionError):
        cur.label([1], field=name, value="mua")


def test_export_never_overwrites_a_sorter_file(tmp_path):
    plain = faultlib.make_dataset(tmp_path / "plain", 2000, 20)
    sorter = _ks_folder(tmp_path, "sorter")  # the same spikes, with Kilosort's KSLabel file
    original = (sorter / "cluster_KSLabel.tsv").read_bytes()
    log = tmp_path / "crafted.log"  # a log (valid checksums) labelling field KSLabel
    header = faultlib.header_for(plain)
    body = {"clusters": [1], "field": "KSLabel", "value": "noise", "previous": [[1, None]]}
    faultlib.craft_log(log, header, [("label", body)])
    with pytest.raises(CuralogError, match="sorter column"):
        curalog.open(plain, log, readonly=True)
    res = faultlib.run_cli("export", str(plain), "--log", str(log), "--out", str(sorter))
    faultlib.assert_one_line_error(res, "sorter column")
    assert (sorter / "cluster_KSLabel.tsv").read_bytes() == original


def test_export_refuses_to_replace_a_sorter_file_it_did_not_write(tmp_path, monkeypatch):
    from curalog.io import phy

    plain = faultlib.make_dataset(tmp_path / "plain", 2000, 20)
    sorter = _ks_folder(tmp_path, "sorter")
    original = (sorter / "cluster_KSLabel.tsv").read_bytes()
    monkeypatch.setattr(phy, "SORTER_COLUMNS", ("KSLabel",))
    monkeypatch.setattr("curalog.labels.SORTER_COLUMNS", ())  # as if the API let it through
    with curalog.open(plain) as cur:
        cur.label([1], field="KSLabel", value="noise")
        with pytest.raises(CuralogError, match="a sorter's file"):
            export_phy(cur, sorter)
    assert (sorter / "cluster_KSLabel.tsv").read_bytes() == original
    assert not (sorter / "spike_clusters.npy").exists()  # refused before writing anything


def test_replay_refuses_a_logged_sorter_column_field(tmp_path):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    log = tmp_path / "crafted.log"
    body = {"clusters": [1], "field": "ContamPct", "value": 3.0, "previous": [[1, None]]}
    faultlib.craft_log(log, faultlib.header_for(folder), [("label", body)])
    with pytest.raises(CuralogError, match="sorter column"):
        curalog.open(folder, log, readonly=True)


# ---------------------------------------------------------------------- 11. field names
@pytest.mark.parametrize("bad", ["a\x00b", "a\x1b[31m", "..", "a/b", "x" * 300, "\u202eevil"])
def test_bad_field_names_are_refused_at_the_api_on_replay_and_in_fsck(tmp_path, capsys, bad):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    with curalog.open(folder) as cur, pytest.raises(InvalidActionError):
        cur.label([1], field=bad, value="x")
    log = tmp_path / "crafted.log"
    body = {"clusters": [1], "field": bad, "value": "x", "previous": [[1, None]]}
    faultlib.craft_log(log, faultlib.header_for(folder), [("label", body)])
    with pytest.raises(CuralogError):
        curalog.open(folder, log, readonly=True)
    code, out, _ = _run(capsys, "fsck", str(folder), "--log", str(log))
    assert code == 1 and "replay FAILED" in out
    code, _, err = _run(
        capsys, "export", str(folder), "--log", str(log), "--out", str(tmp_path / "o")
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


# ---------------------------------------------------------------------- 6. TSV encodings
GROUPS = "cluster_id\tgroup\r\n0\tgood\r\n1\tmua\r\n2\tnoise\r\n"


@pytest.mark.parametrize(
    "encode",
    [
        lambda t: b"\xef\xbb\xbf" + t.encode("utf-8"),
        lambda t: t.encode("utf-16"),  # with its BOM, as Windows tools write
        lambda t: b"\xfe\xff" + t.encode("utf-16-be"),
    ],
    ids=["utf8-bom", "utf16", "utf16-be"],
)
def test_cluster_group_with_a_byte_order_mark_keeps_its_groups(tmp_path, encode):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20, groups=False)
    (folder / "cluster_group.tsv").write_bytes(encode(GROUPS))
    with curalog.open(folder, readonly=True) as cur:
        assert cur.group(0) == "good" and cur.group(1) == "mua" and cur.group(2) == "noise"


def test_latin1_bytes_are_refused_naming_file_and_line(tmp_path):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20, groups=False)
    (folder / "cluster_note.tsv").write_bytes(b"cluster_id\tnote\n0\tok\n1\tcaf\xe9\n")
    with pytest.raises(DatasetError, match=r"cluster_note.tsv: line 3: not UTF-8"):
        curalog.open(folder, readonly=True)
    res = faultlib.run_cli("info", str(folder))
    faultlib.assert_one_line_error(res, "cluster_note.tsv: line 3")


def test_utf16_without_a_mark_is_refused(tmp_path):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20, groups=False)
    (folder / "cluster_group.tsv").write_bytes(GROUPS.encode("utf-16-le"))
    with pytest.raises(DatasetError, match="NUL"):
        curalog.open(folder, readonly=True)


def test_full_width_ids_in_a_tsv_are_refused(tmp_path):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20, groups=False)
    (folder / "cluster_group.tsv").write_text("cluster_id\tgroup\n\uff11\tgood\n", "utf-8")
    with pytest.raises(DatasetError, match="line 2: cluster id"):
        curalog.open(folder, readonly=True)


# ---------------------------------------------------------------------- 14. small ones
def test_a_text_file_given_as_spikes_gets_one_plain_line(tmp_path):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    txt = tmp_path / "spikes.txt"
    txt.write_text("1\n2\n3\n")
    res = faultlib.run_cli("split", str(folder), "--spikes", str(txt))
    line = faultlib.assert_one_line_error(res, "not a .npy file")
    assert "allow_pickle" not in line


def test_a_2d_selection_is_refused_not_flattened(tmp_path, capsys):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    sel = tmp_path / "sel.npy"
    np.save(sel, np.arange(20).reshape(10, 2))
    code, _, err = _run(capsys, "split", str(folder), "--spikes", str(sel))
    assert code == 2 and "1-D" in err
    with curalog.open(folder) as cur:
        with pytest.raises(InvalidActionError, match="1-D"):
            cur.split(np.arange(20).reshape(10, 2))
        with pytest.raises(InvalidActionError, match="1-D"):
            cur.split(np.arange(20), np.zeros((20, 1), dtype=int))
        assert cur.seq == 0


@pytest.mark.parametrize("bad", [" 1", "\uff11", "1 ", "+1", "1_0"])
def test_odd_ids_are_refused_on_the_command_line(tmp_path, capsys, bad):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    code, _, err = _run(capsys, "merge", str(folder), bad, "2")
    assert code == 2 and "not a cluster id" in err


@pytest.mark.parametrize("bad", [" 1", "\uff11", "1", 1.0, True])
def test_odd_ids_are_refused_by_the_api(tmp_path, bad):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    with curalog.open(folder) as cur:
        with pytest.raises(InvalidActionError):
            cur.merge([bad, 2])
        with pytest.raises(InvalidActionError):
            cur.label([bad], group="good")
        assert cur.seq == 0


def test_log_shows_the_number_of_spikes_split_off(tmp_path, capsys):
    folder = faultlib.make_dataset(tmp_path / "ds", 20_000, 4)
    with curalog.open(folder) as cur:
        members = cur.spikes(1)
        cur.split(members[:967])
        n = members.size
    code, out, _ = _run(capsys, "log", str(folder))
    assert code == 0 and f"(967 of {n:,} spikes)" in out


def test_synth_writes_the_number_of_spikes_asked_for(tmp_path):
    out = tmp_path / "syn"
    res = faultlib.run_cli("synth", str(out), "--spikes", "20000", "--templates", "16")
    assert res.returncode == 0, res.stderr
    assert np.load(out / "spike_times.npy").shape == (20_000,)
    assert np.load(out / "spike_templates.npy").shape == (20_000,)
    assert "20,000 spikes" in res.stdout


# ---------------------------------------------------------------------- 10. nesting
@pytest.mark.parametrize("depth", [200, 5000])
def test_deeply_nested_rules_are_one_line(depth):
    from curalog.analysis.autolabel import RuleError, parse_rule

    text = "(" * depth + "fr > 1" + ")" * depth + " -> good"
    with pytest.raises(RuleError, match="nested") as info:
        parse_rule(text)
    assert "\n" not in str(info.value)
    for wrap in ("not " * depth + "fr > 1 -> good", "-" * depth + "fr > 1 -> good"):
        with pytest.raises(RuleError, match="nested"):
            parse_rule(wrap)
    parse_rule("(" * 30 + "fr > 1" + ")" * 30 + " -> good")  # reasonable depth works


def test_deeply_nested_rule_on_the_command_line(tmp_path):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    rule = "(" * 300 + "fr > 1" + ")" * 300 + " -> good"
    res = faultlib.run_cli("autolabel", str(folder), "--rule", rule)
    faultlib.assert_one_line_error(res, "nested")


def test_deeply_nested_filter_in_the_tui_is_one_line():
    pytest.importorskip("textual")
    from curalog_tui.filter_expr import FilterError, compile_filter

    with pytest.raises(FilterError, match="nested") as info:
        compile_filter("(" * 500 + "fr > 1" + ")" * 500, ["fr"])
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------- 9. terminal escapes
def test_terminal_escapes_are_shown_escaped_by_log_and_info_and_kept(tmp_path, capsys):
    folder = faultlib.make_dataset(tmp_path / "ds", 2000, 20)
    esc = "\x1b]0;owned\x07\x1b[2J\x1b[31m\u202e"
    with curalog.open(folder, author=f"eve{esc}") as cur:
        cur.label([3], group="good", reason=f"because{esc}")
        cur.label([4], field="comment", value=f"v{esc}")
        cur.note("proposal", f"text{esc}")
    for cmd in ("log", "info"):
        code, out, err = _run(capsys, cmd, str(folder))
        assert code == 0
        assert "\x1b" not in out + err and "\x07" not in out and "\u202e" not in out
        assert "eve\\x1b]0;owned\\x07" in out
    code, out, _ = _run(capsys, "log", str(folder), "--json")
    assert "\x1b" not in out
    with curalog.open(folder, readonly=True) as cur:  # the log keeps them as written
        assert cur.events[0].author == f"eve{esc}"
        assert cur.events[0].body["reason"] == f"because{esc}"
