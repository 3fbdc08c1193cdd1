"""Data-pipeline benchmark (issue 3): split build times, CIFAR-10 cache build, loader overhead.

Prints
1. CIFAR-10 cache build time (decode the source into a fresh uint8 cache) and cache load time;
2. the time to build every registered data set's split with its cache warm (data sets whose
   data is not under --data-root are listed as skipped), and imagefolder / cifar10-sslt on the
   tarball unpacked as an ImageFolder tree (the file scan + content key cost per run);
3. ResNet-32 training images/second on cifar10-sslt end to end (the runner's ``Loader`` +
   ``Augmenter`` + ``engine.train_epoch``) divided by the same model's step rate on batches
   already augmented and in memory: the share of time the model is busy (target >= 0.9).
   Two recipes: ERM (labeled weak view) and an SSL recipe with mu=1 unlabeled weak + strong
   views (FixMatch-style loss, written here only to drive the pipeline). Single optimiser
   steps alternate between the two loops so load from other processes hits both alike; the
   ratio is shown over the total time, the median step and the fastest step. An end-to-end
   step here is a one-step ``train_epoch``, so its per-epoch set-up is counted every step
   (an upper bound on the overhead of a real epoch). Under heavy load from other processes
   these ratios are noisy, so the cost of the data path alone (load + augment one step's
   batches, fastest of many) is also shown against the fastest model step.

    python benchmarks/pipeline.py --data-root DATA [--steps 12]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def fixmatch_like(batch, ctx):
    """Labeled CE + confidence-masked CE of the strong view on the weak view's argmax."""
    loss = F.cross_entropy(ctx.model(batch.x), batch.y)
    with torch.no_grad():
        prob = ctx.model(batch.u["weak"]).softmax(1)
    conf, pseudo = prob.max(1)
    per = F.cross_entropy(ctx.model(batch.u["strong"]), pseudo, reduction="none")
    return loss + (per * (conf >= 0.95)).mean()


@contextlib.contextmanager
def temporary_cache():
    """Point SSLT_CACHE at a fresh temporary folder (removed afterwards)."""
    old = os.environ.get("SSLT_CACHE")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SSLT_CACHE"] = tmp
        try:
            yield Path(tmp)
        finally:
            if old is None:
                os.environ.pop("SSLT_CACHE")
            else:
                os.environ["SSLT_CACHE"] = old


def cache_build(root: Path) -> None:
    from sslt_bench.data.datasets._cifar_sources import load_cifar10

    with temporary_cache():
        t = time.perf_counter()
        data = load_cifar10(root)
        build = time.perf_counter() - t
        t = time.perf_counter()
        load_cifar10(root)
        load = time.perf_counter() - t
    n = len(data["train_x"]) + len(data["test_x"])
    print(f"CIFAR-10 cache build from {root}: {build:.1f} s for {n} images; load {load:.3f} s")


def split_times(root: Path) -> None:
    from sslt_bench.config import build_config
    from sslt_bench.errors import UsageError
    from sslt_bench.registry import DATASETS

    cases = [(name, {}) for name in DATASETS.names()] + [
        ("cifar10-sslt", {"imbalance_ratio": 1000})
    ]
    for name, over in cases:
        builder = DATASETS.get(name)
        label = name + "".join(f" {k}={v}" for k, v in over.items())
        try:
            params = build_config(builder.Params, "paper", over)
            builder.build(params, 0, root)  # warm the cache
            t = time.perf_counter()
            split = builder.build(params, 0, root).split
            dt = time.perf_counter() - t
        except UsageError as exc:
            print(f"  {label:<32} skipped: {str(exc)[:90]}")
            continue
        print(
            f"  {label:<32} {dt:6.3f} s  hash {split.hash}  D {len(split.labeled_idx)}"
            f"  U {len(split.unlabeled_idx)}  test {len(split.test_idx)}"
        )


def folder_tree_times(root: Path) -> None:
    """Unpack the CIFAR-10 tarball as an ImageFolder tree; time imagefolder and cifar10-sslt."""
    import tarfile

    from sslt_bench.config import build_config
    from sslt_bench.registry import DATASETS

    tarball = root / "cifar10-jpg.tar.gz"
    if not tarball.is_file():
        print(f"  (no {tarball}: ImageFolder-tree timings skipped)")
        return
    with tempfile.TemporaryDirectory() as tmp, temporary_cache():
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
        tree = Path(tmp) / "cifar10"
        for name, over in (("imagefolder", {"imbalance_ratio": 100}), ("cifar10-sslt", {})):
            builder = DATASETS.get(name)
            params = build_config(builder.Params, "paper", over)
            t = time.perf_counter()
            builder.build(params, 0, tree)
            cold = time.perf_counter() - t
            t = time.perf_counter()
            split = builder.build(params, 0, tree).split
            warm = time.perf_counter() - t
            label = f"{name} on the unpacked tree"
            print(
                f"  {label:<32} {warm:6.3f} s  (first build, decoding into the cache: {cold:.1f} s)"
                f"  hash {split.hash}  D {len(split.labeled_idx)}  U {len(split.unlabeled_idx)}"
            )


