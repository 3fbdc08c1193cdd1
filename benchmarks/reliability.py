"""Reliability check (issue 7): SIGKILL a real run in the middle of an epoch, resume it, and
compare its final metrics with an uninterrupted run of the same command and seeds.

Steps, each a separate ``python -m sslt_bench run`` process with the same environment:

1. the *victim* run trains into ``OUT/resumed``; the script watches its checkpoint file and,
   after the ``--kill-after``-th checkpoint write, waits half of the observed time between
   checkpoint writes (so the kill lands inside an epoch) and sends SIGKILL;
2. the same command is run again into the same folder: it resumes from the last checkpoint;
3. the *reference* run trains the same command uninterrupted into ``OUT/reference``;
4. the final metrics (overall, many/medium/few, per class) and the per-epoch losses of the two
   records are compared bit for bit; the exit code is 0 when they match, 1 otherwise.

On CPU the match must be exact. On CUDA pass ``--deterministic`` (and expect it to be slower):
cuDNN/cuBLAS kernels are otherwise free to reorder floating-point sums between processes.

    python benchmarks/reliability.py                         # cifar10-sslt quick, erm
    python benchmarks/reliability.py --dataset digits-sslt --method alternate
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _cmd(args: argparse.Namespace, out: Path) -> list[str]:
    cmd = [sys.executable, "-m", "sslt_bench", "run", "--method", args.method]
    cmd += ["--dataset", args.dataset, "--profile", args.profile, "--seed", str(args.seed)]
    cmd += ["--device", args.device, "--out", str(out), "--no-progress"]
    if args.dataset != "digits-sslt":
        cmd += ["--data-root", args.data_root]
    if args.deterministic:
        cmd.append("--deterministic")
    for s in args.set:
        cmd += ["--set", s]
    return cmd


def _ckpt_stamp(folder: Path) -> tuple | None:
    """(inode, mtime) of the run's current checkpoint; changes on every (atomic) rewrite."""
    for f in folder.glob("*.pt"):
        if not f.name.endswith(".prev.pt"):
            try:
                st = f.stat()
            except FileNotFoundError:
                return None
            return st.st_ino, st.st_mtime_ns
    return None


def _progress(folder: Path) -> dict | None:
    import torch

    for f in folder.glob("*.pt"):
        if not f.name.endswith(".prev.pt"):
            return torch.load(f, map_location="cpu", weights_only=True)["progress"]
    return None


def _record(out: Path) -> dict:
    files = sorted((out / "records").glob("*.json"))
    if len(files) != 1:
        raise SystemExit(f"expected one record in {out / 'records'}, found {len(files)}")
    return json.loads(files[0].read_text())


def _run(cmd: list[str], env: dict[str, str], what: str) -> float:
    t = time.time()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{what} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return time.time() - t


def kill_mid_epoch(cmd: list[str], env: dict[str, str], out: Path, after: int) -> dict:
    """Start ``cmd``, SIGKILL it half a checkpoint interval after its ``after``-th checkpoint."""
    t0 = time.time()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpts, writes, last = out / "checkpoints", [], None
    try:
        while proc.poll() is None and len(writes) < after:
            stamp = _ckpt_stamp(ckpts)
            if stamp is not None and stamp != last:
                writes.append(time.time())
                last = stamp
            time.sleep(0.005)
        if proc.poll() is not None:
            raise SystemExit(
                f"the run ended ({proc.returncode}) after {len(writes)} checkpoints, before the "
                f"kill; lower --kill-after or lengthen the run\n{proc.stderr.read().decode()}"
            )
        gaps = [b - a for a, b in zip(writes, writes[1:], strict=False)]
        time.sleep(sorted(gaps)[len(gaps) // 2] / 2)  # half a typical epoch into the next one
        os.kill(proc.pid, signal.SIGKILL)
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    return {
        "killed_after_s": round(time.time() - t0, 2),
        "checkpoint_writes_seen": len(writes),
        "exit_code": code,
        "last_checkpoint": _progress(ckpts),
    }


def compare(ref: dict, res: dict) -> list[str]:
    """Differences between two records' results (empty list: bit-identical)."""
    diffs = []
    for key in ("overall", "many", "medium", "few", "per_class"):
        if ref["metrics"][key] != res["metrics"][key]:
            diffs.append(f"{key}: {ref['metrics'][key]} vs {res['metrics'][key]}")
    losses = [
        [(e["step"], e["epoch"], e["loss"]) for e in r["history"]["epochs"]] for r in (ref, res)
    ]
    if losses[0] != losses[1]:
        pairs = enumerate(zip(*losses, strict=False))
        n = next((i for i, (a, b) in pairs if a != b), min(map(len, losses)))
        diffs.append(f"per-epoch losses differ from entry {n}")
    return diffs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="cifar10-sslt")
    p.add_argument("--method", default="erm")
    p.add_argument("--profile", default="quick")
    p.add_argument(
        "--data-root",
        default=os.environ.get("SSLT_DATA"),
        help="the folder holding cifar10-jpg.tar.gz (default: $SSLT_DATA)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--deterministic", action="store_true", help="needed for a match on CUDA")
    p.add_argument("--kill-after", type=int, default=2, help="checkpoint writes before the kill")
    p.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    args = p.parse_args()
    if args.dataset != "digits-sslt" and not args.data_root:
        p.error("--data-root (or $SSLT_DATA) is required: the folder holding the data set's files")
    if args.kill_after < 2:
        p.error("--kill-after must be >= 2 (the gap between two checkpoints times the kill)")

    work = Path(args.out or tempfile.mkdtemp(prefix="sslt-reliability-"))
    env = dict(os.environ)  # one environment (threads!) for every process
    print(f"work folder {work}; command: {' '.join(_cmd(args, work / 'resumed'))}")

    kill = kill_mid_epoch(_cmd(args, work / "resumed"), env, work / "resumed", args.kill_after)
    print(
        f"victim: SIGKILL after {kill['killed_after_s']} s (exit {kill['exit_code']}), "
        f"last checkpoint at {kill['last_checkpoint']}"
    )
    t_resume = _run(_cmd(args, work / "resumed"), env, "resumed run")
    t_ref = _run(_cmd(args, work / "reference"), env, "reference run")
    ref, res = _record(work / "reference"), _record(work / "resumed")
    print(f"resumed run: {t_resume:.1f} s, resumed from {res['resumed_from']}")
    print(f"reference run: {t_ref:.1f} s (uninterrupted)")
    for name, rec in (("reference", ref), ("resumed  ", res)):
        m = rec["metrics"]
        print(
            f"  {name} overall {m['overall']!r} many {m['many']!r} medium {m['medium']!r} "
            f"few {m['few']!r}"
        )
    diffs = compare(ref, res)
    if res["resumed_from"] is None:
        diffs.append("the second run did not resume (started over)")
    if diffs:
        print("MISMATCH: " + "; ".join(diffs))
        return 1
    print(
        f"MATCH: final metrics (incl. {len(ref['metrics']['per_class'])} per-class accuracies) "
        f"and all {len(ref['history']['epochs'])} per-epoch losses are bit-identical"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
