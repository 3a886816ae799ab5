"""Download the official annotation files (segment CSVs, MMAPD ground truth, FreeMan lists) with checksums.

``python -m skeleton_diffusion.apps.fetch_annotations [--dataset AMASS|AMASS-MANO|Human36M|FreeMan|3DPW|all]
[--dest datasets/annotations] [--force]``

Files come from the official repository ``tum-vision/skeletondiffusion`` at a pinned commit (raw GitHub URLs,
``datasets/annotations/<DS>/hmp/<file>`` in that repository) and are written to ``<dest>/<DS>/hmp/<file>``.
Every file is verified against its SHA-256 (computed from the files as released) before it is atomically put in
place; a file already present with the right checksum is left alone, a corrupted one is replaced.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import urllib.request
from pathlib import Path
from typing import Callable, Iterable

from skeleton_diffusion.utils.errors import DataFormatError
from skeleton_diffusion.utils.io import atomic_write

REPOSITORY = "tum-vision/skeletondiffusion"
PINNED_COMMIT = "c90970f7a389bb9bd50de4f52c198a0d53753785"
BASE_URL = f"https://raw.githubusercontent.com/{REPOSITORY}/{PINNED_COMMIT}/datasets/annotations"

#: relative path -> (sha256, size in bytes)
ANNOTATION_FILES: dict[str, tuple[str, int]] = {
    "3DPW/hmp/segments_test.csv": ("ec62d82101f92ca41331399bc472a1a9af0479b60ea1961f21f97bbdc9406fff", 56426),
    "3DPW/hmp/segments_test_zero_shot.csv": ("fd12c24be00da77c52e8df540f2ed34dbcf1396f34431ee3bcff6a442b2add39", 113636),
    "3DPW/hmp/segments_train.csv": ("5bfcaf579070674e234c9e600d2d81291688e98c56341b6d1f1ef68d9aab8824", 39201),
    "3DPW/hmp/segments_valid.csv": ("374ee6883cba01e383be8310e25567777f42972f6612fccee094144c0c60b3b8", 18067),
    "AMASS-MANO/hmp/segments_test.csv": ("b5a341751a47cab03d484c71c2ab94eaa42f13ea877ffbd359965575d45f2949", 587297),
    "AMASS-MANO/hmp/segments_test_long_term_pred.csv": (
        "71cfc8f53ce1ce48e1f0aa115fc6de22e661949b273cada9f5d9d29806dc73a0", 402152),
    "AMASS/hmp/mmapd_GT.csv": ("ea2cbc3e302a213600e6539e8f01589d1516346929b8fd6ffa7eb78c4a45cbc8", 259518),
    "AMASS/hmp/segments_test.csv": ("b5a341751a47cab03d484c71c2ab94eaa42f13ea877ffbd359965575d45f2949", 587297),
    "AMASS/hmp/segments_test_long_term_pred.csv": (
        "71cfc8f53ce1ce48e1f0aa115fc6de22e661949b273cada9f5d9d29806dc73a0", 402152),
    "FreeMan/hmp/bad_sequences.json": ("be261113bef88aaaae1b56efca67dcfffe310304bb781cc17505add4f1e580e9", 2910),
    "FreeMan/hmp/illlposed_slices_idxs.json": ("f2ebfbc7610d9c372d0a5a10990a69cd7c7e9d38e0b472a3b567c8e62ff25cd0", 27791),
    "FreeMan/hmp/segments_test.csv": ("90eedfaef5e654f1ff03e5c65c8c9740c60f9defc93d73d02f7f582ee997a9be", 452138),
    "FreeMan/hmp/segments_valid.csv": ("25167c892c6d93c82d9a66a64a2cf271aaf1e885f8b076420361218c9729048b", 149097),
    "FreeMan/hmp/seq_actions_labels.txt": ("e701fc6e6249441ee2e05c883805ff1a2fd7b1d60d804edf3c7124da56eb56bb", 50842),
    "FreeMan/hmp/test.txt": ("fef772bef3e3238ad607d825f5d7725891674a45e47fad43caaa640cbe39a436", 9403),
    "FreeMan/hmp/train.txt": ("ab8fc61fa26ea2bb23b189b868481f8d2ca96ae0dcb12d840e927d9a690a6210", 29683),
    "FreeMan/hmp/valid.txt": ("d39bac015b413cdaae2efd5d9202e1c09b0525119f068f654a37810c45721505", 1354),
    "Human36M/hmp/mmapd_GT.csv": ("6826aae6398d35886fa8c152f8c18ab260cad395ac7ef84784664844e2ead364", 116704),
    "Human36M/hmp/segments_test.csv": ("7db95cc2549b88282ea6c4f2eab2801441b5510a2da2cba07f8ee2782a0f1c6d", 139896),
    "Human36M/hmp/segments_valid.csv": ("bf96e2d138aa133c12cdbaf52be10f49814dcd866d880d6ef631e0af5f831b51", 71921),
}
DATASETS = ("AMASS", "AMASS-MANO", "Human36M", "FreeMan", "3DPW")
_ALIASES = {"amass": "AMASS", "amass-mano": "AMASS-MANO", "h36m": "Human36M", "human36m": "Human36M",
            "freeman": "FreeMan", "3dpw": "3DPW"}

Opener = Callable[[str], bytes]


class ChecksumError(DataFormatError):
    """A downloaded or existing annotation file does not have the pinned SHA-256."""


def _default_opener(url: str, timeout: float = 60.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - pinned https / user-given URL
        return resp.read()


def canonical_dataset(name: str) -> str:
    if name in DATASETS:
        return name
    if name.lower() in _ALIASES:
        return _ALIASES[name.lower()]
    raise ValueError(f"unknown dataset {name!r}; choose from {list(DATASETS)} or 'all'")


def files_for(datasets: Iterable[str]) -> list[str]:
    wanted = {canonical_dataset(d) for d in datasets}
    return [rel for rel in ANNOTATION_FILES if rel.split("/")[0] in wanted]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_file(path: str | Path, rel: str) -> bool:
    """True when ``path`` exists and has the pinned checksum of annotation file ``rel``."""
    path = Path(path)
    return path.is_file() and sha256_bytes(path.read_bytes()) == ANNOTATION_FILES[rel][0]


def fetch_file(rel: str, dest: str | Path, *, base_url: str = BASE_URL, opener: Opener | None = None,
               force: bool = False) -> str:
    """Fetch one file to ``<dest>/<rel>``; returns ``'present'`` or ``'downloaded'``. Raises ``ChecksumError``."""
    if rel not in ANNOTATION_FILES:
        raise ValueError(f"unknown annotation file {rel!r}")
    target = Path(dest) / rel
    if not force and verify_file(target, rel):
        return "present"
    url = f"{base_url.rstrip('/')}/{rel}"
    data = (opener or _default_opener)(url)
    expected, size = ANNOTATION_FILES[rel]
    got = sha256_bytes(data)
    if got != expected:
        raise ChecksumError(
            f"checksum mismatch for {url}: got sha256 {got} ({len(data)} bytes), expected {expected} ({size} bytes). "
            f"The file was not written; '{target}' is unchanged."
        )
    with atomic_write(target, "wb") as fh:
        fh.write(data)
    return "downloaded"


def fetch_annotations(datasets: Iterable[str] = DATASETS, dest: str | Path = "datasets/annotations", *,
                      base_url: str = BASE_URL, opener: Opener | None = None, force: bool = False) -> dict[str, str]:
    """Fetch all annotation files of ``datasets``; returns ``{rel: status}``."""
    return {rel: fetch_file(rel, dest, base_url=base_url, opener=opener, force=force) for rel in files_for(datasets)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", nargs="+", default=["all"], help=f"{list(DATASETS)} or all (default)")
    parser.add_argument("--dest", default="datasets/annotations", help="annotations root (default %(default)s)")
    parser.add_argument("--base-url", default=BASE_URL, help="mirror URL (default: pinned GitHub commit)")
    parser.add_argument("--force", action="store_true", help="download even when a valid copy exists")
    args = parser.parse_args(argv)
    datasets = DATASETS if "all" in args.dataset else args.dataset
    try:
        status = fetch_annotations(datasets, args.dest, base_url=args.base_url, force=args.force)
    except (ChecksumError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for rel, st in status.items():
        print(f"{st:10s} {Path(args.dest) / rel}")
    return 0
