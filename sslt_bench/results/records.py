"""Result records: one JSON file per run, written atomically, read leniently.

A record is written to a temporary file in the same folder, fsync-ed, then renamed over the
target, so a crash never leaves a truncated JSON and concurrent writers never interleave.
Records are strict JSON (no NaN or Infinity). Readers skip, with a warning naming the file, a
record they cannot parse or whose fields are malformed, and show a run found in two folders
once, from the first folder given.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import UsageError, WriteError

RECORD_VERSION = 1


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via temp file + fsync + rename (+ fsync of the folder).

    The file gets the permissions a plain ``open(path, "w")`` would (0666 minus the umask), so
    records and checkpoints in a shared results folder stay readable by the group. On any
    failure (disk full, read-only folder, ``path`` a folder) the old file, if any, is left as
    it was and no temporary file remains.

    Raises:
        WriteError: one line naming the path and the reason (an ``OSError`` and a
            ``UsageError``).
    """
    path = Path(path)
    if path.is_dir():
        raise WriteError(f"cannot write {path}: it is a folder; give a file name inside it")
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise WriteError(
            f"cannot write to {path.parent}: {exc.strerror}; choose a writable folder"
        ) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        why = exc.strerror or str(exc)
        raise WriteError(f"cannot write {path}: {why}; earlier files there are kept") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable (power loss); not supported everywhere
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _nonfinite_paths(obj: Any, where: str = "") -> list[str]:
    """Key paths (``metrics.overall``) of NaN or infinite floats inside ``obj``."""
    if isinstance(obj, float):
        return [] if math.isfinite(obj) else [where or "(top)"]
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _nonfinite_paths(v, f"{where}.{k}".lstrip("."))]
    if isinstance(obj, (list, tuple)):
        return [p for i, v in enumerate(obj) for p in _nonfinite_paths(v, f"{where}[{i}]")]
    return []


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented, strictly valid JSON atomically.

    Raises:
        ValueError: ``obj`` holds NaN or Infinity (named by key path); JSON has neither, so a
            record never carries them.
    """
    bad = _nonfinite_paths(obj)
    if bad:
        raise ValueError(f"non-finite number at {', '.join(bad[:5])} in {path}")
    text = json.dumps(obj, indent=1, sort_keys=True, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())


def write_record(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Write a result record; NaN/Infinity (never valid JSON) are stored as null, with a warning.

    Returns:
        The record as written (non-finite values replaced, their key paths under
        ``"nonfinite"``).
    """
    bad = _nonfinite_paths(record)
    if bad:
        record = json.loads(json.dumps(record), parse_constant=lambda _: None)
        record["nonfinite"] = bad
        warnings.warn(
            f"record {path}: non-finite values stored as null at {', '.join(bad[:5])}",
            stacklevel=2,
        )
    atomic_write_json(path, record)
    return record


def atomic_write_text(path: Path, text: str) -> None:
    """Write text atomically (rendered tables)."""
    atomic_write_bytes(path, text.encode())


def check_writable(folder: Path, subfolders: Iterable[str] = ("records", "checkpoints")) -> None:
    """Fail early, with a one-line error, if results cannot be written under ``folder``.

    ``folder`` and each of ``subfolders`` (created if missing) must be writable folders, so a
    run never trains for hours and then finds it cannot save its record.
    """
    for target in [Path(folder)] + [Path(folder) / s for s in subfolders]:
        if target.exists() and not target.is_dir():
            raise UsageError(
                f"{target} is a file, not a folder; move it away or choose another --out"
            )
        try:
            target.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=target, prefix=".probe."):
                pass
        except OSError as exc:
            raise UsageError(
                f"results folder {target} is not writable ({exc.strerror}); "
                "choose another with --out"
            ) from None


def iter_record_files(folders: Iterable[Path]) -> list[Path]:
    """Every ``*.json`` record under the folders: folder by folder, sorted within each."""
    files: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            found = [folder]
        elif folder.is_dir():
            found = sorted(p for p in folder.rglob("*.json") if not p.name.startswith("."))
        else:
            found = []
        files += [p for p in found if p not in files]
    return files


def _reject_constant(name: str) -> None:
    raise ValueError(f"non-finite number {name} (not valid JSON)")


#: Fields ``table``, ``plot`` and ``compare`` need in every record they show.
SHOWN_FIELDS = ("dataset", "method", "profile", "backbone", "split_hash", "seed")


