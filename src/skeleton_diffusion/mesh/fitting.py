"""SMPLify-style fitting of SMPL pose, shape and translation to 3D joint positions ``[T, 22, 3]``.

The 22 joints are the first 22 SMPL joints in SMPL order (HumanML3D / AMASS order, any up axis, metres). The
fit minimises, per sequence,

``mean_t sum_j |J_j(θ_t, β) + τ_t − x_tj|² / σ²  +  w_pose |θ_t|²  +  w_angle Σ exp(±θ_knee/elbow)²
  +  w_smooth mean_t (|θ_{t+1} − θ_t|² + |ω_{t+1} − ω_t|²)  +  w_shape |β|²``

(θ body pose, ω global orientation, both axis-angle; τ translation; β shared shape). SMPL joints depend on
pose and shape only through the kinematic chain (pose blend shapes move vertices, not joints), so the
optimisation runs on the chain itself (``smplx.lbs``), batched over frames, and the mesh is built once at the
end with the full ``smplx`` SMPL forward. Schedule: shape from median bone lengths; per-frame global
orientation and translation by a rigid (Kabsch) fit of the torso; then windows of frames, each warm-started from
the last pose of the previous window and solved by batched Levenberg-Marquardt (every frame of the window at
once, exact analytic Jacobian; the smoothness term uses the neighbours' current values); then the shape against
all frames (L-BFGS) and one more Levenberg-Marquardt pass over all frames.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from skeleton_diffusion.mesh.body_model import NUM_BODY_JOINTS
from skeleton_diffusion.utils.errors import InputError

__all__ = ["FitConfig", "SMPLFit", "fit_smpl", "smpl_forward", "chain_joints"]

_TORSO = (0, 1, 2, 3, 6, 9, 12, 13, 14, 16, 17)
# SMPLify's bending prior: (body-pose row = SMPL joint − 1, axis-angle component, sign): elbows and knees
_ANGLE_PRIOR = ((17, 1, 1.0), (18, 1, -1.0), (3, 0, -1.0), (4, 0, -1.0))


@dataclass
class FitConfig:
    """Weights (dimensionless, joint errors in units of ``joint_sigma`` metres), the window length (frames) and
    iteration counts (Levenberg-Marquardt for poses: first window, later windows, final pass; L-BFGS for shape)."""

    joint_sigma: float = 0.01
    pose_prior: float = 0.02
    angle_prior: float = 0.02
    smooth: float = 0.2
    shape_prior: float = 0.01
    window: int = 32
    iters_first: int = 20
    iters: int = 10
    refine_iters: int = 10
    shape_iters: int = 50
    fit_shape: bool = True


@dataclass
class SMPLFit:
    """SMPL parameters fitted to ``target`` plus the fitted joints and errors (metres; errors in mm)."""

    betas: np.ndarray            # [B] shared by all frames
    global_orient: np.ndarray    # [T, 3] axis-angle
    body_pose: np.ndarray        # [T, 69] axis-angle of SMPL joints 1..23 (22, 23 = hands, left at 0)
    transl: np.ndarray           # [T, 3] metres
    target: np.ndarray           # [T, 22, 3] the joints that were fitted
    joints: np.ndarray           # [T, 22, 3] the fitted body's joints (full smplx forward)
    per_frame_error_mm: np.ndarray  # [T] mean joint distance per frame
    mean_error_mm: float
    seconds: float
    vertices: np.ndarray | None = None  # [T, V, 3]
    faces: np.ndarray | None = None     # [F, 3]
    info: dict[str, Any] = field(default_factory=dict)


def _rodrigues(v: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``[..., 3]`` -> rotation matrices ``[..., 3, 3]`` (smooth at 0; vmap/jacfwd friendly)."""
    theta = torch.sqrt((v * v).sum(-1, keepdim=True) + 1e-16)
    k = v / theta
    zero = torch.zeros_like(k[..., 0])
    kx, ky, kz = k.unbind(-1)
    skew = torch.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], -1).reshape(*k.shape[:-1], 3, 3)
    s, c = torch.sin(theta)[..., None], torch.cos(theta)[..., None]
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand(skew.shape)
    return eye + s * skew + (1 - c) * (skew @ skew)


