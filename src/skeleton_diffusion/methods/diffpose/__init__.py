"""DiffPose (Gong et al., CVPR 2023) as its authors ran it: frame-based (GONGJIA0208/Diffpose) and video-based
(GONGJIA0208/Diffpose_video). See ``docs/methods/diffpose.md``.

* :mod:`.official` – the oracle facade (official layouts and key names);
* :mod:`.networks`, :mod:`.graph` – GCNdiff / GCNpose; :mod:`.diffusion` – schedule, loss, DDIM, test procedure;
* :mod:`.protocol` – the official per-action aggregation (with its defects behind switches);
* :mod:`.checkpoint` – ``convert`` / ``load_run`` for the released ``[state_dict, optimizer, epoch, step, ema]``
  checkpoints; :mod:`.video` – the video-based network and test procedure.
"""

from __future__ import annotations

__all__ = ["convert", "load_run"]


def __getattr__(name: str):
    if name in __all__:
        from skeleton_diffusion.methods.diffpose import checkpoint
        return getattr(checkpoint, name)
    raise AttributeError(name)
