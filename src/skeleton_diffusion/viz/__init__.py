"""Headless visualisation: skeleton animations (GIF/MP4), key-frame grids, matrix plots, TensorBoard helpers.

Everything renders with matplotlib's Agg canvas (no display, no ``pyplot`` state) and returns ``uint8``
arrays or writes files atomically. Poses are ``[..., K, 3]`` metres with ``K = N`` (root dropped, metric
space, limbs from ``skeleton.node_limbs``) or ``K = J`` (root included, limbs from ``skeleton.limbs``).
"""

from skeleton_diffusion.viz._common import closest_sample_index
from skeleton_diffusion.viz.animation import add_video, animate_prediction, encode_gif, ffmpeg_executable, frames_to_video_tensor, render_prediction_frames, save_animation, save_gif, save_mp4, tensorboard_animation
from skeleton_diffusion.viz.plots import figure_to_image, image_to_tensor, plot_matrix, sample_grid_image, sample_grid_png, save_png, skeleton_figure

__all__ = [
    "add_video",
    "animate_prediction",
    "closest_sample_index",
    "encode_gif",
    "ffmpeg_executable",
    "figure_to_image",
    "frames_to_video_tensor",
    "image_to_tensor",
    "plot_matrix",
    "render_prediction_frames",
    "sample_grid_image",
    "sample_grid_png",
    "save_animation",
    "save_gif",
    "save_mp4",
    "save_png",
    "skeleton_figure",
    "tensorboard_animation",
]
