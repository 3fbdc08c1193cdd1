"""Throughput benchmark (issues 8 and 14): our loops against their model-only ceilings.

Per case (ResNet-32 on cifar10-sslt, batch 128; the small CNN on digits-sslt, batch 32) one
worker process measures, interleaved over ``--rounds`` rounds (median kept):

* ``train_img_s``: the runner's path end to end (``samplers`` -> ``Loader`` -> batched tensor
  ``Augmenter`` -> ``engine.train_epoch``) in the default memory format of the device
  (``models.wrapper.use_channels_last``);
* ``train_ceiling_img_s``: the best over NCHW and channels_last of the same SGD step on one
  batch already augmented and in memory (both formats are reported);
* ``eval_img_s``: ``engine.embed_items`` + ``predict`` over test images (test evaluation,
  pseudo-labelling and feature caching all run this path);
* ``eval_ceiling_img_s``: the best over both formats of the model's forward (no_grad, eval
  mode, same batch size) on a ready normalised batch, plus argmax;
* the ratios ``train_ratio`` and ``eval_ratio`` (goal >= 0.9).

``--kekmodel PATH`` (a checkout of kekmodel/FixMatch-pytorch, not part of this project) adds
the FixMatch step: B labeled + mu B unlabeled images in a weak and a strong view, one forward,
ours (``fixmatch``'s plan step through ``engine.train_epoch``) against that code's own step
(its ``TransformFixMatch`` PIL pipeline and DataLoader, its ``interleave``, ``ModelEMA`` and loss
lines as in its ``train.py``), same model (ResNet-32), batch, mu and threads; goal >= 1.3x.

Workers run with the environment ``sslt-bench run`` gives itself (glibc malloc tuning, see
docs/scale-out.md) and ``--threads`` torch threads. ``--pil`` adds the PIL + DataLoader
reference pipeline, ``--methods`` alternate's extra wall time (issue 8). ``--quick`` runs in
under a minute (fewer steps, one round, smaller FixMatch batch).

    python benchmarks/throughput.py --data-root DATA --threads 2 --json F [--kekmodel PATH]
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
FORMATS = ("nchw", "channels_last")
CASES = {  # name: (data set, backbone, batch size)
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
    from sslt_bench.models.wrapper import to_memory_format, use_channels_last

    return data, to_memory_format(model, use_channels_last(device, backbone)), batch


def _sgd(model):
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)


def _ctx(model, data, device, gen):
    from sslt_bench.train.stages import StepContext

    split = data.split
    return StepContext(
        model,
        None,
        {},
        split.num_classes,
        torch.as_tensor(split.labeled_counts, device=device),
        len(split.labeled_idx),
        len(split.unlabeled_idx),
        device,
        gen,
    )


def _fresh(backbone: str, data, device: torch.device, channels_last: bool):
    from sslt_bench.models import build_model
    from sslt_bench.models.wrapper import to_memory_format

    torch.manual_seed(0)
    model = build_model(
        backbone, data.channels, data.image_size, data.split.num_classes, {"random": "linear"}
    ).to(device)
    return to_memory_format(model, channels_last)


def _fit(device: torch.device, min_s: float, fn, n: int) -> int:
    """How many units of ``fn`` (timed once over ``n``) fill ``min_s`` seconds."""
    if min_s <= 0:
        return n
    return int(np.ceil(min_s / max(_timed(device, fn, n) / n, 1e-9)))


def _timed(device: torch.device, fn, n: int) -> float:
    _sync(device)
    t = time.perf_counter()
    fn(n)
    _sync(device)
    return time.perf_counter() - t


def _interleaved(device: torch.device, windows: dict, rounds: int) -> dict[str, list[float]]:
    """Images/s of every window in ``rounds`` interleaved rounds (load hits all alike).

    Args:
        windows: name -> (fn, units, images per unit); ``fn(units)`` is timed once a round.
    """
    times: dict[str, list[float]] = {k: [] for k in windows}
    for _ in range(rounds):
        for k, (fn, n, per_unit) in windows.items():
            times[k].append(n * per_unit / _timed(device, fn, n))
    return times


def _in_format(x: torch.Tensor, fmt: str) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if fmt == "channels_last" else x


def _sgd_window(model, x, y, device: torch.device, amp: str):
    """``run(n)``: n SGD steps of ``model`` on the ready batch ``x, y`` (the train ceiling)."""
    from sslt_bench.train.engine import amp_context

    opt = _sgd(model)

    def run(n: int) -> None:
        model.train()
        for _ in range(n):
            with amp_context(device, amp):
                loss = F.cross_entropy(model(x, "random"), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        float(loss.detach())

    return run


def _infer_window(model, x, batches: int, device: torch.device, amp: str):
    """``run(n)``: n passes of ``batches`` forwards + argmax of the ready batch ``x``."""
    from sslt_bench.train.engine import amp_context

    def run(n: int) -> None:
        model.eval()
        with torch.no_grad(), amp_context(device, amp):
            for _ in range(n * batches):
                model(x, "random").argmax(1).cpu()

    return run


def _our_windows(model, data, batch: int, eval_n: int, aug, device: torch.device, amp: str, gen):
    """``train(n)`` (n steps of the runner's loop) and ``evaluate(n)`` (n test passes)."""
    from sslt_bench.train.engine import Loader, Optimiser, embed_items, predict, train_epoch
    from sslt_bench.train.stages import Train

    split = data.split
    item_src = np.concatenate([split.labeled_idx, split.unlabeled_idx])
    loader = Loader(data.train, item_src, aug, device)
    labels = torch.as_tensor(split.labeled_y)
    pool = torch.arange(len(labels))
    ctx, opt = _ctx(model, data, device, gen), _sgd(model)

    def ce(b, c):
        return F.cross_entropy(c.model(b.x, "random"), b.y)

    def train(n: int) -> None:
        step = Train("bench", 1, ce, batch_size=batch, lr=0.01, steps_per_epoch=n)
        model.train()
        train_epoch(step, ctx, loader, (pool, labels), pool, Optimiser(opt, amp))

    idx = np.resize(split.test_idx, eval_n)

    def evaluate(n: int) -> None:
        for _ in range(n):
            predict(model, "random", embed_items(model, data.test, idx, aug, device, amp=amp))

    return train, evaluate


def _ratios(times: dict[str, list[float]]) -> dict:
    """Medians, the best ceiling over both formats and our ratio to it, per train and eval."""
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {}
    for kind in ("train", "eval"):
        best = max(med[f"{kind}/{f}"] for f in FORMATS)
        out[f"{kind}_img_s"] = med[f"{kind}/ours"]
        out[f"{kind}_ceiling_img_s"] = best
        out[f"{kind}_ratio"] = med[f"{kind}/ours"] / best
        for f in FORMATS:
            out[f"{kind}_ceiling_{f}_img_s"] = med[f"{kind}/{f}"]
    out["rounds"] = {k: [round(v, 1) for v in vals] for k, vals in times.items()}
    return out


def worker_ours(
    case: str,
    data_root: str | None,
    steps: int,
    warmup: int,
    eval_n: int,
    rounds: int,
    min_seconds: str = "0",
) -> dict:
    """Our loop and evaluation vs the model-only ceilings in both memory formats.

    Each timed window lasts at least ``min_seconds``: ``steps`` (and the evaluation's passes)
    are raised to fit, from a calibration pass, so a 4 ms step is not timed over 30 ms.
    """
    from sslt_bench.data.augment import Augmenter
    from sslt_bench.models.wrapper import use_channels_last

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = "bf16" if device.type == "cuda" else "none"
    data, _, batch = _setup(case, data_root, device)
    backbone, split = CASES[case][1], data.split
    default_cl = use_channels_last(device, backbone)
    aug = Augmenter(data.mean, data.std, data.crop_padding, data.flip, device)
    models = {f: _fresh(backbone, data, device, f == "channels_last") for f in FORMATS}
    ours = _fresh(backbone, data, device, default_cl)
    gen = torch.Generator().manual_seed(0)
    train, evaluate = _our_windows(ours, data, batch, eval_n, aug, device, amp, gen)
    labels = torch.as_tensor(split.labeled_y)
    item_src = np.concatenate([split.labeled_idx, split.unlabeled_idx])
    x = aug(next(data.train.iter_batches([item_src[:batch]], device)), "weak", gen)
    y = labels[:batch] if len(labels) >= batch else labels.repeat(batch)[:batch]
    eval_batch = 512
    test_ids = np.resize(split.test_idx, eval_batch)
    xe = aug(next(data.test.iter_batches([test_ids], device)), "none", gen)
    train_fns = {"ours": train}
    eval_fns = {"ours": evaluate}
    for f, m in models.items():
        train_fns[f] = _sgd_window(m, _in_format(x, f), y.to(device), device, amp)
        eval_fns[f] = _infer_window(m, _in_format(xe, f), eval_n // eval_batch, device, amp)
    for fn in (*train_fns.values(), *eval_fns.values()):
        fn(max(warmup, 1) if fn is not evaluate else 1)
    steps = max(steps, _fit(device, float(min_seconds), train, steps))
    passes = max(1, _fit(device, float(min_seconds), evaluate, 1))
    ceiling_images = (eval_n // eval_batch) * eval_batch
    windows = {f"train/{k}": (fn, steps, batch) for k, fn in train_fns.items()}
    for k, fn in eval_fns.items():
        windows[f"eval/{k}"] = (fn, passes, eval_n if k == "ours" else ceiling_images)
    out = {"default_format": "channels_last" if default_cl else "nchw", "batch": batch}
    out["steps"], out["eval_images"] = steps, passes * eval_n
    return out | _ratios(_interleaved(device, windows, rounds))


def _kekmodel_imports(path: str):
    """kekmodel/FixMatch-pytorch's own pieces, imported from ``path`` (never vendored)."""
    import types

    sys.path.insert(0, path)
    if "torch.utils.tensorboard" not in sys.modules:  # train.py imports it at module level
        tb = types.ModuleType("torch.utils.tensorboard")
        tb.SummaryWriter = object
        sys.modules["torch.utils.tensorboard"] = tb
    import train as kek_train  # noqa: PLC0415
    from dataset.cifar import TransformFixMatch  # noqa: PLC0415
    from models.ema import ModelEMA  # noqa: PLC0415

    return kek_train, TransformFixMatch, ModelEMA


def _our_fixmatch(data, device: torch.device, batch: int, mu: int, amp: str):
    """``run(n)``: n steps of ``fixmatch``'s plan step through ``engine.train_epoch``."""
    import dataclasses

    from sslt_bench.config import build_config
    from sslt_bench.data.augment import Augmenter
    from sslt_bench.methods.base import DataInfo
    from sslt_bench.models.wrapper import use_channels_last
    from sslt_bench.registry import METHODS
    from sslt_bench.train.ema import make_ema
    from sslt_bench.train.engine import Loader, Optimiser, train_epoch

    split = data.split
    cls = METHODS.get("fixmatch")
    cfg = build_config(cls.Config, "quick", {"batch_size": batch, "mu": mu})
    n_lab, n_unl = len(split.labeled_idx), len(split.unlabeled_idx)
    info = DataInfo(
        split.num_classes, split.labeled_counts, n_lab, n_unl, data.channels, data.image_size
    )
    step0 = cls(cfg, info).plan()[0]
    ours = _fresh("resnet32", data, device, use_channels_last(device, "resnet32"))
    ctx = _ctx(ours, data, device, torch.Generator().manual_seed(0))
    ctx.ema = make_ema(ours)
    aug = Augmenter(data.mean, data.std, data.crop_padding, data.flip, device)
    item_src = np.concatenate([split.labeled_idx, split.unlabeled_idx])
    loader = Loader(data.train, item_src, aug, device)
    labels = torch.as_tensor(split.labeled_y)
    pool, unl = torch.arange(len(labels)), torch.arange(n_lab, len(item_src))
    opt = _sgd(ours)

    def run(n: int) -> None:
        ours.train()
        step = dataclasses.replace(step0, epochs=1, steps_per_epoch=n, batch_size=batch)
        train_epoch(step, ctx, loader, (pool, labels), unl, Optimiser(opt, amp))

    return run


class _PilImages(torch.utils.data.Dataset):
    """``hwc[ids]`` (HWC uint8) as PIL images through ``transform``, with ``labels`` or 0."""

    def __init__(self, hwc: np.ndarray, ids, transform, labels=None) -> None:
        self.hwc, self.ids, self.transform, self.labels = hwc, ids, transform, labels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        from PIL import Image

        img = self.hwc[self.ids[i]]
        pil = Image.fromarray(img.squeeze(-1), "L") if img.shape[-1] == 1 else Image.fromarray(img)
        return self.transform(pil), 0 if self.labels is None else int(self.labels[i])


def _kekmodel_window(path: str, data, device, batch: int, mu: int, workers: int, need: int):
    """``run(n)``: n steps of kekmodel/FixMatch-pytorch's own step (its train.py lines)."""
    import types

    kek, TransformFixMatch, ModelEMA = _kekmodel_imports(path)
    split = data.split
    theirs = _fresh("resnet32", data, device, False)  # their code: default format
    ema = ModelEMA(types.SimpleNamespace(device=device), theirs, 0.999)
    opt = _sgd(theirs)
    hwc = data.train.images.permute(0, 2, 3, 1).numpy()

    def loader(ids, transform, bs):
        images = _PilImages(hwc, ids, transform)
        sampler = torch.utils.data.RandomSampler(
            images, replacement=True, num_samples=need * bs // batch
        )
        return iter(
            torch.utils.data.DataLoader(
                images,
                bs,
                sampler=sampler,
                num_workers=workers,
                drop_last=True,
                pin_memory=device.type == "cuda",
            )
        )

    lab_it = loader(split.labeled_idx, T_weak(data), batch)
    unlab_it = loader(
        split.unlabeled_idx, TransformFixMatch(mean=data.mean, std=data.std), batch * mu
    )
    y_all = torch.as_tensor(split.labeled_y)

    def run(n: int) -> None:
        theirs.train()
        for _ in range(n):
            (inputs_x, _), ((u_w, u_s), _) = next(lab_it), next(unlab_it)
            targets_x = y_all[torch.randint(len(y_all), (len(inputs_x),))].to(device)
            inputs = kek.interleave(torch.cat((inputs_x, u_w, u_s)), 2 * mu + 1).to(device)
            logits = kek.de_interleave(theirs(inputs, "random"), 2 * mu + 1)
            logits_x = logits[: len(inputs_x)]
            logits_u_w, logits_u_s = logits[len(inputs_x) :].chunk(2)
            lx = F.cross_entropy(logits_x, targets_x)
            max_probs, targets_u = torch.softmax(logits_u_w.detach(), dim=-1).max(-1)
            mask = max_probs.ge(0.95).float()
            lu = (F.cross_entropy(logits_u_s, targets_u, reduction="none") * mask).mean()
            loss = lx + lu
            loss.backward()
            for v in (loss, lx, lu, mask.mean()):
                v.item()  # its AverageMeter updates
            opt.step()
            ema.update(theirs)
            theirs.zero_grad()

    return run


def worker_fixmatch(
    data_root: str | None,
    steps: int,
    warmup: int,
    batch: int,
    mu: int,
    workers: int,
    kekmodel: str | None,
    rounds: int,
) -> dict:
    """FixMatch step, ours vs kekmodel/FixMatch-pytorch's, ResNet-32 on cifar10-sslt."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = "bf16" if device.type == "cuda" else "none"
    data, _, _ = _setup("resnet32/cifar10-sslt", data_root, device)
    fns = {"ours": _our_fixmatch(data, device, batch, mu, amp)}
    if kekmodel:
        need = (warmup + steps * rounds + 1) * batch
        fns["kekmodel"] = _kekmodel_window(kekmodel, data, device, batch, mu, workers, need)
    for fn in fns.values():
        fn(max(warmup, 1))
    per_step = batch * (1 + 2 * mu)
    times = _interleaved(device, {k: (fn, steps, per_step) for k, fn in fns.items()}, rounds)
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {"batch": batch, "mu": mu, "workers": workers, "fixmatch_img_s": med["ours"]}
    if "kekmodel" in med:
        out["kekmodel_img_s"] = med["kekmodel"]
        out["fixmatch_speedup"] = med["ours"] / med["kekmodel"]
    out["rounds"] = {k: [round(v, 1) for v in vals] for k, vals in times.items()}
    return out


def T_weak(data):
    """kekmodel's labeled transform: flip, reflect-padded crop, ToTensor, Normalize."""
    from torchvision import transforms as T

    return T.Compose(
        [
            T.RandomHorizontalFlip(),
            T.RandomCrop(size=32, padding=4, padding_mode="reflect"),
            T.ToTensor(),
            T.Normalize(mean=data.mean, std=data.std),
        ]
    )


def _pil_train(model, dl, warmup: int, steps: int, device: torch.device) -> tuple[float, int]:
    """Seconds of ``steps`` SGD steps fed by ``dl`` after ``warmup``, and minor page faults."""
    opt = _sgd(model)
    model.train()
    it = iter(dl)
    t, f0 = 0.0, 0
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
    return time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0


def worker_pil(
    case: str, data_root: str | None, steps: int, warmup: int, eval_n: int, workers: int
) -> dict:
    """The reference recipe: PIL per image, torchvision transforms, a shuffling DataLoader."""
    from torchvision import transforms as T

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data, model, batch = _setup(case, data_root, device)
    split = data.split
    train_x = data.train.images[torch.as_tensor(split.labeled_idx)].permute(0, 2, 3, 1).numpy()
    test_x = data.test.images[torch.as_tensor(np.resize(split.test_idx, eval_n))]
    test_x = test_x.permute(0, 2, 3, 1).numpy()
    norm = T.Normalize(data.mean, data.std)
    aug = [T.RandomCrop(data.image_size, padding=data.crop_padding)]
    aug += [T.RandomHorizontalFlip()] if data.flip else []
    train_tf = T.Compose([*aug, T.ToTensor(), norm])
    ds = _PilImages(train_x, np.arange(len(train_x)), train_tf, split.labeled_y)
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
    t_train, faults = _pil_train(model, dl, warmup, steps, device)
    test_ds = _PilImages(test_x, np.arange(len(test_x)), T.Compose([T.ToTensor(), norm]))
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
    from sslt_bench.train.runner import Runner, RunSpec

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


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--data-root",
        default=os.environ.get("SSLT_DATA"),
        help="the folder holding cifar10-jpg.tar.gz (default: $SSLT_DATA)",
    )
    ap.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median kept)")
    ap.add_argument("--eval-images", type=int, default=2048)
    ap.add_argument(
        "--min-seconds",
        type=float,
        default=1.0,
        help="each timed window at least this long (steps and eval passes raised to fit)",
    )
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated cases")
    ap.add_argument("--threads", type=int, default=2, help="torch threads per worker")
    ap.add_argument("--kekmodel", default=None, help="kekmodel/FixMatch-pytorch checkout")
    ap.add_argument("--fixmatch", default="64,7", help="FixMatch step B,mu, or none")
    ap.add_argument("--workers", type=int, default=None, help="kekmodel DataLoader workers")
    ap.add_argument("--quick", action="store_true", help="a run under 60 s")
    ap.add_argument("--pil", action="store_true", help="also the PIL + DataLoader pipeline")
    ap.add_argument("--methods", action="store_true", help="also alternate's extra wall time")
    ap.add_argument("--method-epochs", default="20,5,10", help="--methods: init, loops, epochs")
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--worker", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return ap


def _worker(kind: str, *rest: str) -> None:
    """Run one worker (in this subprocess) and print its JSON line."""
    fns = {"ours": worker_ours, "pil": worker_pil, "methods": worker_methods}
    fn = {**fns, "fixmatch": worker_fixmatch}[kind]
    conv = [None if v == "-" else (int(v) if v.lstrip("-").isdigit() else v) for v in rest]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    print(json.dumps(fn(*conv)))


def main() -> None:
    a = _parser().parse_args()
    if a.worker:
        _worker(*a.worker)
        return
    if a.quick:
        a.steps, a.warmup, a.rounds, a.eval_images, a.min_seconds = 3, 1, 1, 512, 0.2
        a.fixmatch = "8,7" if a.fixmatch != "none" else "none"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = cores if a.workers is None else a.workers
    env = {"OMP_NUM_THREADS": str(a.threads), **MALLOC}  # what `sslt-bench run` gives itself
    print(f"machine: {machine()}")
    print(f"load average at start: {_load()} ({cores} cores); {a.threads} torch threads")
    results: dict = {"machine": machine(), "load_start": os.getloadavg()[0], "cases": {}}
    results["command"] = " ".join(["python", "benchmarks/throughput.py", *sys.argv[1:]])
    for case in a.cases.split(","):
        root = a.data_root if CASES[case][0] != "digits-sslt" else "-"
        args = [case, root, a.steps, a.warmup, a.eval_images, a.rounds, a.min_seconds]
        try:
            r = _sub(["ours", *map(str, args)], env)
        except RuntimeError as exc:
            print(f"{case}: skipped ({str(exc).strip().splitlines()[-1]})")
            continue
        results["cases"][case] = r
        _print_case(case, r, a)
        if a.pil:
            p = _sub(["pil", *map(str, args[:5]), str(workers)], env)
            r["pil"] = p
            print(
                f"  PIL + DataLoader ({workers} workers): train {p['train']:.0f}, "
                f"eval {p['eval']:.0f} img/s"
            )
    if a.fixmatch != "none":
        b, mu = (int(v) for v in a.fixmatch.split(","))
        fm_args = [a.data_root or "-", a.steps, a.warmup, b, mu, workers, a.kekmodel or "-"]
        try:
            fm = _sub(["fixmatch", *map(str, [*fm_args, a.rounds])], env)
            results["fixmatch"] = fm
            _print_fixmatch(fm, a.kekmodel)
        except RuntimeError as exc:
            print(f"fixmatch: skipped ({str(exc).strip().splitlines()[-1]})")
    if a.methods:
        e, loops, per = (int(v) for v in a.method_epochs.split(","))
        results["methods"] = _sub(["methods", str(e), str(loops), str(per)], env)
        print(f"\nalternate vs pseudo-label+decoupling: {results['methods']}")
    results["load_end"] = os.getloadavg()[0]
    print(f"\nload average at end: {_load()} ({cores} cores)")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _print_case(case: str, r: dict, a) -> None:
    print(
        f"\n{case} (batch {r['batch']}, default format {r['default_format']}, "
        f"median of {a.rounds} interleaved rounds of {r.get('steps', a.steps)} steps)"
    )
    for kind in ("train", "eval"):
        fmts = ", ".join(f"{f} {r[f'{kind}_ceiling_{f}_img_s']:.0f}" for f in FORMATS)
        print(
            f"  {kind:<5} ours {r[f'{kind}_img_s']:>8.0f} img/s; ceiling {fmts}; "
            f"ratio to the best {r[f'{kind}_ratio']:.2f} (goal >= 0.9)"
        )


def _print_fixmatch(fm: dict, kekmodel: str | None) -> None:
    print(
        f"\nFixMatch step, ResNet-32, B {fm['batch']}, mu {fm['mu']} "
        f"({fm['batch'] * (1 + 2 * fm['mu'])} images/step): ours {fm['fixmatch_img_s']:.0f} img/s"
    )
    if kekmodel:
        print(
            f"  kekmodel/FixMatch-pytorch ({fm['workers']} DataLoader workers): "
            f"{fm['kekmodel_img_s']:.0f} img/s; ours / theirs {fm['fixmatch_speedup']:.2f}x "
            "(goal >= 1.3)"
        )
    else:
        print("  kekmodel comparison skipped (no --kekmodel PATH)")


if __name__ == "__main__":
    main()
