"""`posttrain export`: every table and view of a study database as one CSV or Parquet file each, so that a study
loads into pandas, R, W&B or MLflow without DuckDB. Each file is written under a temp name and renamed into place;
files of the folder that are not the database's are left alone."""

from __future__ import annotations

from pathlib import Path

import duckdb

from posttrain.io import atomic_path

FORMATS = {"csv": "(FORMAT csv, HEADER true)", "parquet": "(FORMAT parquet)"}


class ExportError(ValueError):
    """A database, folder or format the export cannot use; the message names it."""


def export(db: str | Path, folder: str | Path, to: str) -> str:
    """Write `<folder>/<name>.<to>` for every table and view of `db`; returns a one-line summary."""
    if to not in FORMATS:
        raise ExportError(f"format {to!r}: not one of {', '.join(FORMATS)}")
    if not Path(db).is_file():
        raise ExportError(f"no database at {db} (build it with `snakemake --cores 2`)")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"{folder}: exists and is not a folder")
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error as e:
        raise ExportError(f"{db}: not a DuckDB database ({e})") from None
    with con:
        names = [n for (n,) in con.execute("SELECT table_name FROM information_schema.tables "
                                           "WHERE table_schema = 'main' ORDER BY table_name").fetchall()]
        for name in names:
            with atomic_path(folder / f"{name}.{to}", suffix=f".{to}") as tmp:
                try:
                    target = str(tmp).replace("'", "''")  # a quote in the folder's name
                    con.execute(f"COPY (SELECT * FROM \"{name}\") TO '{target}' {FORMATS[to]}")
                except duckdb.Error as e:  # a view an older posttrain built that no longer binds, say
                    raise ExportError(f"{db}: table or view {name} could not be exported ({e})") from None
    return f"exported {len(names)} tables and views of {db} to {folder}/ as {to}"
