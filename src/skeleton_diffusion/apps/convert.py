"""Convert an official release file of any registered method into one of our run folders.

    python -m skeleton_diffusion.apps.convert --method skeleton_diffusion <.../diffusion/checkpoints/cvpr_release.pt> OUT
    python -m skeleton_diffusion.apps.convert --method mdm <dir>/model000475000.pt OUT          # reads <dir>/args.json
    python -m skeleton_diffusion.apps.convert --method crossdiff <dir>/model0050.pt OUT --config <merged yaml>
    python -m skeleton_diffusion.apps.convert --method diffpose <ckpt_*.pth> OUT --prior <gcnpose ckpt> --preset cpn
    python -m skeleton_diffusion.apps.convert --method diffhpe <checkpoint.pt> OUT --config <config.yaml>

Every file is read safely (``torch.load(weights_only=True)``, YAML with ``safe_load``, pickles through allow-listed
unpicklers). The converter is the method's ``convert`` registry hook; method-specific options are passed on only
when given (``--help`` lists them, grouped by method). Bad input: one paragraph, exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from skeleton_diffusion.config.cli import run_cli
from skeleton_diffusion.methods import registry

#: method-specific options: (flag, keyword, kind, help). kind: "value" | "flag" | "int".
METHOD_OPTIONS: dict[str, list[tuple[str, str, str, str]]] = {
    "skeleton_diffusion": [
        ("--stage", "stage", "value", "auto|diffusion|autoencoder: what SRC is (default: detected)"),
        ("--autoencoder", "autoencoder", "value", "official autoencoder checkpoint of the diffusion model"),
        ("--dataset", "dataset", "value", "dataset / paper recipe when no official config.yaml is found"),
        ("--autoencoder-config", "autoencoder_config", "value", "official flat autoencoder config.yaml"),
    ],
    "mdm": [],
    "crossdiff": [],
    "diffpose": [
        ("--prior", "prior", "value", "official GCNpose (or MixSTE) prior checkpoint"),
        ("--preset", "preset", "value", "cpn|gt|video_cpn|video_gt: the official test configuration"),
        ("--use-ema", "use_ema", "flag", "take the EMA weights (official test: states[0], the online weights)"),
        ("--variant", "variant", "value", "frame|video"),
        ("--mixste-heads", "mixste_heads", "int", "attention heads of the video prior"),
    ],
    "diffhpe": [
        ("--err-var", "err_var", "value", "DiffHPE error-variance .npy (anisotropic noise)"),
        ("--err-ave", "err_ave", "value", "DiffHPE error-mean .npy (anisotropic noise)"),
        ("--bones-rewired", "bones_rewired", "flag", "reproduce the official shoulder rewiring"),
        ("--anisotropic-step-noise", "anisotropic_step_noise", "flag",
         "shape the per-step noise anisotropically (official: white)"),
    ],
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m skeleton_diffusion.apps.convert",
        description="Convert an official checkpoint into a run folder of this code base "
                    "(OUT/checkpoints/*.pt + OUT/config.yaml), loadable with methods.registry.load_model.")
    p.add_argument("checkpoint", help="the official file (checkpoint as released)")
    p.add_argument("out_dir", help="output run folder (must not hold a run yet, unless --force)")
    p.add_argument("--method", default=registry.DEFAULT_METHOD,
                   help=f"method of the file: {', '.join(registry.methods_with('convert'))} (default: %(default)s)")
    p.add_argument("--config", help="the official run config (SkeletonDiffusion: flat config.yaml; MDM: args.json, "
                                    "default beside the file; CrossDiff: merged YAML; DiffHPE: config.yaml)")
    p.add_argument("--force", action="store_true", help="replace an existing run in OUT_DIR")
    seen: set[str] = set()
    for method, options in METHOD_OPTIONS.items():
        group = p.add_argument_group(f"--method {method}")
        for flag, dest, kind, text in options:
            if flag in seen:
                continue
            seen.add(flag)
            if kind == "flag":
                group.add_argument(flag, dest=dest, action="store_true", default=None, help=text)
            else:
                group.add_argument(flag, dest=dest, type=int if kind == "int" else str, default=None, help=text)
    return p


def convert(method: str, src: str | Path, out_dir: str | Path, **options: Any) -> Path:
    """API form of the CLI: ``registry.convert`` with the method's own options; refuses options of other methods."""
    from skeleton_diffusion.utils.errors import ConfigError

    name = registry.canonical_name(method)
    allowed = {dest for _, dest, _, _ in METHOD_OPTIONS.get(name, [])} | {"config", "force"}
    foreign = sorted(k for k, v in options.items() if v is not None and k not in allowed)
    if foreign:
        flags = [f"--{k.replace('_', '-')}" for k in foreign]
        raise ConfigError(f"option(s) {', '.join(flags)} do not apply to --method {name} "
                          f"(its options: {', '.join(sorted(allowed)) or 'none'})")
    return registry.convert(name, src, out_dir, **{k: v for k, v in options.items() if v is not None})


def main(argv: Optional[Sequence[str]] = None) -> Path:
    args = vars(build_parser().parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    method, src, out = args.pop("method"), args.pop("checkpoint"), args.pop("out_dir")

    def _run() -> Path:
        written = convert(method, src, out, **args)
        print(f"converted {registry.canonical_name(method)} checkpoint -> {written}\n"
              f"load it with: skeleton_diffusion.methods.registry.load_model('{Path(out)}')")
        return written

    return run_cli(_run)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