class _Chain:
    """The first 22 SMPL joints as a function of (β, ω, θ, τ): forward kinematics over the model's kinematic
    tree from the rest joints its regressor gives (the same joints ``smplx``'s SMPL forward returns)."""

    def __init__(self, model: Any, dtype: torch.dtype, device: torch.device) -> None:
        reg = model.J_regressor.detach().to(device, dtype)
        self.j_template = reg @ model.v_template.detach().to(device, dtype)                       # [24, 3]
        self.j_shape = torch.einsum("jv,vck->jck", reg, model.shapedirs.detach().to(device, dtype))  # [24, 3, B]
        self.parents = [int(p) for p in model.parents.detach().cpu()[:NUM_BODY_JOINTS]]
        if any(p >= j for j, p in enumerate(self.parents[1:], 1)):
            raise InputError("the body model's kinematic tree must list parents before children (SMPL order)")
        self.num_betas = self.j_shape.shape[-1]
        self.dtype, self.device = dtype, device

    def rest(self, betas: torch.Tensor) -> torch.Tensor:
        return (self.j_template + self.j_shape @ betas)[:NUM_BODY_JOINTS]                        # [22, 3]

    def posed(self, rest: torch.Tensor, q: torch.Tensor, *, with_rotations: bool = False) -> Any:
        """``q [..., 69]`` = (ω 3, θ 63, τ 3) -> joints ``[..., 22, 3]`` (and global rotations ``[..., 22, 3, 3]``)."""
        rot = _rodrigues(q[..., : 3 * NUM_BODY_JOINTS].reshape(*q.shape[:-1], NUM_BODY_JOINTS, 3))
        g_rot, g_pos = [rot[..., 0, :, :]], [rest[0].expand(*q.shape[:-1], 3)]
        for j in range(1, NUM_BODY_JOINTS):
            p = self.parents[j]
            g_pos.append(g_pos[p] + (g_rot[p] @ (rest[j] - rest[p])[:, None])[..., 0])
            g_rot.append(g_rot[p] @ rot[..., j, :, :])
        joints = torch.stack(g_pos, -2) + q[..., None, 3 * NUM_BODY_JOINTS:]
        return (joints, torch.stack(g_rot, -3)) if with_rotations else joints

    def ancestry(self) -> torch.Tensor:
        """``[22, 22]`` with 1 where column k is joint j's ancestor or j itself (k moves j when it rotates)."""
        anc = torch.zeros(NUM_BODY_JOINTS, NUM_BODY_JOINTS, dtype=self.dtype, device=self.device)
        for j in range(NUM_BODY_JOINTS):
            k = j
            while k >= 0:
                anc[j, k] = 1.0
                k = self.parents[k] if k > 0 else -1
        return anc

    def __call__(self, betas: torch.Tensor, orient: torch.Tensor, pose: torch.Tensor,
                 transl: torch.Tensor) -> torch.Tensor:
        q = torch.cat([orient, pose.reshape(len(orient), -1), transl], -1)
        return self.posed(self.rest(betas), q)


def chain_joints(model: Any, betas: Any, global_orient: Any, body_pose: Any, transl: Any) -> torch.Tensor:
    """The 22 body joints ``[T, 22, 3]`` from the kinematic chain alone (float64; the fitting's forward)."""
    chain = _Chain(model, torch.float64, torch.device("cpu"))
    f = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float64)  # noqa: E731
    pose = f(body_pose).reshape(len(f(global_orient)), -1)[:, : 3 * (NUM_BODY_JOINTS - 1)]
    return chain(f(betas), f(global_orient), pose, f(transl))


def _kabsch(src: torch.Tensor, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotations ``[T, 3, 3]`` and translations ``[T, 3]`` with ``dst ≈ R src + t`` (``src [K, 3]``, ``dst [T, K, 3]``)."""
    cs, cd = src.mean(0), dst.mean(1)
    h = (src - cs).T[None] @ (dst - cd[:, None])                    # [T, 3, 3]
    u, _, vt = torch.linalg.svd(h)
    d = torch.sign(torch.linalg.det(vt.transpose(1, 2) @ u.transpose(1, 2)))
    diag = torch.ones(len(d), 3, dtype=src.dtype, device=src.device)
    diag[:, 2] = d
    r = vt.transpose(1, 2) @ torch.diag_embed(diag) @ u.transpose(1, 2)
    return r, cd - (r @ cs[:, None])[..., 0]


def _rotvec(r: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``[T, 3, 3]`` -> axis-angle ``[T, 3]`` (via scipy, exact near 0 and π)."""
    from scipy.spatial.transform import Rotation

    return torch.as_tensor(Rotation.from_matrix(r.detach().cpu().numpy()).as_rotvec(), dtype=r.dtype,
                           device=r.device)


def _lbfgs(params: list[torch.Tensor], loss_fn: Any, iters: int) -> float:
    if iters <= 0:
        return float("nan")
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=int(iters), history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-10, tolerance_change=1e-14)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    return float(opt.step(closure).detach())


