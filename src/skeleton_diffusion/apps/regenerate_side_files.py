"""Regenerate the side files of any processed dataset folder in one command.

``python -m skeleton_diffusion.apps.regenerate_side_files datasets/processed/<NAME>/hmp [--segments]
[--dataset-config FILE] [--annotations-dir DIR] [--no-mmapd] [--no-force]``

Writes ``mean_motion_test.txt``, ``mmgt_test.txt`` and ``mmapd_GT.csv`` (and with ``--segments`` the generic
``segments_<split>.csv``), using the folder's ``dataset_config.yaml`` (written by every builder) or the given one.
"""

import sys

from skeleton_diffusion.data.side_files import main

if __name__ == "__main__":
    sys.exit(main())
