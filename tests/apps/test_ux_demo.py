"""Issue 28 item 9: ``make demo``'s summary prints the zero-velocity baseline beside the models."""

from __future__ import annotations

from _demo_fakes import write_fake_demo_outputs
from skeleton_diffusion.apps import demo


def test_demo_summary_prints_the_zero_velocity_line(tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "demo"
    ran: list[list[str]] = []

    def fake_run(cmds: list[list[str]]) -> int:
        ran.extend(cmds)
        write_fake_demo_outputs(out, ades={"eval_quick": 0.544, "eval_zero_velocity": 0.681})
        return 0

    monkeypatch.setattr(demo, "run_commands", fake_run)
    monkeypatch.setattr(demo, "PRETRAINED_DIR", "trained_models/deleted_by_someone")
    assert demo.main(["--out", str(out)]) == 0
    evals = [c for c in ran if "eval.py" in c[1]]
    assert any("method_specs=zero_velocity" in c for c in evals)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("zero velocity")]
    assert len(lines) == 1 and "ADE 0.681" in lines[0] and "FDE 0.881" in lines[0]
