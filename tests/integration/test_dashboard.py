"""The admin dashboard in headless Chromium (Debian's chromium driven by Playwright): live
traffic shows up per server, the drain button changes the server through the API, and the
screenshot taken after live traffic shows the tables and the charts."""

from __future__ import annotations

import http.client
import threading
import time

import matplotlib.image
import numpy as np
from playwright.sync_api import sync_playwright

from .conftest import servers_toml
from .test_admin import TOKEN, admin_config, admin_port, api

WAIT = 20.0
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_dashboard_shows_live_traffic_and_drains_a_server(backends, balancer, tmp_path):
    a, b = backends(["a", "b"])
    lb = balancer(admin_config(servers_toml([a, b])))
    port = admin_port(lb)
    stop = threading.Event()

    def traffic() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=WAIT)
        for _ in range(200_000):  # bounded in count and by the test's end
            if stop.is_set():
                break
            conn.request("GET", "/")
            conn.getresponse().read()
        conn.close()

    loader = threading.Thread(target=traffic, daemon=True)
    loader.start()
    shot = tmp_path / "dashboard.png"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 500})
            page.goto(f"http://127.0.0.1:{port}/")
            row_a = page.locator('table[data-pool="app"] tr[data-server="a"]')
            row_a.wait_for(timeout=WAIT * 1000)
            deadline = time.monotonic() + WAIT
            rates = []
            while time.monotonic() < deadline:  # polling what the page shows
                rates = [float(page.locator(f'tr[data-server="{s}"] td.rate').text_content() or 0) for s in "ab"]
                if all(r > 0 for r in rates):
                    break
                page.wait_for_timeout(200)
            assert all(r > 0 for r in rates), rates
            page.wait_for_timeout(1500)  # a few more samples for the charts
            page.screenshot(path=str(shot), full_page=True)
            page.fill("#token", TOKEN)
            page.dispatch_event("#token", "change")
            row_a.locator("button.drain").click()
            page.locator('tr[data-server="a"] td.status.drain').wait_for(timeout=WAIT * 1000)
            browser.close()
    finally:
        stop.set()
        loader.join(WAIT)
    status, pool = api(port, "GET", "/api/v1/pools/app", token=None)
    assert {s["server"]: s["status"] for s in pool["servers"]} == {"a": "drain", "b": "up"}

    # the screenshot: a page with content, and the charts' blue lines drawn
    img = matplotlib.image.imread(str(shot))
    assert img.shape[0] >= 200 and img.shape[1] >= 1000
    rgb = (img[..., :3] * 255).astype(int)
    blue = np.all(np.abs(rgb - np.array([26, 115, 232])) < 40, axis=-1)
    assert blue.sum() > 50, "no chart line in the screenshot"
    dark = (rgb.sum(axis=-1) < 200).sum()
    assert dark > 2000, "no text in the screenshot"
    print(f"\ndashboard screenshot: {shot} ({img.shape[1]}x{img.shape[0]}), req/s seen {rates}")
