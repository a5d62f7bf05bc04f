"""Time from clicking Generate to audio in the Gradio demo, per model family, in a real (headless) browser.

    python benchmarks/demo_latency.py --threads 2 --repeats 3 [--json out.json]

Starts ``app.py`` on the bundled models, opens the page in Debian's Chromium through Playwright, and for each
family types one sentence, clicks Generate and waits until the audio player holds the new clip. The click-to-audio
time includes the queue, the request, synthesis, encoding the WAV and the browser fetching it; the server's own
synthesis time (from the page's timing table) is reported beside it, so the UI overhead is their difference.
One untimed warm-up click per family first. Needs the ``demo`` and ``test`` extras and ``apt-get install chromium``.
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audiokit.demo import CHROMIUM_ARGS, start_app  # noqa: E402

SENTENCE = "The quick brown fox jumps over the lazy dog."


def _click_to_audio(page, family: str) -> tuple[float, float]:
    """One Generate click; (seconds until the new audio is in the player, server-side synthesis seconds)."""
    page.locator("#family").get_by_text(family, exact=True).click()
    page.locator("#text textarea").fill(SENTENCE)
    old = page.evaluate("() => { const a = document.querySelector('#output_audio audio[src]'); "
                        "return a ? a.getAttribute('src') : null; }")
    start = time.perf_counter()
    page.locator("#generate").click()
    page.wait_for_function("(old) => { const a = document.querySelector('#output_audio audio[src]'); "
                           "return a && a.getAttribute('src') !== old; }", arg=old, timeout=600_000)
    elapsed = time.perf_counter() - start
    total = re.search(r"total\s*\|?\s*([0-9.]+) s", page.locator("#timing").inner_text().replace("*", ""))
    return elapsed, float(total.group(1)) if total else float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--families", nargs="+", default=["VALL-E", "Tortoise"])
    p.add_argument("--json", default=None)
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("no chromium binary: apt-get install chromium")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = Path(tempfile.mkdtemp()) / "app.log"
    proc, url = start_app(port, log, ["--threads", str(args.threads)])
    rows = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url, wait_until="networkidle")
            for family in args.families:
                _click_to_audio(page, family)  # warm-up
                runs = [_click_to_audio(page, family) for _ in range(args.repeats)]
                click = statistics.median(r[0] for r in runs)
                server = statistics.median(r[1] for r in runs)
                rows.append({"family": family, "click_to_audio_s": click, "synthesis_s": server,
                             "ui_overhead_s": click - server, "runs": runs})
                print(f"{family:<9} click→audio {click:6.2f} s   synthesis {server:6.2f} s   UI overhead {click - server:5.2f} s "
                      f"(median of {args.repeats})", flush=True)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(20)
    machine = f"{platform.machine()}, {args.threads} torch threads, CPU"
    print(f"\n| family | click → audio | synthesis (server) | UI overhead |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['family']} | {r['click_to_audio_s']:.2f} s | {r['synthesis_s']:.2f} s | {r['ui_overhead_s']:.2f} s |")
    print(f"\n{machine}; sentence: {SENTENCE!r}; Tortoise preset fast; seed 0; bundled models.")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "sentence": SENTENCE, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
