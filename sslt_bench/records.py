"""Result records: one JSON file per run, written atomically, read leniently.

A record is written to a temporary file in the same folder, fsync-ed, then renamed over the
target, so a crash never leaves a truncated JSON and concurrent writers never interleave.
Readers skip (with a warning naming the file) a record they cannot parse.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import UsageError

RECORD_VERSION = 1


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via temp file + fsync + rename (+ fsync of the folder).

    The file gets the permissions a plain ``open(path, "w")`` would (0666 minus the umask), so
    records and checkpoints in a shared results folder stay readable by the group.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise UsageError(
            f"cannot write to {path.parent}: {exc.strerror}; choose a writable folder with --out"
        ) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
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


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def atomic_write_text(path: Path, text: str) -> None:
    """Write text atomically (rendered tables)."""
    atomic_write_bytes(path, text.encode())


def check_writable(folder: Path) -> None:
    """Fail early, with a one-line error, if results cannot be written to ``folder``."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe."):
            pass
    except OSError as exc:
        raise UsageError(
            f"results folder {folder} is not writable ({exc.strerror}); choose another with --out"
        ) from None


def iter_record_files(folders: Iterable[Path]) -> list[Path]:
    """Every ``*.json`` record under the folders, sorted."""
    files: set[Path] = set()
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            files.add(folder)
        elif folder.is_dir():
            files.update(p for p in folder.rglob("*.json") if not p.name.startswith("."))
    return sorted(files)


def load_records(folders: Iterable[Path]) -> list[dict[str, Any]]:
    """Parse all result records; skip unparsable or foreign JSON files with a warning."""
    out = []
    for path in iter_record_files(folders):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            warnings.warn(f"skipping unreadable record {path}: {exc}", stacklevel=2)
            continue
        if not isinstance(rec, dict) or rec.get("kind") != "sslt-bench-result":
            continue
        rec["_path"] = str(path)
        out.append(rec)
    return out


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
