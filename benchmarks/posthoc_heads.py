"""Test accuracy of every classifier head of a finished run, with post-hoc logit adjustment.

    python benchmarks/posthoc_heads.py RECORD.json CHECKPOINT.pt --data-root ../shared/data

A diagnostic, not a leaderboard number: it rebuilds the run's data and model from its record
(method, data set, profile, seed, --set overrides), loads the checkpoint's EMA weights (the
model's when the run kept no EMA) and prints, for each C-way head and each strength t, the
test accuracy of ``argmax(z - t * log pi_D)`` (pi_D = D's class prior; t = 0 is the head as
scored), plus the per-class mean logit offset between the first two heads next to log pi_D.
It answers whether a head is biased by a prior offset (e.g. ACR's balanced branch, trained
with a tau2 = 2 logit-adjusted loss, against its standard branch) rather than worse features.
Use the run's own thread count and memory format for bit-identical features; the accuracy
does not depend on them beyond float noise.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from tabulate import tabulate

from sslt_bench.data.split import SPLIT_NAMES
from sslt_bench.train.engine import embed_items
from sslt_bench.train.metrics import accuracy_report
from sslt_bench.train.runner import Runner, RunSpec

KEYS = ("overall", *SPLIT_NAMES)


def head_logits(record: dict, ckpt: Path, data_root: str | None) -> tuple[dict, object]:
    """``({head: test logits}, split)`` of the run of ``record`` at checkpoint ``ckpt``."""
    with tempfile.TemporaryDirectory() as tmp:
        spec = RunSpec(
            method=record["method"],
            dataset=record["dataset"],
            seed=record["seed"],
            profile=record["profile"],
            overrides=tuple(record.get("overrides") or ()),
            data_root=data_root,
            out=Path(tmp),
            device="cpu",
            progress=False,
        )
        runner = Runner(spec)
        data = runner._load_data()
        method, ctx, loader = runner._build(data, torch.Generator().manual_seed(0))
    payload = torch.load(ckpt, map_location="cpu", weights_only=False)
    net = ctx.model
    net.load_state_dict(payload.get("ema") or payload["model"])
    net.eval()
    feats = embed_items(net, data.test, data.split.test_idx, loader.augmenter, ctx.device)
    with torch.no_grad():
        return {h: net.heads[h](feats).float().cpu() for h in method.heads}, data.split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("record", type=Path)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--strengths", default="-1,0,1,2", help="comma-separated t values")
    args = ap.parse_args()
    record = json.loads(args.record.read_text())
    logits, split = head_logits(record, args.checkpoint, args.data_root)
    counts = torch.as_tensor(np.asarray(split.labeled_counts), dtype=torch.float64)
    log_pi = (counts / counts.sum()).log().float()
    rows = []
    for head, z in logits.items():
        for t in (float(s) for s in args.strengths.split(",")):
            pred = (z - t * log_pi).argmax(1).numpy()
            rep = accuracy_report(pred, split.test_y, split.class_split, split.num_classes)
            rows.append([head, t, *(round(rep[k], 1) for k in KEYS)])
    print(f"{record['run_id']} (git {record.get('git')}): accuracy of argmax(z - t log pi_D)")
    print(tabulate(rows, ["head", "t", *KEYS], tablefmt="github"))
    if len(logits) >= 2:
        (a, za), (b, zb) = list(logits.items())[:2]
        off = (zb - za).mean(0)
        print(f"\nper-class mean logit offset {b} - {a} (centred) and log pi_D (centred):")
        print(tabulate([(off - off.mean()).tolist(), (log_pi - log_pi.mean()).tolist()],
                       floatfmt=".2f"))  # fmt: skip


if __name__ == "__main__":
    main()
