"""corridor's container images: what each is built from, staged into a build context, and built.

The contexts hold what the embedded stack already runs: Kafka's jars as Maven resolved them for
pipeline/stack/pom.xml, the etcd binaries built from the Go module proxy, and wheels of corridor and its
dependencies. So the images run the same versions as the local stack, and their builds fetch
nothing but Debian packages. The base is any Debian bookworm image; without a registry one is made
from Debian's packages with debootstrap.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from pipeline.shared.config import Settings
from pipeline.shared.errors import StackError
from pipeline.stack.etcd_build import ETCD_VERSION, resolve_etcd, stage_cache
from pipeline.stack.jars import KAFKA_VERSION, resolve_jars
from pipeline.stack.registry import APICURIO_VERSION, registry_java, resolve_registry

from .engine import ContainerEngine

__all__ = ["BASE_IMAGE", "IMAGES", "REGISTRY_BASE", "Image", "build_images", "ensure_base", "image_ref", "up_to_date"]

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "k8s" / "images"
BASE_IMAGE = "localhost/corridor/debian:bookworm"
REGISTRY_BASE = "docker.io/library/debian:bookworm-slim"
DEBIAN_MIRROR = os.environ.get("CORRIDOR_DEBIAN_MIRROR", "http://deb.debian.org/debian")


INPUTS_LABEL = "org.corridor.inputs"
MOSQUITTO_VERSION = "2.0.11"
PROMETHEUS_VERSION = "2.42.0"  # Debian bookworm's, the server `--prometheus` runs here


@dataclass(frozen=True, slots=True)
class Image:
    name: str
    tag: str
    stage: Callable[[Path, Settings], None]  # fills the build context
    sources: tuple[str, ...]  # repository paths whose content the image is made from
    needs_base: bool = True

    @property
    def ref(self) -> str:
        return f"localhost/corridor/{self.name}:{self.tag}"

    def inputs_digest(self) -> str:
        """A digest of what the image is built from; an image labelled with it is up to date."""
        h = hashlib.sha256(self.tag.encode())
        for rel in (f"k8s/images/{self.name}", *self.sources):
            root = ROOT / rel
            files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
            for f in files:
                if "__pycache__" in f.parts or not f.exists():
                    continue
                h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes())
        return h.hexdigest()[:16]


def _copy_files(name: str, ctx: Path) -> None:
    for f in (FILES / name).iterdir():
        shutil.copy2(f, ctx / f.name)


def _stage_kafka(ctx: Path, settings: Settings) -> None:
    _copy_files("kafka", ctx)
    shutil.copytree(resolve_jars(settings.cache_dir), ctx / "libs")


def _stage_etcd(ctx: Path, settings: Settings) -> None:
    _copy_files("etcd", ctx)
    built = resolve_etcd(settings.cache_dir)
    for tool in ("etcd", "etcdctl"):
        shutil.copy2(built / tool, ctx / tool)


def _stage_mosquitto(ctx: Path, settings: Settings) -> None:
    _copy_files("mosquitto", ctx)


def _stage_prometheus(ctx: Path, settings: Settings) -> None:
    _copy_files("prometheus", ctx)


#: the Java modules Apicurio's Quarkus bundle runs on (checked: it starts and serves on this runtime)
JRE_MODULES = "java.se,jdk.unsupported,jdk.naming.dns,jdk.management,jdk.zipfs"


def _stage_registry(ctx: Path, settings: Settings) -> None:
    _copy_files("registry", ctx)
    shutil.copytree(resolve_registry(settings.cache_dir), ctx / "app")
    jlink = registry_java().resolve().with_name("jlink")
    if not jlink.is_file():
        raise StackError(f"the registry image's Java runtime is made with jlink, and {jlink} is missing: "
                         "install a JDK 21+ (not only a JRE)")  # fmt: skip
    done = subprocess.run([str(jlink), "--add-modules", JRE_MODULES, "--strip-debug", "--no-header-files",
                           "--no-man-pages", "--output", str(ctx / "jre")], capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        raise StackError(f"jlink could not make the registry's Java runtime: {done.stderr.strip()[-300:]}")


def _stage_corridor(ctx: Path, settings: Settings) -> None:
    if not (ROOT / "pyproject.toml").exists():
        raise StackError("the corridor image is built from a source checkout (pyproject.toml not found)")
    _copy_files("corridor", ctx)
    # A copy of the sources: building in the checkout would leave a build/ folder whose stale files
    # (of modules since deleted) setuptools would package again.
    src = ctx.parent / "corridor-src"
    src.mkdir()
    for rel in (*IMAGES["corridor"].sources, "README.md"):
        if (ROOT / rel).is_dir():
            shutil.copytree(ROOT / rel, src / rel, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / rel, src / rel)
    stage_cache(settings.cache_dir, ctx / "cache", ("etcdctl",))
    argv = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(ctx / "wheels"), str(src)]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise StackError(f"pip could not build the wheels for the corridor image: {done.stderr.strip()[-300:]}")


IMAGES: dict[str, Image] = {
    "kafka": Image("kafka", KAFKA_VERSION, _stage_kafka, ("pipeline/stack/pom.xml",)),
    "etcd": Image("etcd", ETCD_VERSION, _stage_etcd, ("pipeline/stack/etcd_build.py",), needs_base=False),
    # Debian bookworm's mosquitto, the version the local stack runs
    "mosquitto": Image("mosquitto", MOSQUITTO_VERSION, _stage_mosquitto, ()),
    # Debian bookworm's prometheus: a cluster's own monitoring (k8s/prometheus)
    "prometheus": Image("prometheus", PROMETHEUS_VERSION, _stage_prometheus, ()),
    # Apicurio Registry on a jlink'd Java runtime: the schema registry of every overlay (k8s/registry)
    "registry": Image("registry", APICURIO_VERSION, _stage_registry, ("pipeline/stack/registry.py",)),
    "corridor": Image(
        "corridor",
        version("corridor"),
        _stage_corridor,
        ("pyproject.toml", "pipeline", "producers", "towers", "schemas"),
    ),
}


def up_to_date(engine: ContainerEngine, img: Image) -> bool:
    found = engine.run("image", "inspect", "--format", f'{{{{ index .Config.Labels "{INPUTS_LABEL}" }}}}', img.ref,
                       check=False)  # fmt: skip
    return found.returncode == 0 and found.stdout.strip() == img.inputs_digest()


def image_ref(name: str) -> str:
    return IMAGES[name].ref


def ensure_base(engine: ContainerEngine, work: Path) -> str:
    """The Debian image the others start from: CORRIDOR_IMAGE_BASE if set, else ours if built,
    else one built now with debootstrap (as root), else the registry's."""
    chosen = os.environ.get("CORRIDOR_IMAGE_BASE")
    if chosen:
        return chosen
    if engine.image_exists(BASE_IMAGE):
        return BASE_IMAGE
    debootstrap = shutil.which("debootstrap") or ("/usr/sbin/debootstrap" if Path("/usr/sbin/debootstrap").exists()
                                                  else None)  # fmt: skip
    if debootstrap is None or os.geteuid() != 0:
        return REGISTRY_BASE
    rootfs = work / "rootfs"
    done = subprocess.run(
        [debootstrap, "--variant=minbase", "bookworm", str(rootfs), DEBIAN_MIRROR], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise StackError(f"debootstrap failed: {(done.stdout + done.stderr).strip().splitlines()[-1:]}")
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    engine.run("import", "-", BASE_IMAGE, stdin=tar.stdout)
    tar.wait()
    shutil.rmtree(rootfs, ignore_errors=True)
    return BASE_IMAGE


def build_images(
    engine: ContainerEngine,
    settings: Settings,
    names: list[str] | None = None,
    force: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, float]:
    """Build the named images (all by default) unless up to date, or all with `force`; seconds
    taken per image, "base" included."""
    timings: dict[str, float] = {}
    chosen = [IMAGES[n] for n in (names or list(IMAGES))]
    if not force:
        chosen = [img for img in chosen if not up_to_date(engine, img)]
    if not chosen:
        return timings
    with tempfile.TemporaryDirectory(prefix="corridor-images-") as tmp:
        work = Path(tmp)
        base = REGISTRY_BASE
        if any(img.needs_base for img in chosen):
            t0 = time.monotonic()
            progress("base image")
            base = ensure_base(engine, work)
            timings["base"] = time.monotonic() - t0
        for img in chosen:
            t0 = time.monotonic()
            progress(img.ref)
            ctx = work / img.name
            ctx.mkdir()
            img.stage(ctx, settings)
            engine.run("build", "--build-arg", f"BASE={base}", "--label", f"{INPUTS_LABEL}={img.inputs_digest()}",
                       "-t", img.ref, "-f", str(ctx / "Containerfile"), str(ctx))  # fmt: skip
            timings[img.name] = time.monotonic() - t0
    return timings
