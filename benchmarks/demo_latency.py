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


def _click_to_audio(page, family: str, seed: int) -> tuple[float, float, float]:
    """One Generate click; (seconds until the new audio is in the player, server-side synthesis seconds, seconds
    of audio). Each
    click uses its own seed: Gradio serves identical audio from the same cached file, whose URL would not change."""
    page.locator("#family").get_by_text(family, exact=True).click()
    page.locator("#text textarea").fill(SENTENCE)
    seed_box = page.locator("#seed input")
    if not seed_box.is_visible():
        page.get_by_text("Sampling", exact=True).click()  # the accordion holding the seed
    seed_box.fill(str(seed))
    # the player's file link changes when a new clip arrives (its <audio> lives in the waveform view's shadow DOM)
    link = "() => { const a = document.querySelector('#output_audio a[download]'); return a ? a.href : null; }"
    old = page.evaluate(link)
    start = time.perf_counter()
    page.locator("#generate").click()
    page.wait_for_function("(old) => { const a = document.querySelector('#output_audio a[download]'); "
                           "return a && a.href !== old; }", arg=old, timeout=300_000)
    page.locator("#output_audio audio[src]").first.wait_for(state="attached", timeout=60_000)
    elapsed = time.perf_counter() - start
    table = page.locator("#timing").inner_text().replace("*", "")
    total = re.search(r"total\s*\|?\s*([0-9.]+) s", table)
    audio = re.search(r"([0-9.]+) s of audio", table)
    return elapsed, float(total.group(1)) if total else float("nan"), float(audio.group(1)) if audio else float("nan")


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
                _click_to_audio(page, family, seed=100)  # warm-up
                runs = [_click_to_audio(page, family, seed=i) for i in range(args.repeats)]
                click = statistics.median(r[0] for r in runs)
                server = statistics.median(r[1] for r in runs)
                audio = statistics.median(r[2] for r in runs)
                rows.append({"family": family, "click_to_audio_s": click, "synthesis_s": server,
                             "ui_overhead_s": click - server, "audio_s": audio, "runs": runs})
                print(f"{family:<9} click→audio {click:6.2f} s   synthesis {server:6.2f} s   UI overhead {click - server:5.2f} s   "
                      f"audio {audio:5.2f} s (median of {args.repeats})", flush=True)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(20)
    machine = f"{platform.machine()}, {args.threads} torch threads, CPU"
    print("\n| family | click → audio | synthesis (server) | UI overhead | audio made |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['family']} | {r['click_to_audio_s']:.2f} s | {r['synthesis_s']:.2f} s | {r['ui_overhead_s']:.2f} s | "
              f"{r['audio_s']:.2f} s |")
    print(f"\n{machine}; sentence: {SENTENCE!r}; Tortoise preset fast; seeds 0..{args.repeats - 1}; bundled models.")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine, "sentence": SENTENCE, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
