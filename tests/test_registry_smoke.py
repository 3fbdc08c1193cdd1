"""Every registered method and data set gets a CPU smoke test (no per-entry test code)."""

import json
import math

import pytest

from sslt_bench.registry import DATASETS, METHODS
from sslt_bench.train.runner import Runner, RunSpec


def _smoke_overrides(method: str) -> list[str]:
    cfg = METHODS.get(method).Config
    return [f"{k}={v}" for k, v in getattr(cfg, "SMOKE", {}).items()]


@pytest.mark.parametrize("method", METHODS.names())
def test_method_smoke(method, tmp_path):
    spec = RunSpec(
        method=method,
        dataset="digits-sslt",
        out=tmp_path,
        progress=False,
        device="cpu",
        overrides=tuple(_smoke_overrides(method)),
    )
    rec = Runner(spec).run()
    assert rec["status"] == "ok"
    m = rec["metrics"]
    assert len(m["per_class"]) == 10
    for key in ("overall", "many", "medium", "few"):
        assert m[key] is not None and 0.0 <= m[key] <= 100.0
    cls = METHODS.get(method)
    others = rec.get("other_heads", {})
    assert set(others) == set(cls.heads) - {cls.eval_head}  # every unscored C-way head
    assert all(0.0 <= r["overall"] <= 100.0 for r in others.values())
    losses = [e["loss"] for e in rec["history"]["epochs"]]
    assert losses and all(math.isfinite(v) for v in losses)
    written = json.loads(open(rec["_path"]).read())
    assert written["method"] == method and written["split_hash"] == rec["split_hash"]


@pytest.mark.parametrize("dataset", DATASETS.names())
def test_dataset_smoke(dataset, tmp_path):
    builder = DATASETS.get(dataset)
    root, overrides = builder.smoke_fixture(tmp_path / "data")
    spec = RunSpec(
        method="erm",
        dataset=dataset,
        out=tmp_path / "out",
        progress=False,
        device="cpu",
        data_root=str(root) if root else None,
        overrides=(*_smoke_overrides("erm"), *(f"{k}={v}" for k, v in overrides.items())),
    )
    runner = Runner(spec)
    data = runner._load_data()
    split = data.split
    assert len(split.labeled_idx) > 0 and len(split.test_idx) > 0
    assert len(set(split.labeled_idx) & set(split.unlabeled_idx)) == 0
    x = next(data.train.iter_batches([split.labeled_idx[:2]], runner.device))
    assert x.dtype.is_floating_point is False and x.shape[1] == data.channels
    rec = runner.run()
    assert rec["status"] == "ok" and rec["metrics"]["overall"] is not None
