"""Result records: atomic writes, concurrent writers, unparsable records, failed (NaN) runs."""

import json
import os
import subprocess
import sys
import time
import warnings as warnings_mod
from pathlib import Path

import pytest

from sslt_bench.methods.base import Method
from sslt_bench.registry import METHODS, register_method
from sslt_bench.results import records
from sslt_bench.results.records import atomic_write_json, atomic_write_text, load_records
from sslt_bench.train.stages import Train

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if p.is_file()]


# -- atomic writes ---------------------------------------------------------------------------
def test_failed_write_keeps_old_record_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "records" / "r.json"
    atomic_write_json(path, {"kind": "sslt-bench-result", "v": 1})
    with pytest.raises(TypeError):  # unserialisable: fails before touching the file
        atomic_write_json(path, {"v": object()})

    def crash(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(records.os, "fsync", crash)  # the disk fails mid-write
    with pytest.raises(OSError):
        atomic_write_json(path, {"kind": "sslt-bench-result", "v": 2, "pad": "x" * 100000})
    assert json.loads(path.read_text())["v"] == 1
    assert _leftovers(tmp_path) == []
    with pytest.raises(OSError):
        atomic_write_text(tmp_path / "table.md", "| a |\n")  # rendered tables: same path
    assert not (tmp_path / "table.md").exists() and _leftovers(tmp_path) == []


def test_written_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0)
    os.umask(umask)
    atomic_write_json(tmp_path / "r.json", {"a": 1})  # not mkstemp's private 0600
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o666 & ~umask


WRITER = """
import sys
from pathlib import Path
from sslt_bench.results.records import atomic_write_json
folder, wid, n = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    rec = {"kind": "sslt-bench-result", "writer": wid, "i": i, "pad": "x" * 50000}
    atomic_write_json(folder / f"w{wid}_{i}.json", rec)
    atomic_write_json(folder / "shared.json", rec)  # every writer rewrites the same file too
"""


def test_concurrent_writers_lose_nothing(tmp_path):
    folder, n, writers = tmp_path / "records", 40, 6
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(w), str(n)], env=_env())
        for w in range(writers)
    ]
    reads = 0
    while any(p.poll() is None for p in procs):  # a reader never sees a torn file
        for f in folder.glob("*.json") if folder.exists() else ():
            try:
                text = f.read_text()
            except FileNotFoundError:
                continue
            assert json.loads(text)["kind"] == "sslt-bench-result", f
            reads += 1
        time.sleep(0.001)
    assert all(p.wait() == 0 for p in procs)
    got = {
        (r["writer"], r["i"])
        for r in load_records([folder])
        if Path(r["_path"]).name == f"w{r['writer']}_{r['i']}.json"
    }
    assert got == {(w, i) for w in range(writers) for i in range(n)}
    shared = json.loads((folder / "shared.json").read_text())
    assert shared["i"] == n - 1  # someone's last write, whole
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_four_concurrent_runs_into_one_folder(tmp_path, cli_run):
    out = tmp_path / "res"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sslt_bench",
                "run",
                "--seed",
                str(seed),
                "--out",
                str(out),
                "--device",
                "cpu",
                "--no-progress",
                "--set",
                "epochs=1",
                "--set",
                "batch_size=64",
            ],
            env=_env(),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for seed in range(4)
    ]
    for p in procs:
        text = p.communicate(timeout=300)[0]
        assert p.returncode == 0, text
    recs = load_records([out])
    assert sorted(r["seed"] for r in recs) == [0, 1, 2, 3]
    assert all(r["status"] == "ok" for r in recs)
    assert _leftovers(out) == []
    code, text = cli_run("table", "--results", out, "--format", "csv")
    assert text.count("erm") >= 1 and "failed" not in text


# -- reading leniently -----------------------------------------------------------------------
def _good_record(folder: Path) -> Path:
    from sslt_bench.train.runner import Runner, RunSpec

    spec = RunSpec(method="erm", overrides=("epochs=1",), out=folder, device="cpu", progress=False)
    return Path(Runner(spec).run()["_path"])


@pytest.fixture(scope="module")
def good_record(tmp_path_factory):
    return _good_record(tmp_path_factory.mktemp("good"))


