"""Meshes from joints: fit an SMPL body (``smplx``) to 22-joint motion and export vertices / ``.obj`` files.

``load_body_model`` reads the user's SMPL file safely; ``fit_smpl`` fits pose, shape and translation to
``[T, 22, 3]`` joints (HumanML3D / AMASS order, metres); ``load_joint_sequence`` reads every motion file kind of
this package and the official MDM / CrossDiff outputs; ``save_mesh_npz`` / ``save_obj_frames`` write the result;
``render_mesh_gif`` draws the mesh beside the skeleton. CLI: ``python -m skeleton_diffusion.apps.fit_mesh``.
"""

from skeleton_diffusion.mesh.body_model import (BodyModelNotFoundError, default_model_dir, find_model_file,
                                                load_body_model, read_model_file)
from skeleton_diffusion.mesh.fitting import FitConfig, SMPLFit, chain_joints, fit_smpl, smpl_forward

__all__ = ["BodyModelNotFoundError", "default_model_dir", "find_model_file", "load_body_model", "read_model_file",
           "FitConfig", "SMPLFit", "chain_joints", "fit_smpl", "smpl_forward",
           "JointSequence", "load_joint_sequence", "save_mesh_npz", "save_obj_frames", "render_mesh_gif"]


def __getattr__(name: str):  # lazy: readers/writers/render pull in matplotlib / trimesh only when used
    if name in ("JointSequence", "load_joint_sequence"):
        from skeleton_diffusion.mesh import readers
        return getattr(readers, name)
    if name in ("save_mesh_npz", "save_obj_frames"):
        from skeleton_diffusion.mesh import writers
        return getattr(writers, name)
    if name == "render_mesh_gif":
        from skeleton_diffusion.mesh.render import render_mesh_gif
        return render_mesh_gif
    raise AttributeError(name)
