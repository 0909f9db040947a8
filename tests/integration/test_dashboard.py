"""The live page in a real browser (Playwright driving Debian's Chromium) during a short run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from pipeline.ports import free_ports
from tests.helpers import corridor, scraped

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"

RUN = {
    "name": "web", "description": "a short run for the live page",
    "vehicles": 200, "hz": 2, "speedup": 1, "duration_s": 75, "workers": 2, "seed": 9, "events": [],
}  # fmt: skip


def _need_browser() -> None:
    why = None
    if not Path(CHROMIUM).exists():
        why = "no Chromium at /usr/bin/chromium (apt-get install chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        why = "playwright is not installed (pip install playwright)"
    if why is not None:
        if os.environ.get("CORRIDOR_STRICT_TESTS") == "1":
            pytest.fail(why)
        pytest.skip(why)


def test_the_live_page_shows_vehicles_moving_a_reported_hazard_its_advice_and_the_workers(
    stack, cli_env, tmp_path: Path
) -> None:
    _need_browser()
    from playwright.sync_api import sync_playwright

    env = {**cli_env, "CORRIDOR_TOPIC_PREFIX": f"web{uuid.uuid4().hex[:6]}"}
    scenario = tmp_path / "web.yaml"
    scenario.write_text(yaml.safe_dump(RUN))
    (port,) = free_ports(1)
    corridor_bin = str(Path(sys.executable).with_name("corridor"))
    run = subprocess.Popen([corridor_bin, "simulate", str(scenario), "--web", "--web-port", str(port), "--no-live",
                            "--report-dir", str(tmp_path / "reports")], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    assert run.stdout is not None
    said: list[str] = []
    try:
        for line in run.stdout:
            said.append(line)
            if "live page: " in line:
                break
        url = f"http://127.0.0.1:{port}/"
        assert any(url in line for line in said), "".join(said)
        errors: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            page.wait_for_function("() => dash.snapshot && dash.snapshot.rows.length >= 100", timeout=30_000)
            before = page.evaluate("() => Object.fromEntries(dash.snapshot.rows.map(r => [r[0], r[1]]))")
            page.wait_for_timeout(2_000)
            after = page.evaluate("() => Object.fromEntries(dash.snapshot.rows.map(r => [r[0], r[1]]))")
            moved = [v for v in before if v in after and abs(after[v] - before[v]) > 0.005]
            assert len(moved) > len(before) / 2, "most vehicles drove on between two looks"

            page.wait_for_function("() => document.querySelectorAll('.worker[data-worker]').length === 2",
                                   timeout=15_000)  # fmt: skip
            regions = page.evaluate("() => dash.towers.sets.flatMap(s => s.workers.flatMap(w => w.regions))")
            assert sorted(regions) == list(range(9)), "two workers, each region owned by one of them"
            # each panel tells how old each class of the worker's data is, membership heard within seconds
            page.wait_for_function("() => [...document.querySelectorAll('.worker td')].some(td => "
                                   "td.textContent === 'age: membership' && td.nextSibling.textContent.endsWith(' s') "
                                   "&& parseFloat(td.nextSibling.textContent) < 5)", timeout=15_000)  # fmt: skip
            labels = page.evaluate("() => [...document.querySelectorAll('.worker td')].map(td => td.textContent)")
            assert {"age: hazards", "age: vehicle state", "age: aggregates", "age: etcd snapshot"} <= set(labels)

            hid = f"deer-{uuid.uuid4().hex[:4]}"
            done = corridor(env, "hazard", "--km", "30", "--type", "ANIMAL", "--direction", "NORTHBOUND",
                            "--hazard-id", hid)  # fmt: skip
            assert done.returncode == 0, done.stderr
            # shown, then advised (how soon it is shown is measured by `corridor bench --only live`)
            page.wait_for_selector(f'[data-hazard="{hid}"]', timeout=15_000)
            page.wait_for_function(f"() => dash.snapshot.advisories.some(a => a.hazard === '{hid}')",
                                   timeout=20_000)  # fmt: skip
            page.wait_for_function("() => dash.snapshot.rows.some(r => r[5] !== '')", timeout=10_000)
            # its own figures for Prometheus, while this browser follows its stream
            with urllib.request.urlopen(f"{url}metrics", timeout=5) as resp:
                figures = scraped(resp.read().decode())
            assert figures[("corridor_live_page_clients", ())] == 1
            assert figures[("corridor_live_page_sent_bytes_total", ())] > 0
            assert figures[("corridor_live_page_updates_total", ())] > 0
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            if target := os.environ.get("CORRIDOR_SCREENSHOT"):  # docs/images/live-page.png, on request
                shutil.copy(shot, target)
            browser.close()
        assert errors == [], errors
        assert shot.stat().st_size > 50_000, "the screenshot shows a drawn page"
    finally:
        run.send_signal(signal.SIGINT)  # the run stops, writes its report, and stops its page
        try:
            run.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    assert run.returncode == 0, "".join(said) + (run.stdout.read() if run.stdout else "")
