"""Shared test fixtures.

``shared_dir`` points at ``../shared`` beside the repository (reference annotations and official fixtures).
Tests that need it skip with a clear reason when it is absent, so the suite also runs outside this workplace.
With ``SKELETON_DIFFUSION_REQUIRE_SHARED=1`` (set by ``.ci/run``) such a skip is a failure instead: CI must not be
green on equivalence tests that did not run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("SKELETON_DIFFUSION_SHARED", REPO_ROOT.parent / "shared"))
FIXTURES_DIR = SHARED_DIR / "fixtures" / "official"
ANNOTATIONS_DIR = SHARED_DIR / "reference" / "annotations"

REQUIRE_SHARED = os.environ.get("SKELETON_DIFFUSION_REQUIRE_SHARED", "") not in ("", "0")

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def _require(path: Path) -> Path:
    if not path.exists():
        if REQUIRE_SHARED:
            pytest.fail(f"reference material missing: {path} (SKELETON_DIFFUSION_REQUIRE_SHARED is set)")
        pytest.skip(f"reference material not available: {path} (the ../shared folder beside the repo)")
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _require(SHARED_DIR)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return _require(FIXTURES_DIR)


@pytest.fixture(scope="session")
def annotations_dir() -> Path:
    return _require(ANNOTATIONS_DIR)


def official_fixture(name: str) -> Path:
    """Path of ``../shared/fixtures/official/<name>``; skips the calling test if it does not exist."""
    return _require(FIXTURES_DIR / name)


@pytest.fixture
def cpu_only_seed():
    torch.manual_seed(0)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under ``SKELETON_DIFFUSION_REQUIRE_SHARED``, any skip that names the shared folder fails the test (covers
    the skips of helper modules that look for ``../shared`` themselves)."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_SHARED and report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        if "shared" in reason or str(SHARED_DIR) in reason:
            report.outcome = "failed"
            report.longrepr = f"skipped although SKELETON_DIFFUSION_REQUIRE_SHARED is set: {reason}"
