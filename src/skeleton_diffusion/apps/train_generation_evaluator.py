"""Train the generation evaluator (motion + text encoders): ``python -m skeleton_diffusion.apps.train_generation_evaluator dataset=<name>``."""

import sys

from skeleton_diffusion.tasks.generation.train_evaluator import main

if __name__ == "__main__":
    sys.exit(main())
