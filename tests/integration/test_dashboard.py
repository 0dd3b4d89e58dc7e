"""The admin dashboard in headless Chromium (Debian's chromium driven by Playwright): a fresh
page shows the history the server kept (charts with axes per listener and pool), live rates,
server actions (maint, ready, add, remove) through the API, the events they cause, a favicon;
a pool of 10,000 servers is paged. Screenshots are saved under the test's tmp dir."""

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


def wait_until(cond, timeout: float = WAIT) -> bool:
    """Poll ``cond`` (a check of the balancer's state, never of elapsed time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def history_samples(port: int, kind: str, name: str) -> list:
    status, body = api(port, "GET", "/api/v1/history", token=None)
    assert status == 200
    return body[kind].get(name, [])


def pixels(shot, color, tolerance=40) -> int:
    rgb = (matplotlib.image.imread(str(shot))[..., :3] * 255).astype(int)
    return int(np.all(np.abs(rgb - np.array(color)) < tolerance, axis=-1).sum())


def test_dashboard_shows_kept_history_and_acts_on_servers(backends, balancer, tmp_path):
    a, b, c = backends(["a", "b", "c"])
    lb = balancer(admin_config(servers_toml([a, b])))
    port = admin_port(lb)
    stop = threading.Event()

    def traffic() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=WAIT)
        for i in range(200_000):  # bounded in count and by the test's end
            if stop.is_set():
                break
            conn.request("GET", "/status/503" if i % 10 == 0 else "/")  # some 5xx: the errors line
            conn.getresponse().read()
        conn.close()

    loader = threading.Thread(target=traffic, daemon=True)
    loader.start()
    shot = tmp_path / "dashboard.png"
    try:
        # the server keeps the history: three samples with traffic before any page is open
        assert wait_until(lambda: sum(1 for s in history_samples(port, "pools", "app") if s[1] > 0) >= 3)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1920, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/")
            pool_card = page.locator('.card[data-kind="pool"][data-name="app"]')
            pool_card.wait_for(timeout=WAIT * 1000)
            page.locator('.card[data-kind="listener"][data-name="web"]').wait_for(timeout=WAIT * 1000)
            assert page.evaluate("series.pool.app.length") >= 3  # a fresh page starts with that history
            assert float(pool_card.locator(".stat.rps b").text_content()) > 0
            assert float(pool_card.locator(".stat.eps b").text_content()) > 0  # the 503s
            assert float(pool_card.locator(".stat.p99 b").text_content()) > 0
            row_a = page.locator('table[data-pool="app"] tr[data-server="a"]')
            row_a.wait_for(timeout=WAIT * 1000)
            assert wait_until(lambda: float(row_a.locator("td.rate").text_content() or 0) > 0)
            assert page.locator('link[rel="icon"]').get_attribute("href") == "/favicon.svg"
            page.screenshot(path=str(shot), full_page=True)

            page.fill("#token", TOKEN)
            page.dispatch_event("#token", "change")
            row_a.locator("button.maint").click()
            page.locator('tr[data-server="a"] td.status.maint').wait_for(timeout=WAIT * 1000)
            page.locator("#events li", has_text="server a: set to maint").wait_for(timeout=WAIT * 1000)
            page.fill("#add-address", c.address)
            page.fill("#add-name", "c")
            page.click("#add")
            page.locator('tr[data-server="c"]').wait_for(timeout=WAIT * 1000)
            page.on("dialog", lambda d: d.accept())
            page.locator('tr[data-server="b"] button.remove').click()
            page.locator("#events li", has_text="server b: removed").wait_for(timeout=WAIT * 1000)
            page.locator('tr[data-server="b"]').wait_for(state="detached", timeout=WAIT * 1000)
            page.screenshot(path=str(tmp_path / "dashboard-after-actions.png"), full_page=True)
            browser.close()
    finally:
        stop.set()
        loader.join(WAIT)
    status, pool = api(port, "GET", "/api/v1/pools/app", token=None)
    assert {s["server"]: s["status"] for s in pool["servers"]} == {"a": "maint", "c": "up"}

    # the screenshot: the wide screen used (content in its right quarter), charts drawn
    img = matplotlib.image.imread(str(shot))
    assert img.shape[1] >= 1900
    right = (img[:, int(img.shape[1] * 0.75) :, :3].sum(axis=-1) < 1.5).sum()  # text and lines, not background
    assert right > 2000, "the right quarter of the screen is empty"
    assert pixels(shot, (26, 115, 232)) > 200, "no requests/s line"
    assert pixels(shot, (217, 48, 37)) > 50, "no errors/s line"
    assert pixels(shot, (132, 48, 206)) > 50, "no p99 line"
    print(
        f"\ndashboard screenshots: {shot} ({img.shape[1]}x{img.shape[0]}) and {tmp_path / 'dashboard-after-actions.png'}"
    )


def test_a_pool_of_ten_thousand_servers_is_paged(balancer, tmp_path):
    servers = ", ".join(f'{{ address = "127.0.0.1:{20000 + i}", name = "s{i}" }}' for i in range(1, 10_001))
    lb = balancer(admin_config(f"servers = [ {servers} ]"))
    port = admin_port(lb)
    status, page_one = api(port, "GET", "/api/v1/servers?pool=app&limit=50", token=None)
    assert status == 200 and page_one["total"] == 10_000 and len(page_one["servers"]) == 50
    status, found = api(port, "GET", "/api/v1/servers?pool=app&q=s9999", token=None)
    assert [s["server"] for s in found["servers"]] == ["s9999"]
    status, bad = api(port, "GET", "/api/v1/servers?pool=app&limit=100000", token=None)
    assert status == 400 and bad["field"] == "limit"
    status, overview = api(port, "GET", "/api/v1/overview", token=None)
    assert overview["pools"][0]["by_status"] == {"up": 10_000}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1920, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/")
        page.locator("#range", has_text="1–50 of 10000").wait_for(timeout=WAIT * 1000)
        assert page.locator("#servers tr[data-server]").count() == 50
        page.click("#next")
        page.locator("#range", has_text="51–100 of 10000").wait_for(timeout=WAIT * 1000)
        page.locator('#servers tr[data-server="s51"]').wait_for(timeout=WAIT * 1000)
        page.fill("#q", "s9999")
        page.locator("#range", has_text="1–1 of 1").wait_for(timeout=WAIT * 1000)
        page.screenshot(path=str(tmp_path / "dashboard-10000.png"), full_page=True)
        browser.close()
