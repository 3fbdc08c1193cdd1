"""Throughput benchmark (issue 8): our training loop against its model-only ceiling and against a
plain PIL + torchvision DataLoader pipeline, glibc malloc tuning, and alternate's extra cost.

For ResNet-32 on cifar10-sslt (batch 128) and the small CNN on digits-sslt (batch 32) it prints
* training images/s end to end: the runner's path (``samplers`` -> ``Loader`` -> batched tensor
  ``Augmenter`` -> ``engine.train_epoch``), its model-only ceiling (the same SGD step on a batch
  already augmented and in memory) and their ratio (target >= 0.9);
* evaluation images/s (``engine.embed_items`` + ``predict``);
* the same for a reference-style pipeline (the LDAM-DRW / FixMatch recipe: a Dataset of HWC
  uint8 arrays, per-image ``PIL.Image.fromarray`` + RandomCrop + RandomHorizontalFlip +
  ToTensor + Normalize, a shuffling DataLoader), measured in the same run, so the speed-up is a
  ratio;
* our loop with ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736`` (glibc keeps large
  buffers instead of unmapping and re-faulting them every step) and without, with minor page
  faults; each measurement runs in a fresh subprocess with an explicit environment;
* the wall-time ratio of ``alternate`` to ``pseudo-label+decoupling`` for the same number of
  embedding epochs on D ∪ U' (the paper: the extra stages cost little; target <= 1.10).

Measurements of one kind alternate over ``--rounds`` rounds (median shown), so load from other
processes hits all alike; the load average is printed with the figures.

    python benchmarks/throughput.py --data-root DATA [--steps 20 --rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

MALLOC = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}
CASES = {  # name: (data set, backbone, batch size, extra data overrides)
    "resnet32/cifar10-sslt": ("cifar10-sslt", "resnet32", 128),
    "small-cnn/digits-sslt": ("digits-sslt", "small-cnn", 32),
}


# -- workers (run in a subprocess; print one JSON line) ----------------------------------------
def _setup(case: str, data_root: str | None, device: torch.device):
    from sslt_bench.config import build_config
    from sslt_bench.models import build_model
    from sslt_bench.registry import DATASETS

    dataset, backbone, batch = CASES[case]
    builder = DATASETS.get(dataset)
    data = builder.build(
        build_config(builder.Params, "paper", {}), 0, data_root and Path(data_root)
    )
    torch.manual_seed(0)
    model = build_model(
        backbone, data.channels, data.image_size, data.split.num_classes, {"random": "linear"}
    ).to(device)
    if device.type == "cuda":  # the runner's CUDA defaults
        model = model.to(memory_format=torch.channels_last)
    return data, model, batch


def _sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)


def worker_ours(case: str, data_root: str | None, steps: int, warmup: int, eval_n: int) -> dict:
    from sslt_bench.augment import Augmenter
    from sslt_bench.engine import Loader, embed_items, predict, train_epoch
    from sslt_bench.stages import StepContext, Train

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = "bf16" if device.type == "cuda" else "none"
    data, model, batch = _setup(case, data_root, device)
    split = data.split
    aug = Augmenter(data.mean, data.std, data.crop_padding, data.flip, device)
    item_src = np.concatenate([split.labeled_idx, split.unlabeled_idx])
    loader = Loader(data.train, item_src, aug, device)
    labels = torch.as_tensor(split.labeled_y)
    pool = torch.arange(len(labels))
    gen = torch.Generator().manual_seed(0)
    ctx = StepContext(
        model,
        None,
        {},
        split.num_classes,
        torch.as_tensor(split.labeled_counts),
        len(split.labeled_idx),
        len(split.unlabeled_idx),
        device,
        gen,
    )

    def ce(b, c):
        return F.cross_entropy(c.model(b.x, "random"), b.y)

    opt = _sgd(model)
    model.train()

    def loop(n: int) -> float:
        step = Train("bench", 1, ce, batch_size=batch, lr=0.01, steps_per_epoch=n)
        _sync(device)
        t = time.perf_counter()
        train_epoch(step, ctx, loader, pool, labels, pool, opt, amp)
        _sync(device)
        return time.perf_counter() - t

    x = aug(next(data.train.iter_batches([item_src[:batch]], device)), "weak", gen)
    y = labels[:batch].to(device) if len(labels) >= batch else labels.repeat(batch)[:batch]
    x = x.contiguous(memory_format=torch.channels_last) if device.type == "cuda" else x

    def ceiling(n: int) -> float:
        from sslt_bench.engine import amp_context

        _sync(device)
        t = time.perf_counter()
        for _ in range(n):
            with amp_context(device, amp):
                loss = F.cross_entropy(model(x, "random"), y.to(device))
            if not torch.isfinite(loss):
                raise RuntimeError("non-finite loss")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            float(loss.detach())
        _sync(device)
        return time.perf_counter() - t

    loop(warmup), ceiling(warmup)
    f0, c0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, _cpu()
    t_loop = loop(steps)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    c1 = _cpu()
    t_ceil = ceiling(steps)
    c2 = _cpu()
    idx = np.resize(split.test_idx, eval_n)
    embed_items(model, data.test, idx[:batch], aug, device, amp=amp)  # warm-up
    _sync(device)
    t, c3 = time.perf_counter(), _cpu()
    predict(model, "random", embed_items(model, data.test, idx, aug, device, amp=amp))
    _sync(device)
    t_eval, c4 = time.perf_counter() - t, _cpu()
    return {
        "train": steps * batch / t_loop,
        "ceiling": steps * batch / t_ceil,
        "train_cpu": steps * batch / (c1 - c0),
        "ceiling_cpu": steps * batch / (c2 - c1),
        "eval": eval_n / t_eval,
        "eval_cpu": eval_n / (c4 - c3),
        "minor_faults_per_step": faults / steps,
    }


def worker_pil(
    case: str, data_root: str | None, steps: int, warmup: int, eval_n: int, workers: int
) -> dict:
    """The reference recipe: PIL per image, torchvision transforms, a shuffling DataLoader."""
    from PIL import Image
    from torchvision import transforms as T

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data, model, batch = _setup(case, data_root, device)
    split = data.split
    train_x = data.train.images[torch.as_tensor(split.labeled_idx)].permute(0, 2, 3, 1).numpy()
    test_x = data.test.images[torch.as_tensor(np.resize(split.test_idx, eval_n))]
    test_x = test_x.permute(0, 2, 3, 1).numpy()
    mode = "L" if data.channels == 1 else "RGB"
    size = data.image_size
    norm = T.Normalize(data.mean, data.std)
    aug = [T.RandomCrop(size, padding=data.crop_padding)]
    aug += [T.RandomHorizontalFlip()] if data.flip else []
    train_tf = T.Compose([*aug, T.ToTensor(), norm])
    test_tf = T.Compose([T.ToTensor(), norm])

    class Arrays(torch.utils.data.Dataset):
        def __init__(self, x, y, tf):
            self.x, self.y, self.tf = x, y, tf

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            img = Image.fromarray(self.x[i].squeeze(-1) if mode == "L" else self.x[i], mode)
            return self.tf(img), int(self.y[i])

    ds = Arrays(train_x, split.labeled_y, train_tf)
    n_needed = (warmup + steps) * batch
    sampler = torch.utils.data.RandomSampler(ds, replacement=False, num_samples=n_needed)
    dl = torch.utils.data.DataLoader(
        ds,
        batch_size=batch,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
    )
    opt = _sgd(model)
    model.train()
    it = iter(dl)
    t = 0.0
    f0 = 0
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t, f0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        xb, yb = next(it)
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        loss = F.cross_entropy(model(xb, "random"), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        float(loss.detach())
    _sync(device)
    t_train = time.perf_counter() - t
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
    del it
    test_ds = Arrays(test_x, np.zeros(len(test_x), dtype=np.int64), test_tf)
    tl = torch.utils.data.DataLoader(test_ds, batch_size=100, num_workers=workers)
    model.eval()
    t = time.perf_counter()
    with torch.no_grad():
        for xb, _ in tl:
            model(xb.to(device), "random").argmax(1).cpu()
    t_eval = time.perf_counter() - t
    return {
        "train": steps * batch / t_train,
        "eval": eval_n / t_eval,
        "minor_faults_per_step": faults / steps,
    }


def worker_methods(epochs: int, loops: int, loop_epochs: int) -> dict:
    """Wall time of alternate vs pseudo-label+decoupling on digits-sslt, same embedding epochs."""
    import tempfile

    from sslt_bench.registry import METHODS
    from sslt_bench.runner import Runner, RunSpec

    if not {"alternate", "pseudo-label+decoupling"} <= set(METHODS.names()):
        return {"skipped": "alternate or pseudo-label+decoupling is not registered"}
    common = (f"epochs={epochs}", "head_epochs=10")
    specs = {
        "alternate": (*common, f"loops={loops}", f"loop_epochs={loop_epochs}"),
        "pseudo-label+decoupling": (*common, f"finetune_epochs={loops * loop_epochs}"),
    }
    out: dict = {name: {"wall": [], "train": []} for name in specs}
    with tempfile.TemporaryDirectory() as tmp:
        warm = RunSpec(method="erm", overrides=("epochs=1",), out=Path(tmp), progress=False)
        Runner(warm).run()  # first-run costs (imports, caches) hit neither method
        for name in (
            "pseudo-label+decoupling",
            "alternate",
            "alternate",
            "pseudo-label+decoupling",
        ):
            spec = RunSpec(method=name, overrides=specs[name], out=Path(tmp), progress=False)
            spec.fresh = True
            t = time.perf_counter()
            rec = Runner(spec).run()
            out[name]["wall"].append(time.perf_counter() - t)
            out[name]["train"].append(rec["train_time_s"])
            out[name]["images"] = rec["train_images"]
    for r in out.values():
        r["wall"], r["train"] = statistics.mean(r["wall"]), statistics.mean(r["train"])
    return out


def _cpu() -> float:
    """CPU seconds (user + system) of this process so far: robust to other processes' load."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


