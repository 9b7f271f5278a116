"""Take docs/dashboard.png and docs/dashboard-phone.png: the installation (headless, embedded
default) with the dashboard on, photographed in headless Chromium after it has run for a while,
at desktop width and at a phone's 390 px.

    .venv/bin/python tools/dashboard_screenshot.py [--out docs/dashboard.png]
        [--phone-out docs/dashboard-phone.png] [--wait-s 20]
"""
from __future__ import annotations

import argparse
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    parser.add_argument("--phone-out", type=Path, default=ROOT / "docs" / "dashboard-phone.png")
    parser.add_argument("--wait-s", type=float, default=20.0, help="seconds of running before the picture")
    args = parser.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    token = secrets.token_urlsafe(8)
    proc = subprocess.Popen([sys.executable, str(ROOT / "run.py"), "--headless", "--quiet", "--duration", "300",
                             "--set", "web.enabled=true", "--set", f"web.port={port}", "--set", f'web.token="{token}"',
                             "--set", 'installation.name="Gallery 3"', "--set", f'schedule.open_hours=["{time.strftime("%H:00", time.localtime(time.time() - 3600))}-23:59"]',
                             "--set", "schedule.holidays_country=\"DE\"", "--set", "osc.enabled=false"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,860", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                driver.get(f"http://127.0.0.1:{port}/?token={token}")
                break
            except Exception:  # noqa: BLE001 - not listening yet
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(1.0)
        time.sleep(args.wait_s)
        driver.find_element("css selector", '.scene-button:nth-child(2)').click()
        time.sleep(3.0)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(args.out))
        print(args.out)
        driver.set_window_size(390, 844)
        time.sleep(2.0)
        driver.save_screenshot(str(args.phone_out))
        print(args.phone_out)
    finally:
        driver.quit()
        proc.terminate()
        proc.wait(15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
