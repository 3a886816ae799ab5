"""The README tells the truth: its plug-and-play code is the tested snippet, its quick start is the demo."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_plug_and_play_snippets_are_in_readme():
    doc = (ROOT / "docs" / "plug_and_play.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    assert len(blocks) == 2
    for block in blocks:
        assert block in README, "README's plug-and-play code differs from docs/plug_and_play.md (the tested code)"


def test_quickstart_commands_are_what_the_demo_runs():
    from skeleton_diffusion.apps.demo import demo_commands

    section = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    shown = re.findall(r"```bash\n(.*?)```", section, flags=re.S)[1].strip().splitlines()
    expected = [" ".join(["python", *cmd[1:]]) for cmd in demo_commands("output/demo")]
    assert shown == expected


def test_every_entry_point_in_readme_exists():
    for script in ("train_autoencoder.py", "train_diffusion.py", "eval.py"):
        assert (ROOT / script).is_file() and script in README
    for module in re.findall(r"python -m (skeleton_diffusion\.[\w.]+)", README):
        rel = Path("src", *module.split(".")).with_suffix(".py")
        assert (ROOT / rel).is_file(), f"README mentions {module}, which does not exist"
