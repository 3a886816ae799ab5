"""CrossDiff (Ren et al.): the official system (``official``: 263-d/134-d features, checkpoint conversion) beside
our joint-position variant (``joints_network``, ``joints_sampling``, ``trainer``).

``convert(src, out_dir, *, config=None, force=False)`` and ``load_run(path, device="auto", **options)`` are the
hooks of the method registry."""

from __future__ import annotations

from skeleton_diffusion.methods.crossdiff.run import convert
from skeleton_diffusion.methods.crossdiff.sampling import load_run

__all__ = ["convert", "load_run"]
