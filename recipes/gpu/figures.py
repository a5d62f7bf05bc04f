"""Gather every figure of a recipes/gpu/oneshot.sh run into one JSON (rewritten after each step, atomically).

    python recipes/gpu/figures.py --work exp/oneshot --out OUT/figures.json [--budget S --elapsed S]

Reads the run's folder: check.json (``audiokit check``), the corpus summary, each step's exit status and training
speed (``status/NAME``, ``logs/NAME.log``: StepRate's lines), the eval JSONs of the recipe's stages, throughput.json
and the bundle's model cards. Standard library only, so it costs nothing between steps.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import tempfile
from pathlib import Path

STEP = re.compile(r"^step (\d+)(?:/\d+)?: ([0-9.]+) steps/s")
TRAINED = re.compile(r"^trained to step (\d+) in (\d+) s \(([0-9.]+) steps/s overall\)")
EVALS = {"codec": "codec_eval.json", "asr": "asr_eval.json", "valle": "tts_eval.json", "tortoise": "tortoise_eval.json"}


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def steps(work: Path) -> dict:
    out = {}
    for status in sorted((work / "status").glob("*")):
        try:
            rc, secs = status.read_text().split()
        except ValueError:
            continue
        row = {"rc": int(rc), "seconds": int(secs)}
        log = work / "logs" / f"{status.name}.log"
        lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
        rates = [float(m.group(2)) for m in map(STEP.match, lines) if m]
        if rates:
            row["steps_per_s_last"] = rates[-1]
        for m in map(TRAINED.match, lines):
            if m:
                row.update(steps=int(m.group(1)), train_seconds=int(m.group(2)), steps_per_s=float(m.group(3)))
        tail = "\n".join(lines[-60:])
        if "Time limit reached" in tail:
            row["stopped_by"] = "max_time"
        elif "stopped: `max_steps=" in tail:
            row["stopped_by"] = "max_steps"
        out[status.name] = row
    return out


def gather(work: Path, budget: int | None = None, elapsed: int | None = None, command: str | None = None) -> dict:
    fig: dict = {"command": command, "budget_s": budget, "elapsed_s": elapsed}
    check = _json(work / "check.json")
    if check:
        fig["machine"] = check.get("machine")
        fig["check"] = {"ok": check.get("ok"), "seconds": check.get("seconds"), "precision": check.get("precision"),
                        "families": check.get("families")}
    corpus = next(iter(sorted(glob.glob(str(work / "data" / "*" / "corpus.json")))), None)
    if corpus and (c := _json(Path(corpus))):
        fig["corpus"] = {k: c.get(k) for k in ("hours", "utterances", "speakers", "test_speakers", "wall_seconds",
                                               "audio_seconds_per_second", "workers")}
        fig["corpus"]["folder"] = os.path.relpath(Path(corpus).parent, work)
    fig["steps"] = steps(work)
    exp = next(iter(sorted(glob.glob(str(work / "exp" / "oneshot-*")))), None)
    if exp:
        exp = Path(exp)
        fig["size"] = exp.name.split("-", 1)[1]
        fig["eval"] = {k: v for k, f in EVALS.items() if (v := _json(exp / f)) is not None}
    tp = _json(work / "throughput.json")
    if tp:
        fig["throughput"] = tp
    bundle = {}
    for card in sorted((work / "bundle" / "pretrained").glob("*/model.json")):
        c = _json(card) or {}
        bundle[card.parent.name] = {"name": c.get("name"), "parameters": c.get("parameters"), "dtype": c.get("dtype"),
                                    "bytes": sum(f["bytes"] for f in c.get("files", {}).values()), "shared": c.get("shared")}
    if bundle:
        fig["bundle"] = bundle
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget", type=int, default=None)
    ap.add_argument("--elapsed", type=int, default=None)
    ap.add_argument("--command", default=None, help="the command line of the run, for the report")
    a = ap.parse_args()
    fig = gather(Path(a.work), a.budget, a.elapsed, a.command)
    out = Path(a.out)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".figures.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(fig, f, indent=1)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; the usual permissions
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
