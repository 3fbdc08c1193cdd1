"""benchmarks/device_check.sh at its tiny CPU budget (digits-sslt, a few steps), as in CI."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "device_check.sh"
BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="bash is not installed")


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "OUT": str(tmp_path / "out"),
        "DEVICE_CHECK_RUNS": str(tmp_path / "runs"),
        "PYTHON": sys.executable,
        "PYTHONPATH": str(ROOT),
        "SSLT_CACHE": os.environ.get("SSLT_CACHE", str(tmp_path / "cache")),
    }
    (tmp_path / "runs").mkdir(exist_ok=True)
    return subprocess.run(
        [BASH, str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=500
    )


def test_header_states_the_size_estimate():
    head = SCRIPT.read_text().split("set -uo pipefail")[0]
    assert "Size estimate" in head and "under 9 minutes" in head


def test_unknown_argument_is_a_usage_error(tmp_path):
    proc = _run(tmp_path, "--bogus")
    assert proc.returncode == 2 and "valid: --tiny" in proc.stderr


@pytest.mark.slow
def test_tiny_run_writes_throughput_and_three_records(tmp_path):
    proc = _run(tmp_path, "--tiny")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = tmp_path / "out"
    bench = json.loads((out / "throughput.json").read_text())
    case = bench["cases"]["small-cnn/digits-sslt"]
    for key in (
        "train_img_s",
        "train_ceiling_img_s",
        "train_ratio",
        "eval_img_s",
        "eval_ceiling_img_s",
        "eval_ratio",
    ):
        assert case[key] > 0, key
    records = [json.loads(p.read_text()) for p in (out / "records").glob("*.json")]
    assert sorted(r["method"] for r in records) == [
        "alternate",
        "decoupling",
        "pseudo-label+decoupling",
    ]
    assert all(r["status"] == "ok" and r["seed"] == 0 for r in records)
    assert "done in" in (out / "device_check.log").read_text()
