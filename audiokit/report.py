"""``audiokit eval codec|asr|tts --report DIR``: the evaluation as a small self-contained page (issue 24).

``DIR/index.html`` holds every figure the ``--json`` record holds, as tables, and PNG plots beside it
(matplotlib's object API, no pyplot state): codec — quality against bitrate (mel distance, SI-SDR, PESQ, STOI),
with Opus's line beside the codec's when ``--opus`` ran;
ASR — WER per speaker (and per engine, the speaker id's prefix) and a histogram of per-utterance WER;
TTS — WER and voice similarity per system (ground truth and codec resynthesis beside the model), WER and
similarity per speaker (the model beside ground truth), and the real-time factor per stage. Nothing is fetched: the page opens offline.
"""
from __future__ import annotations

import html
import json
import os
from collections import defaultdict
from pathlib import Path


def _figure(width: float = 6.0, height: float = 3.2):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("--report draws with matplotlib: pip install 'audiokit[demo]' (or matplotlib)") from None
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(fig, folder: Path, name: str) -> str:
    fig.savefig(folder / name)
    return name


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return html.escape(json.dumps(v))
    return html.escape(str(v))


def _table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "<p>(none)</p>"
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _codec_plots(record: dict, folder: Path) -> list[str]:
    series = [("audiokit", sorted(record["rows"], key=lambda r: r["kbps"]))]
    if record.get("opus"):  # eval codec --opus: Opus on the same utterances at the same bitrates
        series.append(("Opus", sorted(record["opus"], key=lambda r: r["kbps"])))
    metrics = [(k, t) for k, t in (("mel_distance", "mel distance (lower is better)"), ("si_sdr", "SI-SDR, dB"),
                                   ("pesq", "PESQ-wb"), ("stoi", "STOI"))
               if any(r.get(k) is not None for _, rows in series for r in rows)]
    fig = _figure(3.2 * len(metrics), 3.0)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, (key, title) in zip(axes, metrics):
        for name, rows in series:
            pts = [(r["kbps"], r[key]) for r in rows if r.get(key) is not None]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=name)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("kbps")
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=8)
    return [_save(fig, folder, "quality_vs_bitrate.png")]


def _wer(ref: str, hyp: str) -> float:
    from .asr.metrics import wer_cer

    return wer_cer([ref], [hyp])["wer"]


def _bars(folder: Path, name: str, labels: list[str], values: list[float], title: str, ylabel: str) -> str:
    fig = _figure(max(4.0, 0.5 * len(labels) + 2), 3.4)
    ax = fig.subplots()
    ax.bar(range(len(labels)), values, color="#4c72b0")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, folder, name)


def _asr_plots(record: dict, folder: Path) -> list[str]:
    rows = record["rows"]
    per = defaultdict(list)
    for r in rows:
        per[r.get("speaker") or "?"].append(_wer(r["ref"], r["hyp"]))
    speakers = sorted(per)
    out = [_bars(folder, "wer_per_speaker.png", speakers, [100 * sum(per[s]) / len(per[s]) for s in speakers],
                 "WER per speaker (mean of utterances)", "WER %")]
    engines = defaultdict(list)
    for s in speakers:
        engines[s.split("-")[0]] += per[s]
    if len(engines) > 1:
        names = sorted(engines)
        out.append(_bars(folder, "wer_per_engine.png", names, [100 * sum(engines[e]) / len(engines[e]) for e in names],
                         "WER per engine", "WER %"))
    fig = _figure()
    ax = fig.subplots()
    ax.hist([100 * _wer(r["ref"], r["hyp"]) for r in rows], bins=20, color="#55a868")
    ax.set_title("per-utterance WER", fontsize=9)
    ax.set_xlabel("WER %")
    ax.set_ylabel("utterances")
    out.append(_save(fig, folder, "wer_histogram.png"))
    return out


