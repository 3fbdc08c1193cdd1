"""Bad input and faults (issue 17): one parametrised table, one row per case, real CLI calls.

Every row builds its situation in ``tmp_path`` (no ../shared, no GPU), runs ``sslt-bench``
in-process and checks the exit code and the output: exit 2 rows print exactly one line,
``error: ...``, naming the bad value and what would be valid; no row prints a traceback; a
warning is one ``warning: ...`` line. ``then`` checks what must hold afterwards (nothing earlier
lost, the record's contents, a second command's output).
"""

from __future__ import annotations

import errno
import fcntl
import json
import shutil
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from sslt_bench.results.records import atomic_write_json, load_records, write_record

RUN = ["run", "--device", "cpu", "--no-progress"]
IF_SET = ["--set", "image_size=16", "--set", "imbalance_ratio=4", "--set", "backbone=small-cnn"]


@dataclass
class Case:
    """One row: the command, its exit code, what its output must say, and after-checks."""

    argv: list[str]
    needles: list[str]
    code: int = 2
    warnings: int | None = None  # exact number of "warning:" lines, if given
    then: Callable[[str], None] | None = None
    absent: list[str] = field(default_factory=list)


def _tree(t: Path, **kw) -> Path:
    from sslt_bench.data.datasets.imagefolder import write_tree

    root = t / "data"
    write_tree(root, {"a": 9, "b": 7, "c": 5, "d": 4}, test=2, unlabeled=6, **kw)
    return root


def _if(root: Path) -> list[str]:
    return ["--dataset", "imagefolder", "--data-root", str(root), *IF_SET]


def _show(root: Path) -> list[str]:
    """``splits show`` of the tree (data settings only)."""
    return ["splits", "show", "--dataset", "imagefolder", "--data-root", str(root), *IF_SET[:4]]


def _export(cli_run, t: Path, *args: str) -> tuple[Path, dict]:
    f = t / "split.json"
    cli_run("splits", "export", *args, "-o", str(f))
    return f, json.loads(f.read_text())


def _edited_split(cli_run, t: Path, edit: Callable[[dict], object]) -> Path:
    f, obj = _export(cli_run, t)
    obj.pop("hash")  # a hand-edited file carries no hash: the invariants must still hold
    obj = edit(obj) or obj
    f.write_text(json.dumps(obj))
    return f


def _record_of(out: Path) -> dict:
    (rec,) = [r for r in load_records([out]) if r.get("status") == "ok"]
    return rec


def _one_run(cli_run, out: Path, *args: str) -> dict:
    cli_run(*RUN, "--out", str(out), "--set", "epochs=1", *args)
    return _record_of(out)


# -- silent wrong results ----------------------------------------------------------------------
def _nan_setting(key: str, value: str, valid: str):
    def row(t, cli_run, mp):
        return Case([*RUN, "--set", f"{key}={value}"], [key, value, "finite", valid])

    return row


def _range_setting(key: str, value: str, valid: str):
    def row(t, cli_run, mp):
        return Case([*RUN, "--set", f"{key}={value}"], [f"{key} must be {valid}, got {value}"])

    return row


def _batch_over_pool(t, cli_run, mp):
    args = [*RUN, "--set", "batch_size=100000", "--set", "epochs=1"]
    return Case(args, ["batch_size 100000", "larger than the", "choose batch_size <="])


def _split_test_leak(t, cli_run, mp):
    def edit(obj):
        obj["test_idx"][0], obj["test_y"][0] = obj["labeled_idx"][0], obj["labeled_y"][0]

    f = _edited_split(cli_run, t, edit)
    return Case([*RUN, "--split-file", str(f)], [str(f), "in the test set and in D", "leakage"])


def _split_bad_group(t, cli_run, mp):
    f = _edited_split(cli_run, t, lambda o: o["class_split"].__setitem__(0, 7))
    return Case([*RUN, "--split-file", str(f)], [str(f), "group 7", "0 (many)", "2 (few)"])


