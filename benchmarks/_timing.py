"""Timing shared by the benchmark scripts (run as ``python benchmarks/NAME.py``, so this module is importable)."""
import argparse
import platform
import statistics
import time


def timed(fn, repeats, sync):
    """Median wall time of ``fn`` over ``repeats`` runs after one warm-up, and its last result."""
    fn()
    sync()
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def timed_alternating(fns, repeats, sync):
    """Median wall time of each of ``fns`` and its last result, the functions run in turn ``repeats`` times after
    one warm-up each: drift of the machine (memory, clock) falls on all of them alike, not on whichever ran last."""
    for fn in fns:
        fn()
    sync()
    times, outs = [[] for _ in fns], [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            outs[i] = fn()
            sync()
            times[i].append(time.perf_counter() - t)
    return [(statistics.median(ts), out) for ts, out in zip(times, outs)]


def device_args(ap: argparse.ArgumentParser) -> None:
    """``--threads``, ``--repeats``, ``--device``, ``--dtype``: the options every GPU-capable benchmark takes."""
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")


def device_setup(args):
    """(device, dtype, sync, machine description) for parsed :func:`device_args`; sets the thread count."""
    import torch

    torch.set_num_threads(args.threads)
    dev, dtype = torch.device(args.device), getattr(torch, args.dtype)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    machine = torch.cuda.get_device_name(0) if dev.type == "cuda" else f"{platform.processor() or platform.machine()}, {args.threads} threads"
    return dev, dtype, sync, machine


def print_table(header: list[str], rows: list[list]) -> None:
    """A Markdown table: ``header`` cells, then one line per row of cells (already formatted)."""
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
