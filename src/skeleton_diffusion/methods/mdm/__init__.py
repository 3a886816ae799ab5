"""MDM (Tevet et al., ICLR 2023) as its authors ran it: official network, diffusion, sampling, editing,
prefix completion, checkpoint conversion. Names the acceptance check calls live in :mod:`.official`."""

from skeleton_diffusion.methods.mdm.convert import convert, load_run

__all__ = ["convert", "load_run"]