def _split_duplicate(t, cli_run, mp):
    def edit(obj):
        obj["labeled_idx"][1], obj["labeled_y"][1] = obj["labeled_idx"][0], obj["labeled_y"][0]

    f = _edited_split(cli_run, t, edit)
    return Case([*RUN, "--split-file", str(f)], [str(f), "labeled_idx lists item", "more than"])


def _split_negative(t, cli_run, mp):
    f = _edited_split(cli_run, t, lambda o: o["unlabeled_idx"].__setitem__(0, -4))
    return Case([*RUN, "--split-file", str(f)], [str(f), "negative index -4", ">= 0"])


def _split_list(t, cli_run, mp):
    f = t / "list.json"
    f.write_text("[1, 2, 3]")
    return Case([*RUN, "--split-file", str(f)], [str(f), "expected a JSON object", "list"])


def _split_params_from_file(t, cli_run, mp):
    f, _ = _export(cli_run, t, "--set", "imbalance_ratio=5")
    out = t / "out"

    def then(text):
        rec = _record_of(out)
        assert rec["data_params"]["imbalance_ratio"] == 5.0, rec["data_params"]
        assert rec["split"]["params"]["imbalance_ratio"] == 5.0
        assert rec["data_params"]["min_steps_per_epoch"] == 16  # not a split setting: yours

    args = [*RUN, "--out", str(out), "--set", "epochs=1", "--split-file", str(f)]
    args += ["--set", "min_steps_per_epoch=16"]
    return Case(args, ["overall"], code=0, then=then)


def _split_contradicted(t, cli_run, mp):
    f, _ = _export(cli_run, t, "--set", "imbalance_ratio=5")
    args = [*RUN, "--split-file", str(f), "--set", "imbalance_ratio=10"]
    return Case(args, ["imbalance_ratio=10", "contradicts split file", "imbalance_ratio=5.0"])


def _swapped_tree(t, cli_run, mp):
    root, out = _tree(t), t / "out"
    first = _one_run(cli_run, out, *_if(root))
    shutil.rmtree(root)
    _tree(t, seed=1)  # other pixels, same names and per-class counts

    def then(text):
        recs = [json.loads(p.read_text()) for p in (out / "records").glob("*.json")]
        assert len(recs) == 2 and len({r["run_id"] for r in recs}) == 2
        assert len({r["data_key"] for r in recs}) == 2  # trained anew on the new images
        assert {r["split_hash"] for r in recs} == {first["split_hash"]}

    args = [*RUN, "--out", str(out), "--set", "epochs=1", *_if(root)]
    return Case(args, ["overall"], code=0, then=then, absent=["already complete"])


def _checkpoint_other_version(t, cli_run, mp):
    import torch

    out = t / "out"
    _one_run(cli_run, out)
    (ckpt,) = [p for p in (out / "checkpoints").glob("*.pt") if ".prev" not in p.name]
    payload = torch.load(ckpt, weights_only=True)
    payload["model"].pop(next(iter(payload["model"])))  # e.g. written by another version
    torch.save(payload, ckpt)
    args = [*RUN, "--out", str(out), "--set", "epochs=1"]
    return Case(args, [str(ckpt), "different run or version", "use --fresh"])


def _grey16(t, cli_run, mp):
    from PIL import Image

    root = _tree(t)
    ramp = (np.arange(20 * 20).reshape(20, 20) * 150).astype(np.uint16)  # 0 .. 59850
    for c in "abcd":
        Image.fromarray(ramp).save(root / "train" / c / "016.png")

    def then(text):
        from sslt_bench.data.datasets.imagefolder import ImageFolderParams, ImageFolderSSLT

        data = ImageFolderSSLT.build(ImageFolderParams(image_size=20, channels="1"), 0, root)
        x = data.train.images[9].float()  # class a's 10th file: the 16-bit ramp
        assert x.max() > 200 and x.min() < 10 and 80 < x.mean() < 160, (x.min(), x.max())

    return Case(_show(root), ["4 classes"], code=0, then=then)


