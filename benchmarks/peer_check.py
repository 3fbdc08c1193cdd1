"""Run a method's official code beside ours: same split, backbone, initial weights and budget.

    python benchmarks/peer_check.py run acr --code CHECKOUT --data-root DATA \\
        [--dataset cifar10-lt] [--set unlabeled_dist=reversed] [--seed 0] [--profile quick]
    python benchmarks/peer_check.py table [--peers benchmarks/results/peer-check] \\
        [--ours leaderboards/records]
    python benchmarks/peer_check.py list

``run`` builds our run of METHOD exactly as ``sslt-bench run`` would (data set, ``--set``
values, profile, seed: the same split hash and initial-weights hash), hands its split, its
backbone with those initial weights and its budget to the official code found at CHECKOUT (a
work tree, or a bare repository such as ``fetch`` brings, exported at HEAD), runs that code's
own training loop with the run-time patches its module lists (recorded one by one), scores
the code's final EMA model on our test items (every head, per class) and writes one record
under ``--out`` (default benchmarks/results/peer-check/). The official code is never part of
this repository; without CHECKOUT nothing runs (exit 2). One CPU thread unless ``--threads``.

``table`` pairs each peer record with our leaderboard record of the same method, data set,
split hash and seed and prints ours vs official with the verdict of docs/fidelity.md:
**agrees** within 2 points overall and few-shot (or within the seed spread when there are
several seeds), otherwise **differs**.

Peers (official code -> our method): see ``list``; one module each in benchmarks/peers/.
``fixmatch`` and ``darp`` (bbuing9/DARP) also import ildoonet/pytorch-randaugment: set
``$RANDAUGMENT_CODE`` to a checkout of it (exit 2 naming the variable otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import PEERS  # noqa: E402
from peers.agreement import agreement_rows, format_rows  # noqa: E402
from peers.common import checkout, machine, prepare  # noqa: E402

from sslt_bench.train.runner import RunSpec  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def run_peer(a: argparse.Namespace) -> Path:
    """Run one peer check; returns the record's path."""
    peer = PEERS[a.peer]
    torch.set_num_threads(a.threads)
    spec = RunSpec(
        method=peer.METHOD,
        dataset=a.dataset,
        seed=a.seed,
        profile=a.profile,
        overrides=tuple(a.set),
        data_root=a.data_root,
        out=Path(tempfile.mkdtemp()),
        device="cpu",
        progress=False,
    )
    ours = prepare(spec)
    t0 = time.time()
    with checkout(Path(a.code)) as (folder, rev), tempfile.TemporaryDirectory() as work:
        result = peer.run(ours, folder, Path(work))
    split = ours.split
    record = {
        "kind": "sslt-bench-peer-check",
        "peer": a.peer,
        "code": {"repo": peer.REPO, "revision": rev},
        "method": peer.METHOD,
        "dataset": a.dataset,
        "profile": a.profile,
        "overrides": list(a.set),
        "seed": a.seed,
        "split_hash": split.hash,
        "init_hash": ours.init_hash,
        "backbone": ours.runner.backbone,
        "method_config": {k: v for k, v in vars(ours.cfg).items() if not k.startswith("_")},
        "command": _command(a.argv),
        "code_argv": peer.argv(ours, Path("OUT")),
        **result,
        **machine(),
        "wall_time_s": round(time.time() - t0, 1),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    setting = "_".join(s.replace("=", "-") for s in a.set) or "default"
    path = out / f"{a.dataset}__{a.peer}__{a.profile}__{setting}__seed{a.seed}.json"
    path.write_text(json.dumps(record, indent=1, default=str) + "\n")
    return path


def _command(args: list[str]) -> str:
    """The command line, with machine paths (``--code``, ``--data-root``, ``--out``) named."""
    names = {"--code": "CHECKOUT", "--data-root": "DATA", "--out": "OUT"}
    out, skip = [], None
    for arg in args:
        key = arg.split("=", 1)[0]
        if skip:
            out.append(skip)
            skip = None
        elif key in names and "=" in arg:
            out.append(f"{key}={names[key]}")
        else:
            out.append(arg)
            skip = names.get(arg)
    return " ".join(["python", "benchmarks/peer_check.py", *out])


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )  # fmt: skip
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run one official code on our split")
    r.add_argument("peer", choices=sorted(PEERS), help="which official code")
    r.add_argument("--code", required=True, help="checkout (or bare repository) of its code")
    r.add_argument("--dataset", default="cifar10-lt")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--profile", default="quick")
    r.add_argument("--data-root", default=None)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--out", default=str(ROOT / "benchmarks/results/peer-check"))
    t = sub.add_parser("table", help="ours vs official, with verdicts")
    t.add_argument("--peers", default=str(ROOT / "benchmarks/results/peer-check"))
    t.add_argument("--ours", default=str(ROOT / "leaderboards/records"))
    sub.add_parser("list", help="the official codes this harness runs")
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    a = _parser().parse_args(argv)
    a.argv = argv
    if a.cmd == "list":
        for name, mod in sorted(PEERS.items()):
            print(f"{name}: {mod.REPO} -> our {mod.METHOD}")
        return 0
    if a.cmd == "table":
        print(format_rows(agreement_rows(Path(a.peers), Path(a.ours))))
        return 0
    if not Path(a.code).exists():
        print(f"error: --code {a.code}: no such checkout of {PEERS[a.peer].REPO}", file=sys.stderr)
        return 2
    for var, repo in getattr(PEERS[a.peer], "NEEDS", ()):
        if not Path(os.environ.get(var) or "/nonexistent").exists():
            print(f"error: ${var}={os.environ.get(var, '')!r}: set it to a checkout of {repo}",
                  file=sys.stderr)  # fmt: skip
            return 2
    print(run_peer(a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
