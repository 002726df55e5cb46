"""Checking a local dataset file before anything heavy loads.

A bad file found after a 7B model has loaded costs minutes and ends in a message from deep
inside the loader (``DatasetGenerationError: An error occurred while generating the
dataset``). This reads the file itself, streaming, and says what is wrong in terms the user
can act on: the file, the line or row, and the cause -- empty, not UTF-8 (and what it looks
like instead), malformed JSON at line N, a row of the wrong width, a missing column.

It imports nothing heavy (``pyarrow`` only for parquet files), so the command line runs it
before it starts a run, and the run's setup runs it before it reads the file with 🤗 datasets.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path

CHUNK = 1 << 20


def encoding_problem(path: Path) -> str | None:
    """Why ``path`` is not UTF-8 text (with the fix), or None when it is.

    A UTF-16 file announces itself by its byte-order mark; any other undecodable byte is
    named with its line, and a file that decodes as cp1252/latin-1 is said to look like it.
    """
    with open(path, "rb") as f:
        head = f.read(4)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "is UTF-16 text; save it as UTF-8"
        if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
            return "is UTF-32 text; save it as UTF-8"
        f.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        line = 1
        while chunk := f.read(CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                line += chunk[: err.start].count(b"\n")
                byte = chunk[err.start]
                guess = "; it looks like latin-1/cp1252" if _decodes_as_cp1252(path) else ""
                return (f"is not UTF-8 (byte 0x{byte:02x} on line {line}{guess}); "
                        "save it as UTF-8")
            line += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "is not UTF-8 (it ends in the middle of a character); save it as UTF-8"
    return None


def _decodes_as_cp1252(path: Path) -> bool:
    try:
        with open(path, encoding="cp1252") as f:
            while f.read(CHUNK):
                pass
        return True
    except UnicodeDecodeError:
        return False


def _jsonl_problem(path: Path, column: str | None) -> str | None:
    rows = 0
    with open(path, encoding="utf-8-sig") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                return f"line {number}: malformed JSON ({err.msg} at column {err.colno})"
            if not isinstance(row, dict):
                return f"line {number}: expected a JSON object per line, got {type(row).__name__}"
            if rows == 0 and column is not None and column not in row:
                return _no_column(column, list(row), f"line {number}")
            rows += 1
    return None if rows else "has no rows (only blank lines)"


def _json_problem(path: Path, column: str | None) -> str | None:
    """A .json file: one array of objects (or an object holding one), else JSON lines."""
    text = path.read_text(encoding="utf-8-sig")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if text.lstrip().startswith("{") and "\n" in text.strip():  # JSON lines under a .json name
            return _jsonl_problem(path, column)
        return f"malformed JSON at line {err.lineno}, column {err.colno} ({err.msg})"
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            return "expected a JSON array of objects (or an object holding one array of them)"
        data = lists[0]
    if not isinstance(data, list):
        return f"expected a JSON array of objects, got {type(data).__name__}"
    if not data:
        return "has no rows (an empty array)"
    for number, row in enumerate(data, start=1):
        if not isinstance(row, dict):
            return f"row {number}: expected an object, got {type(row).__name__}"
    if column is not None and column not in data[0]:
        return _no_column(column, list(data[0]), "row 1")
    return None


def _csv_problem(path: Path, column: str | None) -> str | None:
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            return "has no header row"
        rows = 0
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                return (f"line {reader.line_num}: {len(row)} fields, the header has {len(header)} "
                        "(a quote left open, or a comma in an unquoted value?)")
            rows += 1
    if column is not None and column not in header:
        return _no_column(column, header, "the header")
    return None if rows else "has a header but no rows"


def _parquet_problem(path: Path, column: str | None) -> str | None:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises its own ArrowInvalid and OSError subclasses
        return f"is not a readable parquet file ({err})"
    if meta.metadata.num_rows == 0:
        return "has no rows"
    names = meta.schema_arrow.names
    if column is not None and column not in names:
        return _no_column(column, names, "the schema")
    return None


def _no_column(column: str, columns: list, where: str) -> str:
    shown = ", ".join(map(str, columns[:12])) + (", …" if len(columns) > 12 else "")
    return f"{where}: no column {column!r} (columns: {shown or 'none'}); set dataset.prompt_column"


CHECKS = {".jsonl": _jsonl_problem, ".json": _json_problem, ".csv": _csv_problem, ".parquet": _parquet_problem}


def data_file_problem(path: str | Path, column: str | None = "prompt") -> str | None:
    """What is wrong with the local dataset file ``path`` (whose prompts are in ``column``),
    as one line that starts with the file's name; None when it reads.

        >>> import tempfile, os
        >>> folder = tempfile.mkdtemp()
        >>> bad = os.path.join(folder, "bad.jsonl")
        >>> _ = open(bad, "w").write('{"prompt": "1+1="}\\n{"prompt": "2+2=",}\\n')
        >>> data_file_problem(bad).split(": ", 1)[1]
        'line 2: malformed JSON (Expecting property name enclosed in double quotes at column 19)'
    """
    path = Path(path)
    try:
        if not path.is_file():
            return f"{path}: not a file"
        if path.stat().st_size == 0:
            return f"{path}: is empty"
        check = CHECKS.get(path.suffix.lower())
        if check is None:
            return None  # the config check names the formats it accepts
        if path.suffix.lower() != ".parquet":
            problem = encoding_problem(path)
            if problem:
                return f"{path}: {problem}"
        problem = check(path, column)
    except (OSError, csv.Error, io.UnsupportedOperation) as err:
        problem = f"cannot be read ({err})"
    return f"{path}: {problem}" if problem else None
