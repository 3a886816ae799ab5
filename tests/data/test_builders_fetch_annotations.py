"""Annotation fetcher: checksum table, verification, atomic writes; never touches the network."""

from __future__ import annotations

import hashlib

import pytest

from skeleton_diffusion.data import annotations as fa


def test_pinned_urls_point_at_the_official_layout():
    assert fa.BASE_URL.startswith("https://raw.githubusercontent.com/tum-vision/skeletondiffusion/")
    assert len(fa.PINNED_COMMIT) == 40 and fa.PINNED_COMMIT in fa.BASE_URL
    assert fa.BASE_URL.endswith("/datasets/annotations")
    assert len(fa.files_for(fa.DATASETS)) == 20
    assert fa.files_for(["h36m"]) == [r for r in fa.ANNOTATION_FILES if r.startswith("Human36M/")]
    with pytest.raises(ValueError):
        fa.canonical_dataset("nope")


def test_checksums_match_the_reference_files(annotations_dir):
    for rel, (sha, size) in fa.ANNOTATION_FILES.items():
        data = (annotations_dir / rel).read_bytes()
        assert len(data) == size and hashlib.sha256(data).hexdigest() == sha, rel


def test_fetch_from_local_mirror_verifies_and_skips_present(annotations_dir, tmp_path):
    dest = tmp_path / "annotations"
    base = annotations_dir.resolve().as_uri()  # file:// mirror with the official layout
    status = fa.fetch_annotations(["FreeMan"], dest, base_url=base)
    assert set(status.values()) == {"downloaded"} and len(status) == 8
    assert (dest / "FreeMan/hmp/test.txt").read_bytes() == (annotations_dir / "FreeMan/hmp/test.txt").read_bytes()
    assert set(fa.fetch_annotations(["FreeMan"], dest, base_url=base).values()) == {"present"}
    # a corrupted local copy is replaced
    (dest / "FreeMan/hmp/valid.txt").write_text("garbage")
    assert fa.fetch_annotations(["FreeMan"], dest, base_url=base)["FreeMan/hmp/valid.txt"] == "downloaded"
    assert fa.verify_file(dest / "FreeMan/hmp/valid.txt", "FreeMan/hmp/valid.txt")


def test_checksum_mismatch_leaves_target_untouched(tmp_path):
    rel = "Human36M/hmp/segments_valid.csv"
    target = tmp_path / rel
    target.parent.mkdir(parents=True)
    target.write_text("old content")
    urls = []

    def opener(url: str) -> bytes:
        urls.append(url)
        return b"tampered"

    with pytest.raises(fa.ChecksumError, match="checksum mismatch"):
        fa.fetch_file(rel, tmp_path, opener=opener)
    assert target.read_text() == "old content"
    assert urls == [f"{fa.BASE_URL}/{rel}"]
    assert [p.name for p in target.parent.iterdir()] == ["segments_valid.csv"]  # no temp files left


def test_cli_reports_errors_without_traceback(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fa, "_default_opener", lambda url: b"bad")
    assert fa.main(["--dataset", "3DPW", "--dest", str(tmp_path)]) == 1
    assert "checksum mismatch" in capsys.readouterr().err
