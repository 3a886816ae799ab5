"""Device selection. ``device='auto'`` picks CUDA when available, else CPU; nothing hardcodes ``.cuda()``."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Return a :class:`torch.device` for ``'auto'`` / ``None`` / ``'cpu'`` / ``'cuda[:i]'`` / ``'mps'``.

    ``'auto'`` (or ``None``) -> ``cuda`` if available, else ``cpu``. Asking for CUDA on a machine without it
    raises a clear error instead of failing later inside a kernel.
    """
    if device is None or (isinstance(device, str) and device.lower() == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={device!r} was requested but CUDA is not available on this machine; "
            "use device=auto or device=cpu."
        )
    return dev
