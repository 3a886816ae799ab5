"""Result files (results.json / .csv / .md) and the terminal table."""

from __future__ import annotations

import csv
import json

import pytest

from skeleton_diffusion.metrics import METRIC_ORDER
from skeleton_diffusion.tasks.results import format_table, load_results, summarize, write_results
from skeleton_diffusion.utils.errors import DataFormatError


def _run(seed, shift=0.0, n=12):
    metrics = {m: 1.0 + 0.1 * i + shift for i, m in enumerate(METRIC_ORDER)}
    return {"metrics": metrics, "num_windows": n, "num_samples": 50, "stats_mode": "probabilistic",
            "seed": seed, "wall_time_s": 2.5}  # fmt: skip


def test_single_run_files_parse_and_hold_values(tmp_path):
    run = _run(0)
    paths = write_results(tmp_path / "out", run, dataset="amass", checkpoint="ckpt/cvpr_release.pt")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["results.csv", "results.json", "results.md"]
    data = json.loads(paths["json"].read_text())
    assert data["dataset"] == "amass" and data["checkpoint"] == "ckpt/cvpr_release.pt"
    assert data["seeds"] == [0] and data["num_windows"] == 12 and data["wall_time_s"] == pytest.approx(2.5)
    assert list(data["metrics"]) == list(METRIC_ORDER)
    for m, v in run["metrics"].items():
        assert data["metrics"][m]["mean"] == v and data["metrics"][m]["std"] == 0.0
    assert data["metrics"]["MAE"]["unit"] == "deg"
    rows = list(csv.DictReader(paths["csv"].open()))
    assert len(rows) == 1
    for m, v in run["metrics"].items():
        assert float(rows[0][m]) == v
    assert rows[0]["num_windows"] == "12" and rows[0]["seeds"] == "0"
    md = paths["md"].read_text()
    assert "| ADE | 1.0000 | m |" in md and "| JitterRMSE |" in md and "amass" in md
    assert load_results(tmp_path / "out")["metrics"]["FID"]["mean"] == run["metrics"]["FID"]


def test_multi_seed_mean_std_and_table(tmp_path, capsys):
    runs = [_run(0), _run(1, shift=0.2), _run(2, shift=0.4)]
    paths = write_results(tmp_path, runs, dataset="h36m", print_table=True)
    data = load_results(paths["json"])
    assert data["seeds"] == [0, 1, 2] and data["num_runs"] == 3 and data["wall_time_s"] == pytest.approx(7.5)
    assert data["metrics"]["ADE"]["mean"] == pytest.approx(1.2)
    assert data["metrics"]["ADE"]["std"] == pytest.approx(0.2)
    assert data["metrics"]["ADE"]["values"] == pytest.approx([1.0, 1.2, 1.4])
    row = next(csv.DictReader(paths["csv"].open()))
    assert float(row["ADE_std"]) == pytest.approx(0.2) and row["seeds"] == "0;1;2"
    out = capsys.readouterr().out
    assert "1.2000 ± 0.2000" in out and "h36m" in out and "mean ± std" in out
    assert "± 0.2000" in paths["md"].read_text()


def test_summary_rejects_mismatched_runs_and_bad_files(tmp_path):
    with pytest.raises(DataFormatError, match="numbers of windows"):
        summarize([_run(0), _run(1, n=13)], dataset="amass")
    with pytest.raises(DataFormatError, match="metrics"):
        summarize({"ADE": 1.0}, dataset="amass")
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps({"metrics": {"Bogus": 1}}))
    with pytest.raises(DataFormatError, match="unknown metric"):
        load_results(bad)


def test_format_table_single_run_has_no_std():
    table = format_table(summarize(_run(0), dataset="freeman"))
    assert "±" not in table and "| ADE " in table and "freeman" in table


def test_existing_results_survive_failed_write(tmp_path, monkeypatch):
    write_results(tmp_path, _run(0), dataset="amass")
    before = {p.name: p.read_text() for p in tmp_path.iterdir()}
    with pytest.raises(DataFormatError, match="no metric"):
        write_results(tmp_path, {"metrics": {}, "num_windows": 1}, dataset="amass")
    import skeleton_diffusion.tasks.results as results_mod

    def boom(summary):
        raise RuntimeError("disk full")

    monkeypatch.setattr(results_mod, "_md_text", boom)  # fails after the JSON/CSV texts are built
    with pytest.raises(RuntimeError, match="disk full"):
        write_results(tmp_path, _run(1, shift=1.0), dataset="amass", overwrite=True)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == before  # nothing half-written or replaced


def test_official_console_table_layout():
    from skeleton_diffusion.tasks.results import format_official_table

    metrics = {"ADE": 0.48, "FDE": 0.6, "APD": 9.456, "StretchMean": 3.1534, "JitterMean": 1.2,
               "StretchRMSE": 4.4512, "JitterRMSE": 2.0}  # fmt: skip
    text = format_official_table(metrics)
    lines = text.splitlines()
    assert lines[1].split("|")[1].strip() == "Metric" and "BodyR-RMSE" in lines[1]
    cells = [c.strip() for c in lines[3].split("|")[1:-1]]
    assert cells[0] == "total" and cells[1] == "0.4800" and cells[7] == "9.4560"
    assert cells[4] == ""  # no MMADE
    assert lines[3].rstrip().endswith("| 3.153  |  1.2 | 4.451  |  2.0 |")  # BodyR cells: "Stretch  |  Jitter"
    assert "Total StretchRMSE: 4.4512" in text
