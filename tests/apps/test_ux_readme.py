"""Issue 28 item 10: the README tells the truth about activation, demo times and GIF frame rates."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    return README[start:README.index("\n## ", start + 1)]


def test_install_and_quickstart_say_to_activate_the_venv() -> None:
    assert "source .venv/bin/activate" in _section("Install")
    assert "source .venv/bin/activate" in _section("Quickstart")


def test_quickstart_time_is_qualified_and_gives_thread_advice() -> None:
    quick = _section("Quickstart")
    assert "OMP_NUM_THREADS=1" in quick
    assert re.search(r"idle", quick) and re.search(r"26 min", quick)


def test_gif_frame_rate_claim_matches_the_encoder() -> None:
    from skeleton_diffusion.viz.animation import gif_durations_ms

    delays = gif_durations_ms(120, 60.0)
    played = round(1000.0 * len(delays) / sum(delays))
    text = " ".join(_section("Quickstart").split())
    assert f"played at {played} fps" in text
    assert not re.search(r"\(720 × 496 px, 60 fps\)", text)
