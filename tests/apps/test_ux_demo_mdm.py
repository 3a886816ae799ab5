"""Issue 28 item 9: ``make demo-mdm`` prints zero velocity beside every MDM, says whether each beats it, and uses the
action model it trains."""

from __future__ import annotations

from _demo_fakes import write_fake_demo_outputs
from skeleton_diffusion.apps import demo_mdm


def test_demo_mdm_summary_names_zero_velocity_and_the_verdict(tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "demo_mdm"
    ran: list[list[str]] = []

    def fake_run(cmds):
        ran.extend(cmds)
        write_fake_demo_outputs(out, ("pred_quick", "pred"),
                                {"eval_quick": 1.096, "eval_zero_velocity": 0.681, "eval": 0.55})
        return 0

    monkeypatch.setattr(demo_mdm, "run_commands", fake_run)
    monkeypatch.setattr(demo_mdm, "pretrained_problem", lambda *a: None)  # as if the shipped MDM were present
    assert demo_mdm.main(["--out", str(out)]) == 0
    text = capsys.readouterr().out
    quick = next(ln for ln in text.splitlines() if ln.strip().startswith("quick MDM (trained here)"))
    shipped = next(ln for ln in text.splitlines() if ln.strip().startswith("shipped MDM") and "ADE" in ln)
    zero = next(ln for ln in text.splitlines() if ln.strip().startswith("zero velocity"))
    assert "ADE 1.096" in quick and "does NOT beat zero velocity" in quick
    assert "ADE 0.550" in shipped and "beats zero velocity" in shipped and "NOT" not in shipped
    assert "ADE 0.681" in zero
    # the action model it trains is used: motions are generated from it
    trained = [c for c in ran if "condition=action" in c]
    gen = [c for c in ran if "--generate-actions" in c]
    assert trained and gen and gen[0][gen[0].index("--generate-actions") + 1] == f"{out}/mdm_action"
    assert any("method_specs=zero_velocity" in c for c in ran)


def test_quick_past_model_trains_with_the_shipped_models_scale_and_lr() -> None:
    """The quick model used the task's 1.5 m scale and lr 1e-4 and lost to zero velocity (ADE 1.096 vs 0.681)."""
    past = [c for c in demo_mdm.quick_commands("o") if "train_diffusion.py" in c and "condition=action" not in c]
    assert len(past) == 1 and {"task.pose_box_size=0.4", "model.lr=1e-3"} <= set(past[0])
