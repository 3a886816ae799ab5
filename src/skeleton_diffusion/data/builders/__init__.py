"""Raw data -> processed datasets (``data_3d_<name>.npz`` + side files).

``amass`` (+ MANO) with ``smplh_fk``, ``h36m``, ``freeman``, ``threedpw``, ``bvh`` (shared helpers in ``common``)
and the embedded procedural ``synthetic`` dataset. Each has a ``python -m skeleton_diffusion.data.create_<x>_dataset``
entry point.
"""