# -- orchestration ------------------------------------------------------------------------------
def _sub(args: list[str], env_extra: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in MALLOC}
    env.update(env_extra)
    cmd = [sys.executable, __file__, "--worker", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _median(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    py = platform.python_version()
    return f"{cpu}, {cores} cores, {gpu}, torch {torch.__version__}, Python {py}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--data-root",
        default=os.environ.get("SSLT_DATA"),
        help="the folder holding cifar10-jpg.tar.gz (default: $SSLT_DATA)",
    )
    ap.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (median shown)")
    ap.add_argument("--eval-images", type=int, default=2000)
    ap.add_argument(
        "--pil-workers",
        type=int,
        default=None,
        help="reference pipeline DataLoader workers (default: cores)",
    )
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated cases")
    ap.add_argument(
        "--method-epochs",
        default="20,5,10",
        help="alternate timing: init epochs, loops, epochs per loop",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: cores)")
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--worker", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        kind, *rest = a.worker
        fn = {"ours": worker_ours, "pil": worker_pil, "methods": worker_methods}[kind]
        conv = [None if v == "-" else (int(v) if v.lstrip("-").isdigit() else v) for v in rest]
        print(json.dumps(fn(*conv)))
        return

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    pil_workers = cores if a.pil_workers is None else a.pil_workers
    threads = {"OMP_NUM_THREADS": str(a.threads or cores)}
    print(f"machine: {machine()}")
    print(
        f"load average at start: {os.getloadavg()[0]:.2f} ({cores} cores); "
        f"{threads['OMP_NUM_THREADS']} torch threads per process"
    )
    results: dict = {"machine": machine(), "load_start": os.getloadavg()[0], "cases": {}}
    for case in a.cases.split(","):
        dataset = CASES[case][0]
        root = a.data_root if dataset != "digits-sslt" else "-"
        common = [case, root, str(a.steps), str(a.warmup), str(a.eval_images)]
        rows: dict[str, list] = {"ours": [], "ours+malloc": [], "pil": []}
        try:
            for _ in range(a.rounds):
                rows["ours"].append(_sub(["ours", *common], threads))
                rows["ours+malloc"].append(_sub(["ours", *common], {**threads, **MALLOC}))
                rows["pil"].append(_sub(["pil", *common, str(pil_workers)], threads))
        except RuntimeError as exc:
            print(f"{case}: skipped ({str(exc).strip().splitlines()[-1]})")
            continue
        med = {k: _median(v) for k, v in rows.items()}
        results["cases"][case] = med
        o, m, p = med["ours"], med["ours+malloc"], med["pil"]
        print(f"\n{case} (batch {CASES[case][2]}, median of {a.rounds} rounds of {a.steps} steps)")
        print(
            f"  {'pipeline':<34}{'train img/s':>12}{'ceiling':>10}{'ratio':>7}{'eval img/s':>12}"
            f"{'faults/step':>13}"
        )
        for name, r in (("ours", o), ("ours + malloc tuning", m)):
            print(
                f"  {name:<34}{r['train']:>12.0f}{r['ceiling']:>10.0f}"
                f"{r['train'] / r['ceiling']:>7.2f}{r['eval']:>12.0f}"
                f"{r['minor_faults_per_step']:>13.0f}"
            )
        print(
            f"  {f'PIL + DataLoader ({pil_workers} workers)':<34}{p['train']:>12.0f}{'':>10}"
            f"{'':>7}{p['eval']:>12.0f}{p['minor_faults_per_step']:>13.0f}"
        )
        print(
            f"  speed-up vs PIL pipeline: train {o['train'] / p['train']:.2f}x "
            f"({m['train'] / p['train']:.2f}x with malloc tuning), "
            f"eval {o['eval'] / p['eval']:.2f}x"
        )
        print(
            f"  malloc tuning: train {m['train'] / o['train']:.3f}x, "
            f"ceiling {m['ceiling'] / o['ceiling']:.3f}x, eval {m['eval'] / o['eval']:.3f}x"
        )
        print(
            f"  per CPU-second (load-independent): ours train {o['train_cpu']:.0f} img "
            f"(ceiling {o['ceiling_cpu']:.0f}), with malloc tuning {m['train_cpu']:.0f} "
            f"(ceiling {m['ceiling_cpu']:.0f}): {m['train_cpu'] / o['train_cpu']:.3f}x; "
            f"eval {o['eval_cpu']:.0f} vs {m['eval_cpu']:.0f}: {m['eval_cpu'] / o['eval_cpu']:.3f}x"
        )

    e, loops, per = (int(v) for v in a.method_epochs.split(","))
    res = _sub(["methods", str(e), str(loops), str(per)], threads)
    results["methods"] = res
    if "skipped" in res:
        print(f"\nalternate vs pseudo-label+decoupling: skipped ({res['skipped']})")
    else:
        alt, pld = res["alternate"], res["pseudo-label+decoupling"]
        print(
            f"\nalternate ({loops} loops x {per} epochs) vs pseudo-label+decoupling "
            f"({loops * per} fine-tuning epochs), digits-sslt, init {e} epochs, "
            "mean of 2 runs each in the order P A A P:"
        )
        print(
            f"  wall {alt['wall']:.1f} s vs {pld['wall']:.1f} s: "
            f"ratio {alt['wall'] / pld['wall']:.3f}"
            f"; training loops {alt['train']:.1f} s vs {pld['train']:.1f} s "
            f"({alt['images']:.0f} vs {pld['images']:.0f} images)"
        )
    results["load_end"] = os.getloadavg()[0]
    print(f"\nload average at end: {results['load_end']:.2f} ({cores} cores)")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
