"""Networks: static-graph layers, the recurrent skeleton autoencoder and the diffusion denoiser."""
