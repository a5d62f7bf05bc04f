"""The figures of a recipes/gpu/oneshot.sh run as a Markdown section, put into benchmarks/RESULTS.md.

    python recipes/gpu/report.py OUT/figures.json --results benchmarks/RESULTS.md    # replaces the section if there
    python recipes/gpu/report.py OUT/figures.json                                    # prints it

The section sits between ``<!-- oneshot:begin -->`` and ``<!-- oneshot:end -->`` (appended the first time), so a
later run replaces it rather than adding a second one. Every figure stands beside ground truth's by the same judge
where there is one. Standard library only.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

BEGIN, END = "<!-- oneshot:begin -->", "<!-- oneshot:end -->"


def _f(v, fmt="{:.2f}"):
    return "-" if v is None else fmt.format(v)


def _pct(v):
    return "-" if v is None else f"{100 * v:.1f}"


def _table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(map(str, r)) + " |" for r in rows), ""]


def render(fig: dict, command: str) -> str:
    size = fig.get("size", "?")
    lines = [BEGIN, "## One GPU, ten minutes: `recipes/gpu/oneshot.sh`", "",
             f"Machine: {fig.get('machine', '?')}. Budget {fig.get('budget_s')} s, finished in {fig.get('elapsed_s')} s; "
             f"size `{size}`. Command (one device call; then `bash recipes/gpu/adopt.sh OUT`):", "", "```bash", command, "```", ""]
    check = fig.get("check") or {}
    if check:
        lines += [f"CUDA smoke (`audiokit check`, {check.get('precision')}, {check.get('seconds')} s): "
                  + ", ".join(f"{k} {'ok' if v.get('ok') else 'FAILED: ' + v.get('error', '')}"
                              for k, v in (check.get("families") or {}).items()), ""]
    c = fig.get("corpus") or {}
    if c:
        hours = c.get("hours") or {}
        lines += [f"Corpus: {sum(hours.values()) if isinstance(hours, dict) else hours:.2f} h synthetic speech "
                  f"({c.get('speakers')} speakers, {len(c.get('test_speakers') or [])} held out) in {c.get('wall_seconds')} s "
                  f"on {c.get('workers')} processes ({c.get('audio_seconds_per_second')} s of audio per second).", ""]
    steps = fig.get("steps") or {}
    train = [[k, v.get("rc"), v.get("seconds"), v.get("steps", "-"), _f(v.get("steps_per_s")), v.get("stopped_by", "-")]
             for k, v in steps.items()]
    if train:
        lines += ["Steps (exit status, wall seconds; training: optimizer steps, steps/s, what ended it):", ""]
        lines += _table(["step", "exit", "s", "optimizer steps", "steps/s", "ended by"], train)
    ev = fig.get("eval") or {}
    if "codec" in ev:
        lines += [f"Codec on held-out speakers ({ev['codec']['rows'][0].get('utterances')} utterances):", ""]
        lines += _table(["kbps", "n_q", "mel distance", "SI-SDR dB", "PESQ", "STOI", "codebook usage"],
                        [[_f(r.get("kbps")), r.get("n_q"), _f(r.get("mel_distance"), "{:.3f}"), _f(r.get("si_sdr")),
                          _f(r.get("pesq"), "{:.3f}"), _f(r.get("stoi"), "{:.3f}"), _f(r.get("codebook_usage"), "{:.3f}")]
                         for r in ev["codec"]["rows"]])
    if "asr" in ev:
        a = ev["asr"]
        lines += [f"ASR on held-out speakers: WER {_pct(a.get('wer'))} %, CER {_pct(a.get('cer'))} % "
                  f"({a.get('utterances')} utterances).", ""]
    for fam in ("valle", "tortoise"):
        if fam in ev:
            rows = ev[fam]["rows"]
            lines += [f"{'VALL-E' if fam == 'valle' else 'Tortoise'} on held-out speakers ({rows[0].get('utterances')} "
                      "utterances; the run's ASR is the judge, ground truth scored by it first):", ""]
            lines += _table(["system", "WER (%)", "similarity to prompt", "to another speaker", "RTF"],
                            [[r["system"], _pct(r.get("wer_asr")), _f(r.get("similarity"), "{:.3f}"),
                              _f(r.get("similarity_other_speaker"), "{:.3f}"), _f(r.get("rtf"), "{:.3f}")] for r in rows])
    tp = fig.get("throughput") or {}
    if tp.get("rows"):
        lines += [f"Throughput on {tp.get('machine')} (torch {tp.get('torch')}), seconds of audio per second:", ""]
        lines += _table(["model", "dtype", "batch", "audio s/s", "vs float32", "same output as float32"],
                        [[r["model"], r["dtype"], r["batch"], r["audio_s_per_s"], _f(r.get("speedup_vs_float32")),
                          _f(r.get("codes_identical", r.get("transcripts_identical")), "{:.3f}")] for r in tp["rows"]])
    b = fig.get("bundle") or {}
    if b:
        lines += ["The bundle:", ""]
        lines += _table(["folder", "name", "parameters (M)", "stored", "MB", "shares"],
                        [[k, v.get("name"), _f((v.get("parameters") or 0) / 1e6), v.get("dtype"),
                          _f((v.get("bytes") or 0) / 1e6, "{:.1f}"), ", ".join(f"{n} -> {t}" for n, t in (v.get("shared") or {}).items()) or "-"]
                         for k, v in b.items()])
    lines.append(END)
    return "\n".join(lines) + "\n"


def put(results: Path, section: str) -> None:
    text = results.read_text() if results.is_file() else ""
    if BEGIN in text and END in text:
        a, b = text.index(BEGIN), text.index(END) + len(END)
        text = text[:a] + section.rstrip("\n") + text[b:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    fd, tmp = tempfile.mkstemp(dir=results.parent, prefix=".results.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("figures")
    ap.add_argument("--results", default=None, help="the Markdown file to put the section into [print it]")
    ap.add_argument("--command", default=None, help="the command that made the figures [the one they record]")
    a = ap.parse_args()
    fig = json.loads(Path(a.figures).read_text())
    section = render(fig, a.command or fig.get("command") or "bash recipes/gpu/oneshot.sh")
    if a.results:
        put(Path(a.results), section)
        print(f"{a.results}: the oneshot section written")
    else:
        print(section)


if __name__ == "__main__":
    main()
