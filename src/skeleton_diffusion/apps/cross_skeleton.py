"""Cross-skeleton evaluation CLI: ``python -m skeleton_diffusion.apps.cross_skeleton --checkpoint RUN --dataset-config DS.yaml``."""

import sys

from skeleton_diffusion.tasks.hmp.cross_skeleton import main

if __name__ == "__main__":
    sys.exit(main())