def _hidden_entries(t, cli_run, mp):
    root = _tree(t)
    (root / "train" / "a" / "._000.png").write_bytes(b"\x00\x05 AppleDouble resource fork")
    (root / "train" / ".ipynb_checkpoints").mkdir()
    (root / "train" / ".ipynb_checkpoints" / "x.png").write_bytes(b"not an image")
    (root / "unlabeled" / ".DS_Store").write_bytes(b"junk")
    (root / "unlabeled" / "u" / "._001.jpg").write_bytes(b"junk")
    return Case(_show(root), ["4 classes", "unlabeled"], code=0)


def _nfd_class(t, cli_run, mp):
    root = _tree(t)
    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    (root / "train" / "d").rename(root / "train" / nfc)
    (root / "test" / "d").rename(root / "test" / nfd)
    return Case(_show(root), ["4 classes", "café"], code=0)


def _user_record_over_committed(t, cli_run, mp):
    results, board = t / "results", t / "leaderboards"
    rec = _one_run(cli_run, results)
    committed = {k: v for k, v in rec.items() if k != "_path"}
    committed["metrics"] = {**committed["metrics"], "overall": 1.25}
    atomic_write_json(board / "records" / Path(rec["_path"]).name, committed)
    mine = str(rec["metrics"]["overall"])  # the CSV writes numbers unformatted

    def then(text):
        assert "1.2" not in text.split("warning:")[0], text
        warning = next(ln for ln in text.splitlines() if ln.startswith("warning:"))
        assert str(results) in warning and str(board) in warning

    argv = ["table", "--results", str(results), "--results", str(board), "--format", "csv"]
    return Case(argv, [mine, "found twice"], code=0, warnings=1, then=then)


# -- tracebacks instead of one line --------------------------------------------------------------
def _table_into_folder(t, cli_run, mp):
    results = t / "results"
    _one_run(cli_run, results)
    (t / "dir").mkdir()
    argv = ["table", "--results", str(results), "-o", str(t / "dir")]
    return Case(argv, [str(t / "dir"), "is a folder", "file name"])


def _export_into_folder(t, cli_run, mp):
    (t / "dir").mkdir()
    return Case(["splits", "export", "-o", str(t / "dir")], [str(t / "dir"), "is a folder"])


def _bad_record(value: str, command: list[str]):
    def row(t, cli_run, mp):
        results = t / "results"
        good = _one_run(cli_run, results)
        bad = json.loads(Path(good["_path"]).read_text())
        bad["seed"] = 7
        text = json.dumps(bad).replace(f'"overall": {bad["metrics"]["overall"]}', value)
        (results / "records" / "bad.json").write_text(text)
        argv = [*command, "--results", str(results)]
        if command == ["plot", "per-class"]:
            argv += ["-o", str(t / "plot")]
        needles = ["bad.json"] + (["erm"] if command[0] != "plot" else ["wrote"])
        return Case(argv, needles, code=0, warnings=1)

    return row


def _disk_full(t, cli_run, mp):
    import sslt_bench.results.records as records

    out = t / "out"
    earlier = _one_run(cli_run, out)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    mp.setattr(records.os, "fsync", full)

    def then(text):
        mp.undo()
        assert json.loads(Path(earlier["_path"]).read_text())["metrics"] == earlier["metrics"]
        assert not [p for p in out.rglob(".*.tmp")]

    args = [*RUN, "--out", str(out), "--set", "epochs=1", "--seed", "1"]
    return Case(args, ["No space left on device", "cannot write", "kept"], then=then)


def _cache_is_file(t, cli_run, mp):
    (t / "cachefile").write_text("x")
    mp.setenv("SSLT_CACHE", str(t / "cachefile"))
    root = _tree(t)
    return Case([*RUN, *_if(root)], [str(t / "cachefile"), "it is a file", "SSLT_CACHE"])


def _cache_read_only(t, cli_run, mp):
    import sslt_bench.data.datasets._cache as cache

    mp.setenv("SSLT_CACHE", str(t / "cache"))

    def denied(*a, **kw):
        raise PermissionError(errno.EACCES, "Permission denied")

    mp.setattr(cache.tempfile, "mkstemp", denied)  # as root, chmod would not stop writes
    root = _tree(t)
    argv = _show(root)
    return Case(argv, ["cannot write image cache", "Permission denied", "4 classes"], 0, 1)