def test_table_skips_unparsable_record_with_warning(cli_run, tmp_path, good_record):
    folder = tmp_path / "records"
    folder.mkdir()
    (folder / "good.json").write_text(good_record.read_text())
    (folder / "truncated.json").write_text(good_record.read_text()[:300])  # a torn copy
    (folder / "empty.json").write_text("")
    code, text = cli_run("table", "--results", folder)
    assert code == 0
    warnings = [ln for ln in text.splitlines() if ln.startswith("warning:")]
    assert any("truncated.json" in ln for ln in warnings), text
    assert any("empty.json" in ln for ln in warnings), text
    assert "Traceback" not in text
    lines = text.splitlines()
    assert any(ln.startswith("digits-sslt") for ln in lines), text  # the block title
    assert any(ln.split()[:2] == ["erm", "1"] for ln in lines if ln.strip()), text  # its row
    with warnings_mod.catch_warnings(record=True) as caught:
        warnings_mod.simplefilter("always")
        assert len(load_records([folder])) == 1
    assert sorted(Path(str(w.message).split()[3].rstrip(":")).name for w in caught) == [
        "empty.json",
        "truncated.json",
    ]


def test_table_output_file_is_written_whole(cli_run, tmp_path, good_record):
    target = tmp_path / "board.md"
    target.write_text("old table\n")
    cli_run("table", "--results", good_record.parent, "--format", "markdown", "--output", target)
    code, shown = cli_run("table", "--results", good_record.parent, "--format", "markdown")
    assert target.read_text() == shown
    assert _leftovers(tmp_path) == []


# -- non-finite loss -------------------------------------------------------------------------
class _NaNAt(Method):
    """Cross-entropy that turns NaN at the 3rd batch of epoch 2 (test-only)."""

    def __init__(self, cfg, info):
        super().__init__(cfg, info)
        self.calls: dict[int, int] = {}

    def plan(self):
        return [Train("train", self.cfg.epochs, self.loss, **self.train_kwargs())]

    def loss(self, batch, ctx):
        self.calls[ctx.epoch] = self.calls.get(ctx.epoch, 0) + 1
        loss = self.ce_loss(batch, ctx)
        return loss * float("nan") if (ctx.epoch, self.calls[ctx.epoch]) == (1, 3) else loss


@pytest.fixture
def nan_method():
    register_method("nan-at-e2b3")(_NaNAt)
    try:
        yield "nan-at-e2b3"
    finally:
        METHODS.unregister("nan-at-e2b3")


def test_nan_loss_stops_run_and_writes_failed_record(cli_run, tmp_path, nan_method):
    out = tmp_path / "res"
    code, text = cli_run(
        "run",
        "--method",
        nan_method,
        "--out",
        out,
        "--no-progress",
        "--device",
        "cpu",
        "--set",
        "epochs=3",
        expect=2,
    )
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    msg = lines[0]
    for needle in (
        nan_method,
        "non-finite loss nan",
        "'train'",
        "epoch 2",
        "batch 3",
        "marked failed",
    ):
        assert needle in msg, (needle, msg)
    (rec,) = load_records([out])
    assert rec["status"] == "failed" and rec["metrics"] is None
    assert "epoch 2, batch 3" in rec["error"] and nan_method in rec["error"]
    assert [e["epoch"] for e in rec["history"]["epochs"]] == [1]  # epoch 1 finished, 2 did not
    code, table = cli_run("table", "--results", out)
    averaged = table.split("failed runs")[0]
    assert nan_method not in averaged and nan_method in table  # listed, never averaged


def test_exploding_lr_is_reported_not_nan_accuracy(cli_run, tmp_path):
    code, text = cli_run(
        "run",
        "--out",
        tmp_path,
        "--no-progress",
        "--device",
        "cpu",
        "--set",
        "lr=1e30",
        "--set",
        "epochs=2",
        expect=2,
    )
    assert "run failed: erm: non-finite loss" in text and "epoch 1, batch" in text, text
    (rec,) = load_records([tmp_path])
    assert rec["status"] == "failed" and rec["metrics"] is None
