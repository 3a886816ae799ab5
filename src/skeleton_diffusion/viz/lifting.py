"""Lifting picture: the 2D input (missing joints marked), K 3D hypotheses and the 3D ground truth (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.utils.io import atomic_path

__all__ = ["draw_lifting", "plot_lifting_example"]


def draw_lifting(path: str | Path, pose_2d: np.ndarray, mask: np.ndarray, hypotheses: np.ndarray, gt: np.ndarray,
                 limbs: Sequence[tuple[int, int]], title: str = "") -> Path:
    """Write a PNG: ``pose_2d [J, 2]`` (normalised, y down) with ``mask [J]``, ``hypotheses [K, J, 3]`` and
    ``gt [J, 3]`` (camera frame, metres; drawn with y up). Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(9, 4.2))
    ax = fig.add_subplot(1, 2, 1)
    for a, b in limbs:
        if mask[a] > 0 and mask[b] > 0:
            ax.plot(pose_2d[[a, b], 0], -pose_2d[[a, b], 1], "k-", lw=2)
    vis = mask > 0
    ax.scatter(pose_2d[vis, 0], -pose_2d[vis, 1], c="k", s=12, label="2D input")
    ax.set_title("2D input (missing joints not drawn)")
    ax.set_aspect("equal")
    ax.axis("off")
    ax3 = fig.add_subplot(1, 2, 2, projection="3d")

    def show(p: np.ndarray, color: str, lw: float, alpha: float, label: str | None) -> None:
        for n, (a, b) in enumerate(limbs):
            ax3.plot(p[[a, b], 0], p[[a, b], 2], -p[[a, b], 1], color=color, lw=lw, alpha=alpha,
                     label=label if n == 0 else None)

    for k, h in enumerate(hypotheses):
        show(h, "tab:blue", 1.0, 0.5, "hypotheses" if k == 0 else None)
    show(gt, "tab:red", 2.5, 1.0, "ground truth")
    pts = np.concatenate([hypotheses.reshape(-1, 3), gt])
    lo, hi = pts.min(0), pts.max(0)
    ax3.set_box_aspect((hi[0] - lo[0] + 1e-3, hi[2] - lo[2] + 1e-3, hi[1] - lo[1] + 1e-3))  # metric aspect
    ax3.set_xlabel("x")
    ax3.set_ylabel("z (depth)")
    ax3.set_zlabel("-y")
    ax3.legend(loc="upper right", fontsize=8)
    ax3.set_title(title or f"{len(hypotheses)} hypotheses vs GT")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


@torch.no_grad()
def plot_lifting_example(model: Any, windows: Any, occlusion: str, path: str | Path, *, num_samples: int = 5,
                         index: int | None = None, seed: int = 0, device: torch.device | str = "cpu") -> Path:
    """Draw the middle frame of one test window (``index``; default the middle window) under ``occlusion``."""
    from skeleton_diffusion.data.augment.corruption import corrupt_2d

    skel = get_skeleton(windows.data.skeleton)
    i = len(windows) // 2 if index is None else int(index)
    p2, p3, _ = windows[i]
    gen = torch.Generator().manual_seed(int(seed))
    p2c, mask = corrupt_2d(p2[None], occlusion, skel.joint_names, generator=gen)
    hyps = model.predict(p2c.to(device), mask.to(device), num_samples, generator=gen)[0].cpu()   # [K, F, J, 3]
    f = p3.shape[0] // 2
    gt = (p3 - p3[:, :1])[f].numpy()
    return draw_lifting(path, p2c[0, f].numpy(), mask[0, f].numpy(), hyps[:, f].numpy(), gt, skel.limbs,
                        title=f"{model.method} ({occlusion}): {num_samples} hypotheses vs GT")
