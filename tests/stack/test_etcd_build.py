"""The etcd build's cache: a complete build is used as it is (no Go needed, as in the corridor image),
and a half-written one is never taken for a build."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.shared.errors import StackError
from pipeline.stack import gobuild
from pipeline.stack.etcd_build import ETCD_VERSION, etcd_dir, resolve_etcd, stage_cache


def _no_go(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gobuild.shutil, "which", lambda _name: None)
    monkeypatch.setattr(gobuild, "Path", lambda _p: Path("/nonexistent/go"))


def _fake_build(cache: Path) -> None:
    built = etcd_dir(cache)
    built.mkdir(parents=True)
    for tool in ("etcd", "etcdctl"):
        (built / tool).write_text(f"#!{tool}\n")
    (built / ".complete").write_text(ETCD_VERSION + "\n")


def test_the_release_is_one_etcd_recommends_for_production() -> None:
    major, minor, patch = (int(p) for p in ETCD_VERSION.split("."))
    assert (major, minor) == (3, 5) and patch >= 6


def test_a_complete_build_is_used_without_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_build(tmp_path)
    _no_go(monkeypatch)
    assert resolve_etcd(tmp_path) == etcd_dir(tmp_path)


def test_a_half_written_build_is_built_again_and_without_go_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_build(tmp_path)
    (etcd_dir(tmp_path) / ".complete").unlink()
    _no_go(monkeypatch)
    with pytest.raises(StackError, match="needs Go"):
        resolve_etcd(tmp_path)
    assert not list(tmp_path.glob(".etcd-v*-*")), "a staging directory was left behind"


def test_an_image_cache_holds_only_the_tools_asked_for_and_resolves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_build(tmp_path / "machine")
    stage_cache(tmp_path / "machine", tmp_path / "image", ("etcdctl",))
    _no_go(monkeypatch)
    staged = resolve_etcd(tmp_path / "image")
    assert sorted(p.name for p in staged.iterdir()) == [".complete", "etcdctl"]
    assert (staged / "etcdctl").read_text() == "#!etcdctl\n"
