"""Screenshots of the built site in headless Chromium, at a desktop and a phone width.

    mkdocs build --strict            # the site in site/
    python docs/screenshots.py       # PNGs in out/screenshots/<width>/<page>.png

Serves ``site/`` on a free loopback port and captures the pages that are widest to lay out
(long code, wide tables, wide formulas, long signatures) at 1400 and 400 CSS pixels, so a
change to the layout can be checked by eye: nothing should be cut off or overflow the page;
wide things scroll inside their own box. Needs ``chromium`` (``apt-get install chromium``).
"""
from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    "index.html",
    "guide/concepts/index.html",
    "guide/performance/index.html",
    "guide/clipping/index.html",
    "examples/showdown/index.html",
    "api/clipping/index.html",
    "api/adaptive/index.html",
    "api/core/index.html",
]
WIDTHS = (1400, 400)


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if path := shutil.which(name):
            return path
    sys.exit("no Chromium found: apt-get install chromium")


def _serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site", type=Path, default=ROOT / "site", help="the built site (default: site/)")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "screenshots")
    parser.add_argument("--height", type=int, default=2400, help="the height of each capture in CSS pixels")
    parser.add_argument("--pages", nargs="*", default=PAGES)
    args = parser.parse_args()
    if not (args.site / "index.html").exists():
        sys.exit(f"no site at {args.site}: run `mkdocs build --strict` first")
    browser = _browser()
    server, port = _serve(args.site)
    try:
        for width in WIDTHS:
            for page in args.pages:
                out = args.out / str(width) / (page.replace("/index.html", "").replace("/", "_").replace(".html", "") + ".png")
                out.parent.mkdir(parents=True, exist_ok=True)
                subprocess.run(
                    [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                     f"--window-size={width},{args.height}", "--virtual-time-budget=8000",
                     f"--screenshot={out}", f"http://127.0.0.1:{port}/{page}"],
                    check=True, capture_output=True, timeout=120,
                )
                print(out.relative_to(ROOT) if out.is_relative_to(ROOT) else out)
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