def _skew(v: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros_like(v[..., 0])
    x, y, z = v.unbind(-1)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*v.shape[:-1], 3, 3)


def _right_jacobian(v: torch.Tensor) -> torch.Tensor:
    """SO(3) right Jacobian ``[..., 3, 3]`` of axis-angle ``v``: R(v + dv) = R(v) exp(J_r(v) dv)."""
    t2 = (v * v).sum(-1)[..., None, None]
    t = torch.sqrt(t2 + 1e-24)
    small = t2 < 1e-8
    a = torch.where(small, 0.5 - t2 / 24, (1 - torch.cos(t)) / torch.where(small, 1.0, t2))
    b = torch.where(small, 1.0 / 6 - t2 / 120, (t - torch.sin(t)) / torch.where(small, 1.0, t2 * t))
    k = _skew(v)
    return torch.eye(3, dtype=v.dtype, device=v.device) - a * k + b * (k @ k)


class _Residuals:
    """Per-frame residuals whose squared sum is the frame's share of the objective (neighbour poses fixed), and
    their exact Jacobian: d p_j / d θ_k = −[p_j − p_k]× G_k J_r(θ_k) for every ancestor k of joint j."""

    def __init__(self, chain: _Chain, cfg: FitConfig) -> None:
        self.chain, self.cfg = chain, cfg
        self.cols = [3 + 3 * r + c for r, c, _ in _ANGLE_PRIOR]
        self.sign = torch.tensor([s for _, _, s in _ANGLE_PRIOR], dtype=chain.dtype, device=chain.device)
        self.anc = chain.ancestry()

    def __call__(self, q: torch.Tensor, rest: torch.Tensor, target: torch.Tensor, prev: torch.Tensor,
                 nxt: torch.Tensor, *, jacobian: bool = False) -> Any:
        """``q [N, 69]``, ``target [N, 22, 3]``; ``prev``/``nxt [N, 70]`` = neighbour q and a 0/1 presence flag.
        Returns residuals ``[N, M]`` (and the Jacobian ``[N, M, 69]``)."""
        cfg, n_rot, n = self.cfg, 3 * NUM_BODY_JOINTS, len(q)
        joints, g_rot = self.chain.posed(rest, q, with_rotations=True)
        data = (joints - target).reshape(n, -1) / cfg.joint_sigma
        w_pose, w_angle, w_s = math.sqrt(cfg.pose_prior), math.sqrt(cfg.angle_prior), math.sqrt(cfg.smooth)
        prior = w_pose * q[:, 3:n_rot]
        ex = torch.exp(q[:, self.cols] * self.sign)
        sm_prev = w_s * prev[:, -1:] * (q[:, :n_rot] - prev[:, :n_rot])
        sm_next = w_s * nxt[:, -1:] * (q[:, :n_rot] - nxt[:, :n_rot])
        r = torch.cat([data, prior, w_angle * ex, sm_prev, sm_next], 1)
        if not jacobian:
            return r
        jr = _right_jacobian(q[:, :n_rot].reshape(n, NUM_BODY_JOINTS, 3))
        a = g_rot @ jr                                                           # [N, K, 3, 3]
        diff = joints[:, :, None] - joints[:, None, :]                          # [N, J, K, 3]
        blocks = -(_skew(diff) @ a[:, None]) * self.anc[None, :, :, None, None]  # [N, J, K, 3, 3]
        jac = torch.zeros(n, r.shape[1], n_rot + 3, dtype=q.dtype, device=q.device)
        jac[:, :n_rot, :n_rot] = blocks.permute(0, 1, 3, 2, 4).reshape(n, n_rot, n_rot) / cfg.joint_sigma
        jac[:, :n_rot, n_rot:] = torch.eye(3, dtype=q.dtype, device=q.device).repeat(NUM_BODY_JOINTS, 1) \
            / cfg.joint_sigma
        rows = n_rot + torch.arange(n_rot - 3, device=q.device)
        jac[:, rows, rows - n_rot + 3] = w_pose
        base = 2 * n_rot - 3
        for i, col in enumerate(self.cols):
            jac[:, base + i, col] = w_angle * ex[:, i] * self.sign[i]
        base += len(self.cols)
        idx = torch.arange(n_rot, device=q.device)
        jac[:, base + idx, idx] = w_s * prev[:, -1:]
        jac[:, base + n_rot + idx, idx] = w_s * nxt[:, -1:]
        return r, jac

    @staticmethod
    def _neighbours(q: torch.Tensor, before: torch.Tensor | None,
                    after: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        one = torch.ones(len(q), 1, dtype=q.dtype, device=q.device)
        prev = torch.cat([q.roll(1, 0), one], 1)
        nxt = torch.cat([q.roll(-1, 0), one], 1)
        prev[0] = torch.cat([before, one[0]]) if before is not None else 0.0
        nxt[-1] = torch.cat([after, one[0]]) if after is not None else 0.0
        return prev, nxt

    def solve(self, q: torch.Tensor, rest: torch.Tensor, target: torch.Tensor, iters: int,
              before: torch.Tensor | None = None, after: torch.Tensor | None = None) -> torch.Tensor:
        """Levenberg-Marquardt on every frame at once (``q [N, 69]``, ``target [N, 22, 3]``); the neighbours of a
        frame (for the smoothness term) are the other frames' current values, ``before``/``after`` at the ends."""
        lam = torch.full((len(q),), 1e-3, dtype=q.dtype, device=q.device)
        eye = torch.eye(q.shape[1], dtype=q.dtype, device=q.device)
        for _ in range(int(iters)):
            prev, nxt = self._neighbours(q, before, after)
            r, jac = self(q, rest, target, prev, nxt, jacobian=True)
            jtj = jac.transpose(1, 2) @ jac
            g = (jac.transpose(1, 2) @ r[..., None])[..., 0]
            damp = lam[:, None, None] * (torch.diagonal(jtj, dim1=1, dim2=2)[..., None] * eye + 1e-6 * eye)
            q_new = q + torch.linalg.solve(jtj + damp, -g)
            cost, cost_new = (r ** 2).sum(1), (self(q_new, rest, target, prev, nxt) ** 2).sum(1)
            ok = cost_new <= cost
            q = torch.where(ok[:, None], q_new, q)
            lam = torch.where(ok, lam * 0.3, lam * 10.0).clamp(1e-9, 1e9)
            if bool(((cost - cost_new).clamp(min=0) <= 1e-10 * (1 + cost)).all()):
                break
        return q


def _fit_shape(chain: _Chain, target: torch.Tensor, cfg: FitConfig) -> torch.Tensor:
    """β whose rest-pose bone lengths match the median bone lengths of ``target``."""
    betas = torch.zeros(chain.num_betas, dtype=chain.dtype, device=chain.device, requires_grad=True)
    if not cfg.fit_shape:
        return betas.detach()
    par = torch.tensor(chain.parents[1:], device=chain.device)
    lengths = (target[:, 1:] - target[:, par]).norm(dim=-1).median(0).values

    def loss() -> torch.Tensor:
        rest = chain.rest(betas)
        got = (rest[1:] - rest[par]).norm(dim=-1)
        return ((got - lengths) ** 2).sum() / cfg.joint_sigma ** 2 + cfg.shape_prior * (betas ** 2).sum()

    with torch.enable_grad():
        _lbfgs([betas], loss, cfg.shape_iters)
    return betas.detach()


def _refine_shape(chain: _Chain, betas: torch.Tensor, q: torch.Tensor, target: torch.Tensor,
                  cfg: FitConfig) -> torch.Tensor:
    """β minimising the joint error of all frames with their poses held (L-BFGS)."""
    b = betas.clone().requires_grad_(True)

    def loss() -> torch.Tensor:
        err = ((chain.posed(chain.rest(b), q) - target) ** 2).sum((1, 2)).mean() / cfg.joint_sigma ** 2
        return err + cfg.shape_prior * (b ** 2).sum()

    with torch.enable_grad():
        _lbfgs([b], loss, cfg.shape_iters)
    return b.detach()


def fit_smpl(joints: Any, model: Any, config: FitConfig | None = None, *, with_vertices: bool = True,
             chunk: int = 64) -> SMPLFit:
    """Fit ``model`` (a :class:`smplx.SMPL`, see :func:`~skeleton_diffusion.mesh.body_model.load_body_model`) to
    ``joints [T, 22, 3]`` metres; runs on the model's device. Returns the parameters, the fitted joints and
    vertices (``with_vertices``) and the mean joint error in mm."""
    cfg = config or FitConfig()
    x = np.asarray(joints, dtype=np.float64)
    if x.ndim != 3 or x.shape[1:] != (NUM_BODY_JOINTS, 3) or x.shape[0] < 1:
        raise InputError(f"joints must be [T, {NUM_BODY_JOINTS}, 3] metres (first 22 SMPL joints), got {x.shape}")
    if not np.isfinite(x).all():
        raise InputError("joints contain NaN or inf values; fitting needs finite positions")
    start = time.perf_counter()
    device = model.J_regressor.device
    dtype = torch.float64 if device.type != "mps" else torch.float32
    chain = _Chain(model, dtype, device)
    target = torch.as_tensor(x, dtype=dtype, device=device)
    t_len, n_rot = len(target), 3 * NUM_BODY_JOINTS
    with torch.no_grad():
        betas = _fit_shape(chain, target, cfg)
        torso = list(_TORSO)
        rest = chain.rest(betas)
        rot, trans = _kabsch(rest[torso], target[:, torso])
        q_all = torch.zeros(t_len, n_rot + 3, dtype=dtype, device=device)
        q_all[:, :3] = _rotvec(rot)
        q_all[:, n_rot:] = trans - rest[0] + (rot @ rest[0][:, None])[..., 0]
        residuals = _Residuals(chain, cfg)
        window = max(1, int(cfg.window))
        for w0 in range(0, t_len, window):  # windows of frames, warm-started from the previous window
            sl = slice(w0, min(t_len, w0 + window))
            if w0 > 0:
                q_all[sl, 3:n_rot] = q_all[w0 - 1, 3:n_rot]
            q_all[sl] = residuals.solve(q_all[sl], rest, target[sl], cfg.iters_first if w0 == 0 else cfg.iters,
                                        before=None if w0 == 0 else q_all[w0 - 1])
        if cfg.fit_shape and cfg.refine_iters > 0:  # shape against all frames, then every frame once more
            betas = _refine_shape(chain, betas, q_all, target, cfg)
            rest = chain.rest(betas)
        q_all = residuals.solve(q_all, rest, target, cfg.refine_iters)
    final = chain.posed(rest, q_all)
    b, o, tr = betas, q_all[:, :3], q_all[:, n_rot:]
    p = q_all[:, 3:n_rot]
    final_loss = float(((final - target) ** 2).sum((1, 2)).mean())
    body_pose = torch.zeros(t_len, 69, dtype=dtype, device=device)
    body_pose[:, : 3 * (NUM_BODY_JOINTS - 1)] = p.detach().reshape(t_len, -1)
    fit = SMPLFit(betas=b.detach().cpu().numpy().astype(np.float32),
                  global_orient=o.detach().cpu().numpy().astype(np.float32),
                  body_pose=body_pose.cpu().numpy().astype(np.float32),
                  transl=tr.detach().cpu().numpy().astype(np.float32), target=x.astype(np.float32),
                  joints=np.zeros_like(x, dtype=np.float32), per_frame_error_mm=np.zeros(t_len, np.float32),
                  mean_error_mm=float("nan"), seconds=0.0, info={"final_loss": final_loss})
    verts, fitted = smpl_forward(model, fit, chunk=chunk, with_vertices=with_vertices)
    fit.joints = fitted
    fit.per_frame_error_mm = (np.linalg.norm(fitted - x, axis=-1).mean(-1) * 1000.0).astype(np.float32)
    fit.mean_error_mm = float(fit.per_frame_error_mm.mean())
    fit.vertices = verts
    fit.faces = np.asarray(model.faces, dtype=np.int64)
    fit.seconds = time.perf_counter() - start
    return fit


@torch.no_grad()
def smpl_forward(model: Any, fit: SMPLFit, *, chunk: int = 64,
                 with_vertices: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """Full ``smplx`` forward of the fitted parameters: vertices ``[T, V, 3]`` (or None) and joints ``[T, 22, 3]``."""
    device = model.J_regressor.device
    t_len = len(fit.global_orient)
    f = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)  # noqa: E731
    verts, joints = [], []
    for s in range(0, t_len, max(1, chunk)):
        e = min(t_len, s + max(1, chunk))
        out = model(betas=f(fit.betas)[None].expand(e - s, -1), global_orient=f(fit.global_orient[s:e]),
                    body_pose=f(fit.body_pose[s:e]), transl=f(fit.transl[s:e]), return_verts=with_vertices)
        joints.append(out.joints[:, :NUM_BODY_JOINTS].cpu().numpy())
        if with_vertices:
            verts.append(out.vertices.cpu().numpy())
    return (np.concatenate(verts) if with_vertices else None), np.concatenate(joints)
