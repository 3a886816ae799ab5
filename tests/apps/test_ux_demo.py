"""Issue 28 item 9: ``make demo``'s summary prints the zero-velocity baseline beside the models."""

from __future__ import annotations

import numpy as np

from skeleton_diffusion.apps import demo
from skeleton_diffusion.tasks.results import write_results


def test_demo_summary_prints_the_zero_velocity_line(tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "demo"
    ran: list[list[str]] = []

    def fake_run(cmds: list[list[str]]) -> int:  # what the quick commands leave behind, in miniature
        ran.extend(cmds)
        out.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        obs = rng.normal(scale=0.3, size=(4, 22, 3)).astype(np.float32)
        pred = (obs[-1] + np.linspace(0, 0.2, 6)[:, None, None] * rng.normal(size=(2, 1, 22, 3)))[None]
        np.savez(out / "pred_quick.npz", pred=pred.astype(np.float32), obs=obs[None], fps=np.float32(60),
                 skeleton=np.array("amass"))
        np.save(out / "obs_gt_future.npy", pred[0, 0].astype(np.float32))
        for name, ade in (("eval_quick", 0.544), ("eval_zero_velocity", 0.681)):
            write_results(out / name, {"metrics": {"ADE": ade, "FDE": ade + 0.2}, "num_windows": 3, "num_samples": 10,
                                       "seed": 0}, dataset="synthetic")
        return 0

    monkeypatch.setattr(demo, "run_commands", fake_run)
    monkeypatch.setattr(demo, "PRETRAINED_DIR", "trained_models/deleted_by_someone")
    assert demo.main(["--out", str(out)]) == 0
    evals = [c for c in ran if "eval.py" in c[1]]
    assert any("method_specs=zero_velocity" in c for c in evals)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("zero velocity")]
    assert len(lines) == 1 and "ADE 0.681" in lines[0] and "FDE 0.881" in lines[0]
