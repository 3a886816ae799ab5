"""`.ci/run` refuses to run the suite when tests would silently skip (missing fixtures, missing CMU BVH files).

The script is copied into a scratch repository with stand-in ``make`` and ``apt-get`` on PATH, so nothing is
installed and no suite is run: the test only checks which preconditions stop CI and which let it reach ``make``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tool(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + body + "\n")
    path.chmod(0o755)


@pytest.fixture()
def sandbox(tmp_path):
    """``(run, log)``: run(fixtures=..., cmu=..., apt_ok=...) -> CompletedProcess; log lists the make targets."""
    repo = tmp_path / "work" / "repo"
    (repo / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "run", repo / ".ci" / "run")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "make.log"
    _tool(bin_dir / "make", f'echo "$@" >> "{log}"')
    cmu = tmp_path / "cmu"

    def run(*, fixtures: bool, cmu_files: bool, apt_ok: bool, install_puts_files: bool = False):
        if fixtures:
            (tmp_path / "work" / "shared" / "fixtures").mkdir(parents=True, exist_ok=True)
        cmu.mkdir(exist_ok=True)
        if cmu_files:
            for f in ("01_01.bvh", "01_03.bvh"):
                (cmu / f).write_text("HIERARCHY\n")
        put = f'touch "{cmu}/01_01.bvh" "{cmu}/01_03.bvh"' if install_puts_files else ":"
        _tool(bin_dir / "apt-get", (f'[ "$1" = install ] && {put}; exit 0') if apt_ok else "exit 100")
        env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin", "CMU_BVH_DIR": str(cmu)}
        return subprocess.run(["bash", str(repo / ".ci" / "run")], env=env, capture_output=True, text=True,
                              timeout=60)

    return run, log


def test_ci_fails_without_shared_fixtures(sandbox):
    run, log = sandbox
    proc = run(fixtures=False, cmu_files=True, apt_ok=True)
    assert proc.returncode != 0 and "fixtures" in proc.stderr
    assert not log.exists()


def test_ci_fails_when_the_cmu_bvh_package_cannot_be_installed(sandbox):
    run, log = sandbox
    proc = run(fixtures=True, cmu_files=False, apt_ok=False)
    assert proc.returncode != 0 and "assimp-testmodels" in proc.stderr
    assert not log.exists()


def test_ci_fails_when_the_install_does_not_give_the_files(sandbox):
    run, log = sandbox
    proc = run(fixtures=True, cmu_files=False, apt_ok=True, install_puts_files=False)
    assert proc.returncode != 0 and "01_01.bvh" in proc.stderr
    assert not log.exists()


@pytest.mark.parametrize("preinstalled", [True, False])
def test_ci_runs_lint_and_tests_when_everything_is_there(sandbox, preinstalled):
    run, log = sandbox
    proc = run(fixtures=True, cmu_files=preinstalled, apt_ok=True, install_puts_files=True)
    assert proc.returncode == 0, proc.stderr
    assert log.read_text().split() == ["lint", "test"]


@pytest.mark.slow  # a pytest subprocess: ~14 s
@pytest.mark.parametrize("require", [False, True])
def test_missing_shared_material_is_a_failure_when_ci_requires_it(tmp_path, require):
    """With SKELETON_DIFFUSION_REQUIRE_SHARED=1 (exported by .ci/run) an equivalence test without ../shared fails;
    without it (a user's clone) the test skips with its reason."""
    env = {**os.environ, "SKELETON_DIFFUSION_SHARED": str(tmp_path / "no_shared"),
           "SKELETON_DIFFUSION_REQUIRE_SHARED": "1" if require else ""}
    test = "tests/metrics/test_metrics.py::test_skeleton_module_matches_official_metric_limbs"
    proc = subprocess.run([sys.executable, "-m", "pytest", test, "-q", "-p", "no:cacheprovider", "-rs"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    if require:
        assert proc.returncode == 1 and ("1 failed" in proc.stdout or "1 error" in proc.stdout), proc.stdout[-2000:]
    else:
        assert proc.returncode == 0 and "1 skipped" in proc.stdout, proc.stdout[-2000:]


def test_ci_script_requires_the_shared_material():
    assert "export SKELETON_DIFFUSION_REQUIRE_SHARED=1" in (ROOT / ".ci" / "run").read_text()