def record_problem(rec: dict[str, Any], require: Iterable[str] = ()) -> str | None:
    """Why a parsed result record cannot be shown (``None`` if it can).

    Checks the fields ``table``, ``plot`` and ``compare`` read, where present (``require``
    names those that must be): names are strings, the seed an integer, every accuracy a finite
    number in [0, 100] or null.
    """
    missing = [k for k in require if k not in rec]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    for key in ("dataset", "method", "profile", "backbone", "split_hash"):
        if key in rec and not isinstance(rec[key], str):
            return f"{key} is {rec[key]!r}, not a string"
    if "seed" in rec and (isinstance(rec["seed"], bool) or not isinstance(rec["seed"], int)):
        return f"seed is {rec['seed']!r}, not an integer"
    metrics = rec.get("metrics")
    if metrics is None:  # a failed or unfinished run: listed as failed, never averaged
        return None
    if not isinstance(metrics, dict):
        return f"metrics is {type(metrics).__name__}, not an object"
    values = [(k, metrics.get(k)) for k in ("overall", "many", "medium", "few")]
    per_class = metrics.get("per_class", [])
    if not isinstance(per_class, list):
        return f"metrics.per_class is {per_class!r}, not a list"
    values += [(f"per_class[{i}]", v) for i, v in enumerate(per_class)]
    for key, v in values:
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 100:
            return f"metrics.{key} is {v!r}, not a number in [0, 100] or null"
    return None


def _same_run_key(rec: dict[str, Any]) -> tuple:
    """What makes two records the same run (the table's configuration and the seed)."""
    if not all(k in rec for k in SHOWN_FIELDS):
        return ("_path", rec["_path"])  # not a comparable run: never merged with another
    return (
        rec["dataset"],
        rec["method"],
        rec["profile"],
        rec["backbone"],
        rec.get("config_hash"),
        rec["split_hash"],
        json.dumps(rec.get("data_params") or {}, sort_keys=True),
        rec["seed"],
    )


def _same_data(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two records ran on the same data (unknown for records older than data_key)."""
    return a.get("data_key") is None or b.get("data_key") is None or a["data_key"] == b["data_key"]


def load_records(folders: Iterable[Path], require: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Parse the result records under ``folders`` for ``table``, ``plot`` and ``compare``.

    A file that is not valid JSON, or a record with a malformed field (a string or NaN where
    an accuracy belongs), is skipped with a warning naming the file. Foreign JSON files
    (no ``"kind": "sslt-bench-result"``) are ignored. The same run found in several places
    (e.g. your ``results/`` and a committed ``leaderboards/`` copy) is shown once, from the
    first folder given that holds it, with one warning naming where else it is.

    Args:
        folders: folders (searched recursively) or single record files, in priority order.
        require: fields a record must have to be kept (``table`` etc. pass
            :data:`SHOWN_FIELDS`).
    """
    out: dict[tuple[tuple, str], dict[str, Any]] = {}
    shadowed: list[tuple[str, str]] = []
    for path in iter_record_files(folders):
        try:
            rec = json.loads(path.read_text(), parse_constant=_reject_constant)
        except (OSError, ValueError) as exc:
            warnings.warn(f"skipping unreadable record {path}: {exc}", stacklevel=2)
            continue
        if not isinstance(rec, dict) or rec.get("kind") != "sslt-bench-result":
            continue
        why = record_problem(rec, require)
        if why:
            warnings.warn(f"skipping invalid record {path}: {why}", stacklevel=2)
            continue
        rec["_path"] = str(path)
        same = [k for k in out if k[0] == _same_run_key(rec) and _same_data(out[k], rec)]
        if same:
            shadowed.append((out[same[0]]["_path"], str(path)))
            continue
        out[(_same_run_key(rec), str(path))] = rec
    if shadowed:
        kept, other = shadowed[0]
        more = f" (and {len(shadowed) - 1} more)" if len(shadowed) > 1 else ""
        warnings.warn(
            f"{len(shadowed)} run(s) found twice; showing the copy from the first folder given: "
            f"{kept} rather than {other}{more}",
            stacklevel=2,
        )
    return list(out.values())


def git_revision() -> str:
    """The git commit of the sslt-bench checkout (``+dirty`` if modified), or ``unknown``."""
    here = Path(__file__).resolve().parent

    def git(*args: str, check: bool = False) -> str:
        return subprocess.run(
            ["git", *args], cwd=here, capture_output=True, text=True, timeout=10, check=check
        ).stdout.strip()

    try:
        rev = git("rev-parse", "--short=12", "HEAD", check=True)
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
