"""Training infrastructure shared by the AE and diffusion trainers (PyTorch-Ignite).

Generic, model-agnostic pieces (spec §3.5, §6.3, §7): the official lr schedule, EMA, AE horizon
curriculum, RNG capture/restore, a resumable sampler, atomic checkpoints with exact resume, run folders and
resume resolution, TensorBoard / progress helpers and handler wiring. The trainers themselves live in
``autoencoder_trainer.py`` / ``diffusion_trainer.py``.
"""
