"""Kubernetes' server binaries, CoreDNS and the pause image, built from the Go module proxy.

The kubernetes module's zip leaves out `staging/`, so it cannot be built as the main module. We
build it from a module of our own whose go.mod is upstream's with the staging replacements turned
into the published k8s.io modules of the same release. The binaries are kept in the cache, one
directory per version, and built again only when missing.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.shared.errors import StackError
from pipeline.stack.gobuild import go_command, run_go

__all__ = [
    "COREDNS_VERSION",
    "K8S_VERSION",
    "KUBE_ROUTER_VERSION",
    "SERVER_BINARIES",
    "Binaries",
    "build_binaries",
    "build_kube_router",
    "builder_go_mod",
    "version_ldflags",
]

K8S_VERSION = "v1.32.13"
COREDNS_VERSION = "v1.11.4"
#: the only release of kube-router the Go module proxy serves here; its reported flaws concern the
#: routes it advertises over BGP and its service proxy, both left off: only its NetworkPolicy
#: controller runs (`--run-firewall`)
KUBE_ROUTER_VERSION = "v2.1.0"
SERVER_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl")

# Published staging modules the proxy refuses at this release, and what to use instead
_DROPPED_MODULES = ("k8s.io/sample-apiserver", "k8s.io/sample-cli-plugin", "k8s.io/sample-controller")
_PINNED_MODULES = {"k8s.io/endpointslice": "v0.32.12"}
_COMPLETE = ".complete"


def _staging_version(k8s_version: str) -> str:
    """k8s.io/api and friends are published as v0.X.Y for Kubernetes v1.X.Y."""
    return "v0." + k8s_version.removeprefix("v1.")


def builder_go_mod(upstream: str, k8s_version: str = K8S_VERSION) -> str:
    """The go.mod of the module we build from, derived from kubernetes' own."""
    staging = _staging_version(k8s_version)
    out: list[str] = []
    for line in upstream.splitlines():
        stripped = line.strip()
        name = stripped.split()[0] if stripped else ""
        if any(name == dropped for dropped in _DROPPED_MODULES):
            continue
        if stripped.startswith("module "):
            out.append("module corridor.local/kube-build")
            continue
        match = re.fullmatch(r"(k8s\.io/\S+) => \./staging/src/\S+", stripped)
        if match:
            module = match.group(1)
            out.append(f"\t{module} => {module} {_PINNED_MODULES.get(module, staging)}")
            continue
        out.append(line)
    out.append(f"\nrequire k8s.io/kubernetes {k8s_version}\n")
    return "\n".join(out)


def version_ldflags(k8s_version: str = K8S_VERSION) -> str:
    """Stamp the version the servers report; unstamped they say v0.0.0-master and kubectl warns."""
    major, minor = k8s_version.removeprefix("v").split(".")[:2]
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {package}.gitVersion={k8s_version}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
            f"-X {package}.buildDate=1970-01-01T00:00:00Z",
        ]
    return " ".join(flags)


@dataclass(frozen=True, slots=True)
class Binaries:
    """Where a built release lives."""

    directory: Path

    def path(self, name: str) -> Path:
        return self.directory / name

    @property
    def pause_source(self) -> Path:
        return self.directory / "pause.c"


def build_binaries(cache_dir: Path, *, log: Callable[[str], None] | None = None) -> Binaries:
    """Build the five server binaries and CoreDNS in the cache, unless already there."""
    target = Binaries(cache_dir / f"kubernetes-{K8S_VERSION}")
    if (target.directory / _COMPLETE).exists():
        return target
    say = log or (lambda _msg: None)
    go = go_command("the Kubernetes build")
    work = target.directory / "build"
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    (work / "go.mod").write_text("module corridor.local/kube-build\n\ngo 1.23.0\n")
    info = run_go(
        [go, "mod", "download", "-json", f"k8s.io/kubernetes@{K8S_VERSION}"],
        cwd=work,
        what="downloading the kubernetes module",
    )
    found = re.search(r'"Dir": "([^"]+)"', info)
    if found is None:
        raise StackError(f"the Go module proxy gave no source for k8s.io/kubernetes@{K8S_VERSION}")
    source = Path(found.group(1))
    (work / "go.mod").write_text(builder_go_mod((source / "go.mod").read_text()))
    shutil.copyfile(source / "go.sum", work / "go.sum")
    say(f"building {', '.join(SERVER_BINARIES)} {K8S_VERSION} (one go build; cold, ≈ 7 min on 2 cores)")
    packages = [f"k8s.io/kubernetes/cmd/{name}" for name in SERVER_BINARIES]
    run_go(
        [go, "build", "-trimpath", "-ldflags", version_ldflags(), "-o", str(target.directory) + "/", *packages],
        cwd=work,
        what="go build of the Kubernetes servers",
    )
    say(f"CoreDNS {COREDNS_VERSION}")
    dns = target.directory / "coredns-build"
    dns.mkdir(exist_ok=True)
    (dns / "go.mod").write_text("module corridor.local/coredns-build\n\ngo 1.23.0\n")
    run_go([go, "get", f"github.com/coredns/coredns@{COREDNS_VERSION}"], cwd=dns, what="fetching CoreDNS")
    run_go(
        [
            go,
            "build",
            "-trimpath",
            "-ldflags",
            "-s -w",
            "-o",
            str(target.directory / "coredns"),
            "github.com/coredns/coredns",
        ],
        cwd=dns,
        what="go build of CoreDNS",
    )
    shutil.copyfile(source / "build/pause/linux/pause.c", target.pause_source)
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(dns, ignore_errors=True)
    (target.directory / _COMPLETE).write_text(f"{time.monotonic() - started:.0f} s\n")
    return target


def build_kube_router(cache_dir: Path, *, log: Callable[[str], None] | None = None) -> Path:
    """kube-router, whose NetworkPolicy controller enforces the manifests' policies on each node
    (the CNI bridge plugin enforces none), built in the cache unless already there."""
    target = cache_dir / f"kube-router-{KUBE_ROUTER_VERSION}"
    binary = target / "kube-router"
    if (target / _COMPLETE).exists() and binary.exists():
        return binary
    say = log or (lambda _msg: None)
    go = go_command("the kube-router build")
    work = target / "build"
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    (work / "go.mod").write_text("module corridor.local/kube-router-build\n\ngo 1.23.0\n")
    module = "github.com/cloudnativelabs/kube-router/v2"
    say(f"kube-router {KUBE_ROUTER_VERSION} (its NetworkPolicy controller; cold, ≈ 2 min on 2 cores)")
    run_go([go, "get", f"{module}@{KUBE_ROUTER_VERSION}"], cwd=work, what="fetching kube-router")
    run_go([go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(binary), f"{module}/cmd/kube-router"],
           cwd=work, what="go build of kube-router")  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    (target / _COMPLETE).write_text(f"{time.monotonic() - started:.0f} s\n")
    return binary
