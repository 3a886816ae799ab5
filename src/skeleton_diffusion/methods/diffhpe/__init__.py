"""DiffHPE (Rommel et al., ICCVW 2023) as its authors ran it: ``valeoai/diffhpe`` @ 444aef9.

* :mod:`.official`: the oracle facade (schedules, ``load_diffhpe``, occlusion masks);
* :mod:`.model` / :mod:`.network` / :mod:`.mixste`: ``LiftingDiffusionModel``, ``LiftCTGCN``, the MixSTE conditioner;
* :mod:`.run`: ``convert`` (official ``model.pth`` -> run folder) and ``load_run`` (-> :class:`DiffHPELifter`);
* :mod:`.files`: safe readers (checkpoints, Hydra YAML, ``err_var``/``err_ave`` ``.npy``).
"""

from skeleton_diffusion.methods.diffhpe.run import DiffHPELifter, convert, load_run

__all__ = ["DiffHPELifter", "convert", "load_run"]
