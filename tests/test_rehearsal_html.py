"""The rehearsal's HTML page, opened in headless Chromium: it renders (its script ran), the
timeline has exactly one bar per VM, and a hostile VM name stays text."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from orchestration.rehearsal.html import bar_height, natural_key, render_html, ticks
from orchestration.rehearsal.report import build_report
from tests.support.rehearsal import (
    HOSTILE_NAME,
    migrated_vm,
    observation,
    two_wave_observation,
    wave,
)

CHROMIUM_TIMEOUT_SECONDS = 60
INSTALL_HINT = "apt-get install -y --no-install-recommends chromium (Debian's package)"


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip(f"chromium is not on PATH: {INSTALL_HINT}")
    return found


def _dump_dom(page: Path, profile: Path) -> str:
    """The DOM after the page's scripts ran, as Chromium serializes it."""
    completed = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=CHROMIUM_TIMEOUT_SECONDS,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout


def test_the_page_renders_in_chromium_with_one_bar_per_vm(tmp_path: Path) -> None:
    # GIVEN a report of 2 waves, 3 applications, 12 VMs (one rolled back, one named to break out)
    report = build_report(two_wave_observation())
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")

    # WHEN Chromium opens it
    dom = _dump_dom(page, tmp_path / "profile")

    # THEN its script ran to the end (it marks the document and counts the bars it found)
    assert re.search(r'<html[^>]*data-rendered="yes"', dom)
    assert "12 VMs drawn" in dom
    # AND each VM has exactly one bar, carrying its migration id
    bar_ids = re.findall(r'<g class="vm-bar[^"]*" data-migration-id="([^"]+)"', dom)
    assert sorted(bar_ids) == sorted(vm.migration_id for vm in report.vms)
    assert len(bar_ids) == 12
    # AND one timeline per wave, the rolled-back VM's bar has a rollback segment
    assert dom.count('<svg class="wave-chart"') == 2
    rolled_back = next(vm for vm in report.vms if vm.outcome == "rolled-back")
    bar = dom.split(f'data-migration-id="{rolled_back.migration_id}"', 1)[1].split("</g>", 1)[0]
    assert 'class="p-rollback"' in bar
    # AND the hostile name is text: no script of its own ran, nothing broke out of the page
    assert "<script>alert" not in dom
    assert dom.count("<script>") == 1


def test_every_user_string_is_escaped() -> None:
    html = render_html(build_report(two_wave_observation()))

    assert HOSTILE_NAME not in html
    assert "&lt;/script&gt;&lt;script&gt;alert(&#34;x&#34;)" in html
    assert html.count("<script>") == 1


def test_the_page_fetches_nothing() -> None:
    html = render_html(build_report(two_wave_observation()))

    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "@import" not in html


def test_a_thousand_vms_get_thinner_bars_and_a_page_that_scrolls() -> None:
    assert bar_height(12) == 16
    assert bar_height(1000) == 4
    vms = [migrated_vm(f"m-{i:04d}", app=f"app-{i % 40}") for i in range(1000)]
    html = render_html(build_report(observation(vms, [wave()])))

    assert html.count('class="vm-bar') == 1000
    assert len(html) < 8_000_000


def test_the_axis_is_in_hours_with_a_readable_step() -> None:
    assert [tick.label for tick in ticks(5 * 3600)] == [
        "0h",
        "0.5h",
        "1h",
        "1.5h",
        "2h",
        "2.5h",
        "3h",
        "3.5h",
        "4h",
        "4.5h",
        "5h",
    ]
    assert [tick.label for tick in ticks(30 * 3600)][:3] == ["0h", "2h", "4h"]


def test_applications_and_vms_sort_as_people_count() -> None:
    assert sorted(["app-10", "app-2", "App-1", "db"], key=natural_key) == [
        "App-1",
        "app-2",
        "app-10",
        "db",
    ]
