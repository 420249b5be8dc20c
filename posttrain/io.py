"""Atomic writes: every result appears whole or not at all (temp name in the same folder, then rename).
Reading user-supplied text files: every decoding or parsing error names the file and line."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(final: str | Path, suffix: str = ""):
    """Yield a temp path beside `final`; rename it onto `final` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix + ".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(final: str | Path):
    """Yield a temp folder beside `final`; it replaces `final` only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_jsonl(path: str | Path, rows) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def write_parquet(path: str | Path, frame) -> None:
    with atomic_path(path, suffix=".parquet") as tmp:
        frame.to_parquet(tmp, index=False)


def _not_utf8(path, n: int, raw: bytes, e: UnicodeDecodeError, error: type[Exception]) -> Exception:
    column = len(raw[: e.start].decode("utf-8", errors="replace")) + 1
    return error(f"{path}:{n}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {column})")


def read_lines(path: str | Path, error: type[Exception]):
    """Yield (line number, text) for each line of a UTF-8 text file (a leading byte-order mark is dropped);
    a line that is not valid UTF-8 raises `error` naming "file:line" and the offending byte."""
    with Path(path).open("rb") as f:
        for n, raw in enumerate(f, start=1):
            try:
                yield n, raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise _not_utf8(path, n, raw, e, error) from None


def read_text(path: str | Path, error: type[Exception]) -> str:
    """The whole text of a UTF-8 file (a leading byte-order mark dropped); not valid UTF-8 raises `error`
    naming "file:line"."""
    return "".join(line for _, line in read_lines(path, error))


def read_jsonl_rows(path: str | Path, error: type[Exception]):
    """Yield (where, row) for each non-blank line of a JSONL file, `where` being "file:line";
    a line that is not valid UTF-8 or not a JSON object raises `error` naming it."""
    for n, line in read_lines(path, error):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise error(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict):
            raise error(f"{where}: expected a JSON object")
        yield where, row
