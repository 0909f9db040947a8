"""The pod sandbox's pause image, built here: Kubernetes' own pause.c, compiled static, packed as a
docker-archive that `ctr images import` reads. No registry is reachable, and none is needed."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

from pipeline.shared.errors import StackError

__all__ = ["pause_archive"]


def _layer(binary: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("pause")
        info.size, info.mode = len(binary), 0o755
        tar.addfile(info, io.BytesIO(binary))
    return buf.getvalue()


def docker_archive(binary: bytes, ref: str) -> bytes:
    """One layer holding /pause, its entrypoint; the archive names the image `ref`."""
    layer = _layer(binary)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "corridor test cluster: static pause"}],
    }).encode()  # fmt: skip
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [ref], "Layers": ["layer.tar"]}]).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in (("layer.tar", layer), (config_name, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def pause_archive(source: Path, work: Path, ref: str) -> Path:
    """Compile `source` (pause.c) statically and pack it; returns the archive's path."""
    binary = work / "pause"
    proc = subprocess.run(["gcc", "-Os", "-static", "-o", str(binary), str(source)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise StackError(f"compiling the pause image failed (gcc and libc6-dev are needed): {proc.stderr.strip()}")
    archive = work / "pause.tar"
    archive.write_bytes(docker_archive(binary.read_bytes(), ref))
    return archive
