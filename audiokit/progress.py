"""Progress of long work, one helper for every command (issue 24).

On a terminal: a tqdm bar on standard error with the rate and the ETA. Elsewhere (CI, ``nohup``, a log file):
a plain line every ``every_seconds`` (5; ``AUDIOKIT_PROGRESS_SECONDS`` sets it) — ``NAME: 40/315 utterances
(13 %), 3.1 utterances/s, 120 audio-s/s, ETA 1m32s`` — and a last one with the total time; work shorter than
that prints nothing. ``--quiet`` (:func:`set_quiet`, or ``AUDIOKIT_QUIET=1``) turns both off. Standard
output is never written, so transcripts and tables still pipe cleanly. tqdm is already a dependency
(Lightning's progress bar).
"""
from __future__ import annotations

import os
import sys
import time

_QUIET = False


def set_quiet(quiet: bool) -> None:
    global _QUIET
    _QUIET = quiet


def quiet() -> bool:
    return _QUIET or os.environ.get("AUDIOKIT_QUIET", "") not in ("", "0")


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    """``with Progress(total, "eval codec", unit="utterances") as p: ... p.update(1, seconds=audio_s,
    note="PESQ 2.1")``. ``seconds``: audio processed, shown as audio-seconds per second; ``note``: a running
    figure. ``total`` None: counts without a bar or an ETA."""

    def __init__(self, total: int | None, name: str, unit: str = "items", every_seconds: float | None = None,
                 stream=None, enabled: bool = True):
        self.total, self.name, self.unit = total, name, unit
        self.every = every_seconds if every_seconds is not None else float(os.environ.get("AUDIOKIT_PROGRESS_SECONDS", 5))
        self.lines = 0
        self.stream = stream if stream is not None else sys.stderr
        self.done, self.audio, self.note = 0, 0.0, ""
        self.start = self.last = time.perf_counter()
        self.bar = None
        self.off = quiet() or not enabled  # enabled=False: short work, nothing to show
        if not self.off and self._tty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=name, unit=" " + unit, file=self.stream, dynamic_ncols=True,
                            leave=True)

    def _tty(self) -> bool:
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):
            return False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close(final=exc[0] is None)

    def update(self, n: int = 1, seconds: float = 0.0, note: str = "") -> None:
        self.done += n
        self.audio += seconds
        self.note = note or self.note
        if self.off:
            return
        if self.bar is not None:
            post = {}
            if self.audio:
                post["audio-s/s"] = f"{self.audio / max(time.perf_counter() - self.start, 1e-9):.1f}"
            if self.note:
                post["now"] = self.note
            if post:
                self.bar.set_postfix(post, refresh=False)
            self.bar.update(n)
            return
        now = time.perf_counter()
        if now - self.last >= self.every:
            self.last = now
            self._line()

    def _line(self, final: bool = False) -> None:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        parts = [f"{self.done}/{self.total} {self.unit} ({100 * self.done / self.total:.0f} %)" if self.total
                 else f"{self.done} {self.unit}", f"{self.done / elapsed:.2f} {self.unit}/s"]
        if self.audio:
            parts.append(f"{self.audio / elapsed:.1f} audio-s/s")
        if self.note:
            parts.append(self.note)
        if final:
            parts.append(f"done in {_clock(elapsed)}")
        elif self.total and self.done:
            parts.append(f"ETA {_clock(elapsed / self.done * (self.total - self.done))}")
        print(f"{self.name}: " + ", ".join(parts), file=self.stream, flush=True)
        self.lines += 1

    def close(self, final: bool = True) -> None:
        if self.off:
            return
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif final and self.done and (self.lines or time.perf_counter() - self.start >= self.every):
            self._line(final=True)
        self.off = True
