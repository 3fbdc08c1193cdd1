"""benchmarks/posthoc_heads.py rebuilds a run from its record and reproduces its scored head."""

import importlib.util
import json
from pathlib import Path

import numpy as np

from sslt_bench.train.metrics import accuracy_report
from sslt_bench.train.runner import Runner, RunSpec

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("posthoc", ROOT / "benchmarks/posthoc_heads.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_reproduces_both_branches_of_an_acr_run(tmp_path):
    from sslt_bench.registry import METHODS

    smoke = getattr(METHODS.get("acr").Config, "SMOKE", {})
    overrides = tuple(f"{k}={v}" for k, v in smoke.items())
    spec = RunSpec(method="acr", dataset="digits-sslt", out=tmp_path, progress=False,
                   device="cpu", overrides=overrides)  # fmt: skip
    rec = Runner(spec).run()
    ckpt = tmp_path / "checkpoints" / f"{rec['run_id']}.pt"
    record = json.loads(Path(rec["_path"]).read_text())
    logits, split = _script().head_logits(record, ckpt, None)
    assert set(logits) == {"random", "balanced"}
    for head, want in (("balanced", rec["metrics"]), ("random", rec["other_heads"]["random"])):
        pred = logits[head].argmax(1).numpy()
        got = accuracy_report(pred, split.test_y, split.class_split, split.num_classes)
        assert np.isclose(got["overall"], want["overall"]), head
