"""Rewrite a wheel without the files a run does not need (e.g. every espeak-ng dictionary but English's), so the
wheels carried to a machine without a package index stay small. RECORD is rewritten to match.

    python recipes/gpu/trim_wheel.py WHEEL --drop 'espeakng_loader/espeak-ng-data/*_dict' --keep '*/en_dict'

A file is dropped when it matches a --drop pattern (fnmatch, on its path inside the wheel) and no --keep pattern.
The wheel is replaced in place (same name: pip installs it as the same version).
"""
from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import os
import tempfile
import zipfile


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def trim(wheel: str, drop: list[str], keep: list[str]) -> tuple[int, int]:
    """Drop the matching files from ``wheel``; returns (files dropped, bytes dropped, uncompressed)."""
    with zipfile.ZipFile(wheel) as zin:
        infos = zin.infolist()
        record = next((i.filename for i in infos if i.filename.endswith(".dist-info/RECORD")), None)
        if record is None:
            raise ValueError(f"{wheel}: no .dist-info/RECORD (not a wheel?)")
        gone = {i.filename for i in infos if i.filename != record
                and any(fnmatch.fnmatch(i.filename, p) for p in drop) and not any(fnmatch.fnmatch(i.filename, p) for p in keep)}
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(wheel)), suffix=".whl.tmp")
        os.close(fd)
        lines = []
        try:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
                for info in infos:
                    if info.filename in gone or info.filename == record:
                        continue
                    data = zin.read(info)
                    zout.writestr(info, data)
                    lines.append(_record_line(info.filename, data))
                lines.append(f"{record},,")
                zout.writestr(record, "\n".join(lines) + "\n")
            os.replace(tmp, wheel)
        except BaseException:
            os.unlink(tmp)
            raise
    return len(gone), sum(i.file_size for i in infos if i.filename in gone)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wheel")
    ap.add_argument("--drop", action="append", required=True, help="fnmatch pattern of paths to drop (repeatable)")
    ap.add_argument("--keep", action="append", default=[], help="fnmatch pattern of paths to keep anyway (repeatable)")
    a = ap.parse_args()
    before = os.path.getsize(a.wheel)
    n, size = trim(a.wheel, a.drop, a.keep)
    print(f"{os.path.basename(a.wheel)}: {n} files ({size / 1e6:.1f} MB uncompressed) dropped; "
          f"{before / 1e6:.1f} -> {os.path.getsize(a.wheel) / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