def _broken_symlink(t, cli_run, mp):
    root = _tree(t)
    link = root / "train" / "b" / "099.png"
    link.symlink_to(t / "gone.png")
    return Case([*RUN, *_if(root)], [str(link), "broken symlink", "remove it"])


def _decompression_bomb(t, cli_run, mp):
    from PIL import Image

    root = _tree(t)
    bomb = root / "train" / "a" / "050.png"
    Image.new("L", (120, 120)).save(bomb)  # 14,400 pixels: over twice the lowered limit
    mp.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    return Case([*RUN, *_if(root)], [str(bomb), "cannot read image", "decompression bomb"])


def _records_is_file(t, cli_run, mp):
    (t / "out").mkdir()
    (t / "out" / "records").write_text("x")
    args = [*RUN, "--out", str(t / "out"), "--set", "epochs=1"]
    return Case(args, [str(t / "out" / "records"), "is a file, not a folder", "--out"])


# -- what a newcomer should be told -------------------------------------------------------------
def _rerun_finished(t, cli_run, mp):
    out = t / "out"
    rec = _one_run(cli_run, out)
    args = [*RUN, "--out", str(out), "--set", "epochs=1"]
    return Case(args, [f"already complete (record: {rec['_path']})", "--fresh"], code=0)


def _ctrl_c_then_resume(t, cli_run, mp):
    import sslt_bench.train.runner as runner

    out, saves = t / "out", []
    real = runner.save_checkpoint

    def interrupted(path, payload):
        real(path, payload)
        saves.append(1)
        if len(saves) == 1:
            raise KeyboardInterrupt

    mp.setattr(runner, "save_checkpoint", interrupted)
    args = [*RUN, "--out", str(out), "--set", "epochs=2"]

    def then(text):
        mp.undo()
        code, again = cli_run(*args)
        assert "resuming from stage 1 of" in again and "epoch 1" in again, again
        assert _record_of(out)["resumed_from"]["epoch"] == 1

    hint = "resume with: sslt-bench run --device cpu --no-progress --out"
    return Case(args, ["interrupted", "last checkpoint is kept", hint], code=130, then=then)


def _progress_names_stages(t, cli_run, mp):
    args = ["run", "--device", "cpu", "--out", str(t / "out"), "--method", "decoupling"]
    args += ["--set", "epochs=1", "--set", "head_epochs=1"]
    return Case(args, ["stage 1 of", "stage 2 of", "train classifier"], code=0)


def _first_cache_build_announced(t, cli_run, mp):
    import sys

    mp.setenv("SSLT_CACHE", str(t / "cache"))
    mp.setattr(sys.stderr, "isatty", lambda: True)  # a terminal: minutes of decoding ahead
    root = _tree(t)
    return Case(_show(root), ["building the imagefolder image cache", "first use"], code=0)


def _readme_names_cpu_wheel(t, cli_run, mp):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in readme
    assert "5.9 GB" in readme
    return Case(["--help"], ["Usage: sslt-bench"], code=0)


def _run_help_names_keys(t, cli_run, mp):
    return Case(["run", "--help"], ["sslt-bench list keys --method M --dataset D"], code=0)


def _list_keys(t, cli_run, mp):
    argv = ["list", "keys", "--method", "fixmatch"]
    return Case(argv, ["method.threshold", "[0, 1]", "data.imbalance_ratio"], code=0)


def _same_run_twice(t, cli_run, mp):
    out = t / "out"
    rec = _one_run(cli_run, out)
    lock = out / "locks" / (Path(rec["_path"]).stem + ".lock")
    held = open(lock, "a")  # noqa: SIM115 - another process running the same run
    fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def then(text):
        held.close()

    args = [*RUN, "--out", str(out), "--set", "epochs=1", "--fresh"]
    return Case(args, [str(lock), "already going in another process", "another --out"], then=then)


