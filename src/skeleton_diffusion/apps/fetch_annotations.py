"""Download the official annotation files (segment CSVs, MMAPD ground truth, FreeMan lists) with checksums:
``python -m skeleton_diffusion.apps.fetch_annotations [--dataset AMASS H36M ...]``."""

import sys

from skeleton_diffusion.data.annotations import main

if __name__ == "__main__":
    sys.exit(main())
