"""Text-to-motion evaluation as the field measures it: the official T2M evaluator of Guo et al. (as vendored by
MDM), its GloVe caption encoding, the HumanML3D eval crop and the official metric protocol.
The public names the acceptance checks call live in :mod:`skeleton_diffusion.tasks.generation.official`."""