def _compare_names_difference(t, cli_run, mp):
    results = t / "results"
    for method in ("erm", "decoupling"):
        for lr in ("0.1", "0.05"):
            cli_run(*RUN, "--out", str(results), "--method", method, "--set", "epochs=1",
                    "--set", "head_epochs=1", "--set", f"lr={lr}")  # fmt: skip
    argv = ["compare", "decoupling", "erm", "--results", str(results)]
    return Case(argv, ["lr=0.1", "lr=0.05"], code=0)


CASES = {
    "imbalance_ratio=nan": _nan_setting("imbalance_ratio", "nan", ">= 1"),
    "imbalance_ratio=inf": _nan_setting("imbalance_ratio", "inf", ">= 1"),
    "lr=nan": _nan_setting("lr", "nan", "> 0"),
    "momentum=1.5": _range_setting("momentum", "1.5", "in [0, 1)"),
    "weight_decay=-1": _range_setting("weight_decay", "-1", ">= 0"),
    "batch larger than the pool": _batch_over_pool,
    "split file: test leakage": _split_test_leak,
    "split file: class_split=7": _split_bad_group,
    "split file: duplicated D item": _split_duplicate,
    "split file: negative index": _split_negative,
    "split file: a JSON list": _split_list,
    "split file: data params from the file": _split_params_from_file,
    "split file: --set contradicts it": _split_contradicted,
    "swapped image tree: a new run": _swapped_tree,
    "checkpoint of another version": _checkpoint_other_version,
    "imagefolder: 16-bit grey PNG": _grey16,
    "imagefolder: hidden files and folders": _hidden_entries,
    "imagefolder: NFD vs NFC class names": _nfd_class,
    "table: your record over a committed one": _user_record_over_committed,
    "table -o DIR": _table_into_folder,
    "splits export -o DIR": _export_into_folder,
    "table: overall is a string": _bad_record('"overall": "high"', ["table"]),
    "table: overall is NaN": _bad_record('"overall": NaN', ["table"]),
    "compare: overall is a string": _bad_record('"overall": "high"', ["compare", "erm", "erm"]),
    "plot: overall is NaN": _bad_record('"overall": NaN', ["plot", "per-class"]),
    "disk full during a run": _disk_full,
    "SSLT_CACHE is a file": _cache_is_file,
    "SSLT_CACHE read-only": _cache_read_only,
    "broken symlink in the tree": _broken_symlink,
    "decompression bomb": _decompression_bomb,
    "out/records is a file": _records_is_file,
    "re-run of a finished run": _rerun_finished,
    "Ctrl-C, then resume": _ctrl_c_then_resume,
    "progress names the stages": _progress_names_stages,
    "first cache build is announced": _first_cache_build_announced,
    "README: CPU-only torch wheel": _readme_names_cpu_wheel,
    "run --help names list keys": _run_help_names_keys,
    "list keys": _list_keys,
    "same run twice at once": _same_run_twice,
    "compare names the config difference": _compare_names_difference,
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_and_faults(case, cli_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default --out / --results resolve inside the test folder
    row = CASES[case](tmp_path, cli_run, monkeypatch)
    code, text = cli_run(*row.argv, expect=None)
    assert code == row.code, text
    assert "Traceback" not in text, text
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if row.code == 2:
        assert len(lines) == 1 and lines[0].startswith("error: "), text
    for needle in row.needles:
        assert needle in text, (needle, text)
    for needle in row.absent:
        assert needle not in text, (needle, text)
    warned = [ln for ln in lines if "warning" in ln.lower()]
    assert all(ln.startswith("warning: ") for ln in warned), text
    if row.warnings is not None:
        assert len(warned) == row.warnings, text
    if row.then is not None:
        row.then(text)


def test_no_record_holds_nan_or_infinity(tmp_path):
    with pytest.raises(ValueError, match="non-finite number at metrics.overall"):
        atomic_write_json(tmp_path / "r.json", {"metrics": {"overall": float("nan")}})
    assert not (tmp_path / "r.json").exists()
    with pytest.warns(UserWarning, match="history.epochs"):
        written = write_record(tmp_path / "r.json", {"history": {"epochs": [float("inf")]}})
    text = (tmp_path / "r.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text)["history"]["epochs"] == [None] == written["history"]["epochs"]
    assert written["nonfinite"] == ["history.epochs[0]"]
