"""Image declarations and Podman's settings, without an engine."""

from __future__ import annotations

import resource
from dataclasses import replace
from pathlib import Path

from pipeline.containers.engine import containers_conf
from pipeline.containers.images import FILES, IMAGES, ROOT
from pipeline.stack.jars import KAFKA_VERSION


def test_podman_defaults_never_exceed_the_hosts_limits() -> None:
    text = containers_conf(runc=True)
    nofile_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = int(text.split('"nofile=')[1].split(":")[0])
    assert 0 < nofile <= min(nofile_hard, 16_384)
    assert 'runtime = "runc"' in text
    assert "runtime" not in containers_conf(runc=False)


def test_images_are_local_pinned_and_built_from_files_in_the_repository() -> None:
    assert IMAGES["kafka"].ref == f"localhost/corridor/kafka:{KAFKA_VERSION}"
    for name, img in IMAGES.items():
        assert (FILES / name / "Containerfile").is_file()
        assert all((ROOT / rel).exists() for rel in img.sources), name


def test_an_image_is_stale_when_its_sources_or_version_change(tmp_path: Path, monkeypatch) -> None:
    img = IMAGES["kafka"]
    assert img.inputs_digest() == img.inputs_digest()
    assert replace(img, tag="9.9.9").inputs_digest() != img.inputs_digest()
    fake = tmp_path / "k8s" / "images" / "kafka"
    fake.mkdir(parents=True)
    (fake / "Containerfile").write_text("FROM scratch\n")
    (tmp_path / "pom.xml").write_text("<project/>")
    monkeypatch.setattr("pipeline.containers.images.ROOT", tmp_path)
    probe = replace(img, sources=("pom.xml",))
    before = probe.inputs_digest()
    (tmp_path / "pom.xml").write_text("<project><version>2</version></project>")
    assert probe.inputs_digest() != before
