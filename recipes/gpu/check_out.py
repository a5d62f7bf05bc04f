"""Check a results folder against what a lent GPU machine sends back: at most 8 files, each at most 16 MiB, at most
64 MiB together, no deeper than two folders below it, every file and folder named in letters, digits, '.', '_'
and '-'. Anything else would be left behind.

    python recipes/gpu/check_out.py OUT        # prints the files; exit status 1 and one line per problem otherwise
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

MAX_FILES = 8
MAX_FILE_BYTES = 16 * 2**20
MAX_TOTAL_BYTES = 64 * 2**20
MAX_DEPTH = 2  # OUT/a/b/file comes back, OUT/a/b/c/file does not
NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def problems(out: str | os.PathLike) -> list[str]:
    out = Path(out)
    found, total = [], 0
    files = []
    for root, dirs, names in os.walk(out):
        rel = Path(root).relative_to(out)
        for d in dirs:
            if not NAME.match(d):
                found.append(f"{rel / d}/: folder name outside [A-Za-z0-9._-]")
        for n in names:
            p = Path(root) / n
            r = p.relative_to(out)
            files.append(r)
            if p.is_symlink() or not p.is_file():
                found.append(f"{r}: not a plain file")
                continue
            if not NAME.match(n):
                found.append(f"{r}: file name outside [A-Za-z0-9._-]")
            if len(r.parts) - 1 > MAX_DEPTH:
                found.append(f"{r}: more than {MAX_DEPTH} folders deep")
            size = p.stat().st_size
            total += size
            if size > MAX_FILE_BYTES:
                found.append(f"{r}: {size} bytes, over {MAX_FILE_BYTES}")
    if len(files) > MAX_FILES:
        found.append(f"{len(files)} files, over {MAX_FILES}: {', '.join(map(str, sorted(files)))}")
    if total > MAX_TOTAL_BYTES:
        found.append(f"{total} bytes in all, over {MAX_TOTAL_BYTES}")
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    bad = problems(out)
    sizes = sorted((p.relative_to(out).as_posix(), p.stat().st_size) for p in out.rglob("*") if p.is_file())
    print(f"check_out: {len(sizes)} files, {sum(s for _, s in sizes)} bytes: " + ", ".join(f"{n} ({s})" for n, s in sizes))
    for line in bad:
        print(f"check_out: PROBLEM: {line}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
