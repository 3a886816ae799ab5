"""Plug-and-play bridge to ``denoising_diffusion_pytorch.Trainer1D`` / ``Dataset1D`` (spec §4.10).

:func:`load_trainer1d` imports the lucidrains 1-D module. On machines where ``import denoising_diffusion_pytorch``
fails (its package ``__init__`` imports the 2-D code, which needs a torchvision build whose C++ operators match
torch; e.g. a CUDA torchvision wheel next to a CPU torch), the 1-D module is loaded on its own: an empty
package module whose ``__path__`` is the installed folder is registered first, so the package ``__init__``
never runs. :class:`Trainer1DAdapter` gives our diffusion the contract ``Trainer1D`` expects: ``model(x)``
returns a scalar loss and ``sample(batch_size=n)`` returns a tensor.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any, Optional

import torch
from torch import Tensor, nn

from skeleton_diffusion.utils.errors import ConfigError

from skeleton_diffusion.diffusion.base import GaussianDiffusionBase

__all__ = ["load_trainer1d", "Trainer1DAdapter"]

_PACKAGE = "denoising_diffusion_pytorch"
_MODULE_1D = "denoising_diffusion_pytorch.denoising_diffusion_pytorch_1d"


def _import_1d_without_package_init() -> types.ModuleType:
    spec = importlib.util.find_spec(_PACKAGE)  # locates the package without executing its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("denoising-diffusion-pytorch is not installed: pip install denoising-diffusion-pytorch")
    current = sys.modules.get(_PACKAGE)
    if current is None or not hasattr(current, "__path__"):
        package = types.ModuleType(_PACKAGE)
        package.__path__ = list(spec.submodule_search_locations)
        package.__file__ = spec.origin
        package.__spec__ = spec
        package.__package__ = _PACKAGE
        sys.modules[_PACKAGE] = package
    return importlib.import_module(_MODULE_1D)


def load_trainer1d() -> tuple[type, type]:
    """Return ``(Trainer1D, Dataset1D)`` from denoising-diffusion-pytorch (see module docstring)."""
    module = sys.modules.get(_MODULE_1D)
    if module is None:
        try:
            importlib.import_module(_PACKAGE)
        except ModuleNotFoundError as err:
            if err.name == _PACKAGE:
                raise ConfigError("denoising-diffusion-pytorch is not installed: "
                                  "pip install denoising-diffusion-pytorch") from err
            raise
        except Exception:  # e.g. RuntimeError "operator torchvision::nms does not exist"
            for name in [m for m in sys.modules if m == _PACKAGE or m.startswith(_PACKAGE + ".")]:
                sys.modules.pop(name, None)
            _import_1d_without_package_init()
        module = importlib.import_module(_MODULE_1D)
    return module.Trainer1D, module.Dataset1D


class Trainer1DAdapter(nn.Module):
    """Wrap a diffusion for lucidrains ``Trainer1D``.

    * ``forward(x [B, C, D])`` -> scalar ``mean(loss · weight)`` (the official k = 1 training loss; pass
      ``apply_loss_weight=False`` for the plain mean).
    * ``sample(batch_size=n)`` -> ``[n, C, D]`` tensor (unconditional: Trainer1D has no conditioning path).
    * exposes ``channels``, ``seq_length``, ``num_timesteps``, ``is_ddim_sampling``, ``self_condition``.

    The wrapped diffusion is ``adapter.diffusion``; checkpoints written by Trainer1D hold its state dict under
    the ``diffusion.`` prefix (``adapter.diffusion.state_dict()`` gives the bare one).
    """

    def __init__(self, diffusion: GaussianDiffusionBase, apply_loss_weight: bool = True,
                 sample_kwargs: Optional[dict[str, Any]] = None) -> None:
        super().__init__()
        if not isinstance(diffusion, GaussianDiffusionBase):
            raise ConfigError(f"Trainer1DAdapter wraps a skeleton_diffusion diffusion, got {type(diffusion).__name__}")
        if diffusion.condition:
            raise ConfigError("Trainer1D cannot pass a condition: build the diffusion with an unconditional model "
                              "(cond_dim=0, diffusion_conditioning=False)")
        self.diffusion = diffusion
        self.apply_loss_weight = apply_loss_weight
        self.sample_kwargs = dict(sample_kwargs or {})

    channels = property(lambda self: self.diffusion.channels)
    seq_length = property(lambda self: self.diffusion.seq_length)
    num_timesteps = property(lambda self: self.diffusion.num_timesteps)
    is_ddim_sampling = property(lambda self: self.diffusion.is_ddim_sampling)
    self_condition = property(lambda self: self.diffusion.self_condition)

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        out = self.diffusion(x, *args, **kwargs)
        return out.weighted_mean() if self.apply_loss_weight else out.loss.mean()

    @torch.no_grad()
    def sample(self, batch_size: int = 16, **kwargs: Any) -> Tensor:
        return self.diffusion.sample(batch_size=batch_size, **{**self.sample_kwargs, **kwargs})
