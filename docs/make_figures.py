"""Regenerate the skeleton pictures of docs/joint_orders.md: ``docs/skeletons/<name>.png``.

Each picture is a front view of one pose with every joint's index next to it and the ``index: name`` list.
The AMASS / AMASS-MANO pose is the first frame of the official example observation
(``figures/example_obs_amass.npy`` of the official repository, ``[1, 30, 52, 3]`` metres, Z-up); the H36M and
FreeMan poses are derived from it by placing their joints at the corresponding body points (nose, eyes and
ears are offsets from the SMPL head). The AMASS-MANO picture uses a built-in approximate A-pose with schematic,
spread fingers so that all hand indices are readable (``--real-hands`` draws the example pose instead, whose
hands are foreshortened in a front view). Without the file the built-in A-pose is used for every picture.

Usage::

    python docs/make_figures.py [--example PATH/example_obs_amass.npy] [--out docs/skeletons]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from skeleton_diffusion.skeletons.lookup import get_skeleton
from skeleton_diffusion.viz.plots import skeleton_figure

HERE = Path(__file__).resolve().parent
DEFAULT_EXAMPLE = HERE.parent.parent / "shared" / "reference" / "figures" / "example_obs_amass.npy"

# Approximate SMPL-22 A-pose (metres, Z-up, facing -y, root at the origin), AMASS joint order.
_APOSE_22 = np.array([
    [0.00, 0.00, 0.00], [0.07, 0.00, -0.09], [-0.07, 0.00, -0.09], [0.00, 0.01, 0.11],
    [0.10, 0.00, -0.48], [-0.10, 0.00, -0.48], [0.00, 0.01, 0.24], [0.09, 0.02, -0.88],
    [-0.09, 0.02, -0.88], [0.00, 0.01, 0.30], [0.10, -0.10, -0.94], [-0.10, -0.10, -0.94],
    [0.00, 0.00, 0.50], [0.08, 0.00, 0.42], [-0.08, 0.00, 0.42], [0.00, -0.03, 0.62],
    [0.18, 0.00, 0.42], [-0.18, 0.00, 0.42], [0.30, 0.00, 0.19], [-0.30, 0.00, 0.19],
    [0.36, -0.02, -0.04], [-0.36, -0.02, -0.04],
])


def _fingers(pose22: np.ndarray) -> np.ndarray:
    """30 schematic finger joints (MANO order: index, middle, pinky, ring, thumb; 3 each; left hand first)
    hanging from the wrists along the forearms and spread in the anatomical position (palms forward, thumbs
    pointing away from the body)."""
    left = pose22[1] - pose22[2]
    out = []
    for wrist, elbow, lateral in ((20, 18, left), (21, 19, -left)):
        d = pose22[wrist] - pose22[elbow]
        d /= np.linalg.norm(d)
        side = lateral - lateral.dot(d) * d
        side /= np.linalg.norm(side)
        for k, spread in enumerate((0.012, 0.0, -0.024, -0.012, 0.035)):  # index middle pinky ring thumb
            base = pose22[wrist] + d * (0.07 if k < 4 else 0.02) + side * spread * 1.5
            for s in range(3):
                out.append(base + d * 0.025 * s + (side * 0.012 * s if k == 4 else 0.0))
    return np.asarray(out)


def example_pose(path: Path | None, real_hands: bool = False) -> np.ndarray:
    """52-joint AMASS-MANO pose ``[52, 3]`` (root at the origin, Z-up). The fingers are schematic (spread
    along the forearms, easier to read) unless ``real_hands``."""
    if path is not None and path.is_file():
        arr = np.load(path)
        arr = arr.reshape(-1, arr.shape[-2], 3)[0]
        if arr.shape[0] >= 52 and real_hands:
            return arr[:52] - arr[:1]
        pose22 = arr[:22] - arr[:1]
    else:
        pose22 = _APOSE_22.copy()
    return np.concatenate([pose22, _fingers(pose22)], axis=0)


def _frame(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left, forward, up) unit vectors of a Z-up AMASS pose (forward = left x up)."""
    up = np.array([0.0, 0.0, 1.0])
    left = p[1] - p[2]
    left = left - left.dot(up) * up
    left /= np.linalg.norm(left)
    return left, np.cross(left, up), up


def h36m_pose(p: np.ndarray) -> np.ndarray:
    """H36M-17 joints placed on the corresponding points of an AMASS pose ``p [>=22, 3]``."""
    _, fwd, up = _frame(p)
    head = p[15]
    return np.stack([
        p[0], p[2], p[5], p[8], p[1], p[4], p[7],
        (p[3] + p[6]) / 2,  # Torso (mid spine)
        (p[9] + p[12]) / 2,  # Neck / thorax
        head + 0.09 * fwd - 0.02 * up,  # Nose
        head + 0.12 * up,  # Head (top)
        p[16], p[18], p[20], p[17], p[19], p[21],
    ])


def freeman_pose(p: np.ndarray) -> np.ndarray:
    """FreeMan-18 joints (root = mid-hip, COCO face points) placed on an AMASS pose ``p [>=22, 3]``."""
    left, fwd, up = _frame(p)
    head = p[15] + 0.03 * up
    return np.stack([
        (p[1] + p[2]) / 2, p[1], p[2], p[4], p[5], p[7], p[8],
        head + 0.10 * fwd,  # Nose
        head + 0.08 * fwd + 0.04 * up + 0.035 * left,  # LEye
        head + 0.08 * fwd + 0.04 * up - 0.035 * left,  # REye
        head + 0.02 * up + 0.075 * left,  # LEar
        head + 0.02 * up - 0.075 * left,  # REar
        p[16], p[17], p[18], p[19], p[20], p[21],
    ])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--example", type=Path, default=DEFAULT_EXAMPLE, help="example_obs_amass.npy (optional)")
    ap.add_argument("--out", type=Path, default=HERE / "skeletons")
    ap.add_argument("--real-hands", action="store_true", help="use the example's finger joints as they are")
    args = ap.parse_args(argv)
    p52 = example_pose(args.example, args.real_hands)
    mano = get_skeleton("amass-mano")
    figures = {
        "amass": (get_skeleton("amass"), p52[:22], {}),
        "amass-mano": (mano, p52 if args.real_hands else example_pose(None), {
            "zoom_joints": [[20, *range(22, 37)], [21, *range(37, 52)]],
            "zoom_titles": ["left hand (20-36)", "right hand (21, 37-51)"],
        }),
        "h36m": (get_skeleton("h36m"), h36m_pose(p52), {}),
        "freeman": (get_skeleton("freeman"), freeman_pose(p52), {
            "zoom_joints": [[7, 8, 9, 10, 11]], "zoom_titles": ["face (7-11)"],
        }),
    }
    for name, (sk, pose, kw) in figures.items():
        path = args.out / f"{name}.png"
        skeleton_figure(sk, pose, path, title=f"{name}: {sk.num_joints} joints (index 0 = root)", **kw)
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