class _Loops:
    """ResNet-32 on cifar10-sslt: the runner's loop and the model-only step on the same batch."""

    def __init__(self, root: Path, batch: int) -> None:
        from sslt_bench.config import build_config
        from sslt_bench.data.augment import Augmenter
        from sslt_bench.data.datasets.cifar10 import Cifar10Params, Cifar10SSLT
        from sslt_bench.methods.base import DataInfo
        from sslt_bench.models import build_model
        from sslt_bench.registry import METHODS
        from sslt_bench.train.engine import Loader
        from sslt_bench.train.stages import Batch, StepContext, Unlabeled

        device = torch.device("cpu")
        data = Cifar10SSLT.build(build_config(Cifar10Params, "paper", {}), 0, root)
        split = data.split
        n_l, n_u = len(split.labeled_idx), len(split.unlabeled_idx)
        counts = split.labeled_counts
        erm_cls = METHODS.get("erm")
        cfg = build_config(erm_cls.Config, "paper", {"batch_size": batch})
        method = erm_cls(cfg, DataInfo(10, counts, n_l, n_u, 3, 32))
        self.erm = replace(method.plan()[0], epochs=1)
        unl = Unlabeled(mu=1, views=("weak", "strong"))
        self.ssl = replace(self.erm, loss=fixmatch_like, unlabeled=unl)
        torch.manual_seed(0)
        self.model = build_model("resnet32", 3, 32, 10, {"random": "linear"})
        self.gen = gen = torch.Generator().manual_seed(0)
        ctx = StepContext(self.model, None, {}, 10, torch.as_tensor(counts), n_l, n_u, device, gen)
        self.ctx = ctx
        self.aug = aug = Augmenter(data.mean, data.std, data.crop_padding, data.flip, device)
        item_src = np.concatenate([split.labeled_idx, split.unlabeled_idx])
        self.loader = Loader(data.train, item_src, aug, device)
        self.pool_ids, self.labels = torch.arange(n_l), torch.as_tensor(split.labeled_y)
        self.unl_ids = torch.arange(n_l, n_l + n_u)
        self.opt = torch.optim.SGD(
            self.model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4
        )
        # The same batches, augmented once and kept in memory: the model-only step rate.
        x_u8 = data.train.images[split.labeled_idx[:batch]]
        u_u8 = data.train.images[split.unlabeled_idx[:batch]]
        labeled = aug(x_u8, "weak", gen)
        self.mem = Batch(labeled, self.labels[:batch], self.pool_ids[:batch], num_labeled=n_l)
        self.mem_u = {"weak": aug(u_u8, "weak", gen), "strong": aug(u_u8, "strong", gen)}
        self.batch = batch

    def end_to_end(self, step) -> float:
        from sslt_bench.train.engine import Optimiser, train_epoch

        t = time.perf_counter()
        pool = (self.pool_ids, self.labels)
        train_epoch(step, self.ctx, self.loader, pool, self.unl_ids, Optimiser(self.opt))
        return time.perf_counter() - t

    def in_memory(self, step) -> float:
        b = replace(self.mem, u=self.mem_u if step.unlabeled else {})
        t = time.perf_counter()
        for _ in range(step.steps_per_epoch):
            loss = step.loss(b, self.ctx)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        return time.perf_counter() - t

    def data_only(self, step) -> float:
        """One step's worth of loading + augmentation, without the model."""
        ids = [self.pool_ids[: self.batch].numpy()]
        t = time.perf_counter()
        self.aug(next(self.loader.images(ids)), step.view, self.gen)
        if step.unlabeled:
            u8 = next(self.loader.images([self.unl_ids[: self.batch].numpy()]))
            self.aug(u8, "weak", self.gen), self.aug(u8, "strong", self.gen)
        return time.perf_counter() - t


def throughput(root: Path, steps: int, batch: int) -> None:
    loops = _Loops(root, batch)
    loops.model.train()
    for name, step in (("erm (weak)", loops.erm), ("ssl mu=1 (weak+strong)", loops.ssl)):
        images = batch * (3 if step.unlabeled else 1)  # per optimiser step
        one = replace(step, steps_per_epoch=1)
        loops.end_to_end(one), loops.in_memory(one)  # warm-up
        e2e, ref, prep = [], [], []
        for _ in range(steps):  # alternate single steps so both loops see the same load
            ref.append(loops.in_memory(one))
            e2e.append(loops.end_to_end(one))
            prep.extend(loops.data_only(step) for _ in range(3))
        print(
            f"  {name:<24} end-to-end {images * steps / sum(e2e):6.1f} img/s, in-memory "
            f"{images * steps / sum(ref):6.1f} img/s: ratio {sum(ref) / sum(e2e):.3f} (total), "
            f"{statistics.median(ref) / statistics.median(e2e):.3f} (median step), "
            f"{min(ref) / min(e2e):.3f} (fastest step)"
        )
        print(
            f"  {'':<24} data only (load + augment): fastest {1000 * min(prep):.0f} ms/step, "
            f"median {1000 * statistics.median(prep):.0f} ms vs model step fastest "
            f"{1000 * min(ref):.0f} ms: ratio {min(ref) / (min(ref) + min(prep)):.3f} (fastest)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--data-root",
        default=os.environ.get("SSLT_DATA"),
        help="the folder holding cifar10-jpg.tar.gz (default: $SSLT_DATA)",
    )
    ap.add_argument("--steps", type=int, default=12, help="timed optimiser steps per loop")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-cache-build", action="store_true")
    args = ap.parse_args()
    if not args.data_root:
        ap.error("--data-root (or $SSLT_DATA) is required: the folder holding cifar10-jpg.tar.gz")
    torch.set_num_threads(args.threads)
    root = Path(args.data_root)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    if not args.skip_cache_build:
        cache_build(root)
    print("split build time from a warm cache (seed 0, paper parameters):")
    split_times(root)
    folder_tree_times(root)
    print(f"ResNet-32 training on cifar10-sslt, batch {args.batch_size}, {args.steps} steps each:")
    throughput(root, args.steps, args.batch_size)


if __name__ == "__main__":
    main()