def _tts_plots(record: dict, folder: Path) -> list[str]:
    rows = record["rows"]
    names = [r["system"] for r in rows]
    out = []
    if any("wer_asr" in r for r in rows):
        out.append(_bars(folder, "wer_per_system.png", names, [100 * (r.get("wer_asr") or 0) for r in rows],
                         "WER by the judge (ground truth first)", "WER %"))
    if any(r.get("similarity") is not None for r in rows):
        fig = _figure()
        ax = fig.subplots()
        x = range(len(rows))
        ax.bar([i - 0.2 for i in x], [r.get("similarity") or 0 for r in rows], 0.4, label="to the prompt")
        ax.bar([i + 0.2 for i in x], [r.get("similarity_other_speaker") or 0 for r in rows], 0.4, label="to another speaker")
        ax.set_xticks(list(x), names, rotation=30, ha="right", fontsize=7)
        ax.set_title("voice similarity (resemblyzer)", fontsize=9)
        ax.legend(fontsize=8)
        out.append(_save(fig, folder, "similarity.png"))
    stages = next((r["rtf_stages"] for r in rows if r.get("rtf_stages")), None)
    if stages:
        out.append(_bars(folder, "rtf_per_stage.png", list(stages), list(stages.values()),
                         "real-time factor per stage (seconds per second of speech)", "RTF"))
    items = record.get("items") or []
    speakers = sorted({it.get("speaker") or "?" for it in items})
    for what, key, name, title, unit in (
            ("WER", "_asr", "wer_per_speaker.png", "WER per speaker: the model against ground truth", "WER %"),
            ("similarity", "_similarity", "similarity_per_speaker.png",
             "voice similarity to the prompt per speaker: the model against ground truth", "cosine")):
        per = defaultdict(lambda: defaultdict(list))
        for it in items:
            for system in ("real", "model"):
                v = it.get(system + key)
                if v is None:
                    continue
                per[system][it.get("speaker") or "?"].append(100 * _wer(it["text"], v) if what == "WER" else v)
        if not per.get("model"):
            continue
        fig = _figure(max(4.0, 0.6 * len(speakers) + 2), 3.4)
        ax = fig.subplots()
        for shift, system, label in ((-0.2, "real", "ground truth"), (0.2, "model", "model")):
            vals = [sum(per[system][sp]) / len(per[system][sp]) if per[system][sp] else 0 for sp in speakers]
            ax.bar([i + shift for i in range(len(speakers))], vals, 0.4, label=label)
        ax.set_xticks(range(len(speakers)), speakers, rotation=60, ha="right", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(unit)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        out.append(_save(fig, folder, name))
    return out


def write_report(kind: str, record: dict, folder: str | os.PathLike) -> Path:
    """Write ``folder/index.html`` and its plots for an ``eval`` record (what ``--json`` writes)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plots = {"codec": _codec_plots, "asr": _asr_plots, "tts": _tts_plots}[kind](record, folder)
    scalars = {k: v for k, v in record.items() if not isinstance(v, (list, dict))}
    nested = {k: v for k, v in record.items() if isinstance(v, dict)}
    parts = [f"<h1>audiokit eval {kind}</h1>", _table([scalars]) if scalars else ""]
    parts += [f'<figure><img src="{p}" alt="{p}"><figcaption>{p}</figcaption></figure>' for p in plots]
    for key, value in nested.items():
        parts += [f"<h2>{html.escape(key)}</h2>", _table([value] if all(not isinstance(v, list) for v in value.values())
                                                          else [{"value": json.dumps(value)}])]
    for key in ("rows", "opus", "items"):
        if record.get(key):
            parts += [f"<h2>{key}</h2>", _table(record[key])]
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;"
             "font-size:12px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}"
             "img{max-width:100%}figure{margin:1em 0}")
    page = f"<!doctype html><meta charset='utf-8'><title>audiokit eval {kind}</title><style>{style}</style>" + "".join(parts)
    from .fileio import atomic_path

    with atomic_path(folder / "index.html") as tmp:
        tmp.write_text(page, encoding="utf-8")
    return folder / "index.html"
