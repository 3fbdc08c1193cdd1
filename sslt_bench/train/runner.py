"""The runner: resolves a run, executes a method's plan, checkpoints, evaluates, records.

The runner owns seeding, the device, data, augmentation, optimiser steps, EMA, checkpoints,
evaluation, timing and the result record; a method owns only its plan and losses. A run is
identified by (method, data set, data parameters, split hash, the data's content key, method
config, profile, seed); re-running the same command into the same ``--out`` resumes from the
last checkpoint (and says so), and one lock per run id keeps two processes from doing the same
run at once. With ``--split-file`` the data parameters and split seed come from the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

from .. import __version__
from ..config import (
    build_config,
    check_batch_size,
    field_types,
    parse_value,
    shapes_split,
    split_overrides,
    to_dict,
)
from ..data.augment import Augmenter
from ..data.source import SSLTData
from ..data.split import Split
from ..errors import UsageError, choices_error
from ..methods.base import DataInfo, Method
from ..models import build_model
from ..models.wrapper import use_channels_last
from ..registry import DATASETS, METHODS, MODELS
from ..results.records import RECORD_VERSION, check_writable, git_revision, write_record
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .diagnostics import DiagnosticSettings
from .diagnostics import record_fields as diagnostic_fields
from .distributed import Dist
from .ema import make_ema
from .engine import Loader, NonFiniteLoss, embed_items
from .run_identity import data_content_key, run_lock, split_mismatch
from .session import Session, note_weights, plan_digests, weights_hash
from .stages import StepContext


@dataclass
class RunSpec:
    """Everything that defines a run (what the CLI's ``run`` options fill in)."""

    method: str = "erm"
    dataset: str = "digits-sslt"
    seed: int = 0
    split_seed: int = 0
    profile: str = "quick"
    overrides: tuple[str, ...] = ()
    device: str = "auto"
    out: Path = Path("results")
    data_root: str | None = None
    split_file: str | None = None
    fresh: bool = False
    progress: bool = True
    workers: int = 0
    amp: str = "auto"
    channels_last: bool | None = None
    compile: bool = False
    eval_every: int = 0
    deterministic: bool = False
    diag_every_steps: int = 0
    diag_subsample: int = 0
    trajectory_every: int = 1


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name not in ("auto", "cpu", "cuda"):
        raise choices_error("device", name, ("auto", "cpu", "cuda"))
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("device 'cuda' requested but CUDA is not available; use --device cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _describe_step(step: Any) -> str:
    """``train 'embed' (200 epochs)``: a step's kind, name and length for progress lines."""
    kind = type(step).__name__
    words = {
        "TrainHead": "extract features, train classifier",
        "PseudoLabel": "pseudo-label",
        "Train": "train",
    }
    epochs = getattr(step, "epochs", None)
    tail = f" ({epochs} epochs)" if isinstance(epochs, int) and epochs > 0 else ""
    return f"{words.get(kind, kind.lower())} {getattr(step, 'name', '')!r}{tail}"


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


class Runner:
    """Resolve and execute one run. Construction validates everything cheap first."""

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        for name, value in (("seed", spec.seed), ("split seed", spec.split_seed)):
            if not 0 <= value < 2**31:
                raise UsageError(f"{name} must be in [0, 2**31), got {value}")
        self.method_cls: type[Method] = METHODS.get(spec.method)
        self.builder = DATASETS.get(spec.dataset)
        routed = split_overrides(
            list(spec.overrides), {"method": self.method_cls.Config, "data": self.builder.Params}
        )
        self.split_file = self._read_split_file() if spec.split_file else None
        self.split_seed = self.split_file.seed if self.split_file else spec.split_seed
        self.data_params = build_config(self.builder.Params, "paper", self._data_settings(routed))
        fields = field_types(self.method_cls.Config)
        hints = {
            k: v
            for k, v in getattr(self.builder, "hints", {}).get(spec.profile, {}).items()
            if k in fields
        }
        self.cfg = build_config(self.method_cls.Config, spec.profile, {**hints, **routed["method"]})
        self.backbone = self.cfg.backbone or "resnet32"
        MODELS.get(self.backbone)
        self.device = resolve_device(spec.device)
        self.dist = Dist()
        self.diag_settings()  # bad values: exit 2 before any work
        check_writable(Path(spec.out), ("records", "checkpoints", "locks"))

    def _read_split_file(self) -> Split:
        try:
            return Split.load(self.spec.split_file)
        except UsageError as exc:  # name the file (an edited file's hash error does not)
            msg, name = str(exc), str(self.spec.split_file)
            raise UsageError(msg if name in msg else f"{name}: {msg}") from None

    def _data_settings(self, routed: dict[str, dict[str, str]]) -> dict[str, Any]:
        """The data parameters to build: the user's ``--set``, or the split file's.

        A split file fixes the data parameters it was made with (the record must say what the
        run used); a ``--set`` that contradicts one that shapes the split is refused, one that
        does not (``image_size``, ``download``...; :func:`~.config.not_split`) is applied.
        """
        if self.split_file is None:
            return routed["data"]
        if self.split_file.dataset != self.spec.dataset:
            raise UsageError(
                f"split file {self.spec.split_file} does not match the data: it is of data set "
                f"{self.split_file.dataset!r}, the run's is {self.spec.dataset!r}"
            )
        types_ = field_types(self.builder.Params)
        theirs = {k: v for k, v in self.split_file.params.items() if k in types_}
        for key, raw in routed["data"].items():
            mine = parse_value(key, raw, types_[key])
            if not shapes_split(self.builder.Params, key):
                continue
            if key in theirs and parse_value(key, theirs[key], types_[key]) != mine:
                raise UsageError(
                    f"--set {key}={raw} contradicts split file {self.spec.split_file}, made "
                    f"with {key}={theirs[key]}; drop the --set or export a split with it"
                )
        return {**theirs, **routed["data"]}

    def _load_data(self) -> SSLTData:
        root = self.spec.data_root or os.environ.get("SSLT_DATA")
        data = self.builder.build(self.data_params, self.split_seed, Path(root) if root else None)
        if self.split_file is not None:
            split = self.split_file
            why = split_mismatch(split, data)
            if why:
                raise UsageError(
                    f"split file {self.spec.split_file} does not match the data: {why}; "
                    f"export one of this data with 'sslt-bench splits export'"
                )
            data.split = split
        return data

    def config_digest(self) -> str:
        """The record's ``config_hash``: method config, data parameters, backbone, profile."""
        return _digest(
            {
                "method": to_dict(self.cfg),
                "data": to_dict(self.data_params),
                "backbone": self.backbone,
                "profile": self.spec.profile,
            }
        )

    def run_prefix(self) -> str:
        """Start of this run's record/checkpoint name (the rest is a digest incl. the split)."""
        s = self.spec
        return f"{s.dataset}__{s.method}__{s.profile}__seed{s.seed}__"

    # -- execution ---------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Execute the run and write its result record; returns the record."""
        spec, t0 = self.spec, time.time()
        self.dist = dist = Dist.from_env(self.device)  # torchrun ranks: see distributed.py
        self.device = dist.device(self.device)
        embed = dist.sharded(embed_items)
        data = self._load_data()
        split = data.split
        check_batch_size(
            self.cfg,
            len(split.labeled_idx) + len(split.unlabeled_idx),
            getattr(self.data_params, "min_steps_per_epoch", 0),
        )
        backbone = self.backbone
        identity = {
            "method": spec.method,
            "dataset": spec.dataset,
            "split_hash": split.hash,
            "data": data_content_key(data),
            "config": self.config_digest(),
            "seed": spec.seed,
        }
        run_id = f"{self.run_prefix()}{_digest(identity)}"
        out = Path(spec.out)
        ckpt_path = out / "checkpoints" / f"{run_id}.pt"
        record_path = out / "records" / f"{run_id}.json"
        lock = run_lock(out / "locks" / f"{run_id}.lock") if dist.is_main else None

        self._seed_all(spec.seed)
        gen = torch.Generator().manual_seed(spec.seed)
        counts = split.labeled_counts
        info = DataInfo(
            split.num_classes,
            counts,
            len(split.labeled_idx),
            len(split.unlabeled_idx),
            data.channels,
            data.image_size,
        )
        method = self.method_cls(self.cfg, info)
        model = build_model(
            backbone,
            data.channels,
            data.image_size,
            split.num_classes,
            method.heads,
            method.extra_heads,
        ).to(self.device)
        cuda = self.device.type == "cuda"
        channels_last = spec.channels_last
        if channels_last is None:  # the measured default of this device and backbone
            channels_last = use_channels_last(self.device, backbone)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        if spec.compile:  # in place: state_dict keys (checkpoints) stay the same
            model.embed.compile()
        self.init_hash = weights_hash(model)  # before any step (same on resume: same seed)
        amp = ("bf16" if cuda else "none") if spec.amp == "auto" else spec.amp
        ctx = StepContext(
            model=model,
            ema=None,
            state={},
            num_classes=split.num_classes,
            labeled_counts=torch.as_tensor(counts, device=self.device),
            num_labeled=info.num_labeled,
            num_unlabeled=info.num_unlabeled,
            device=self.device,
            generator=gen,
        )
        augmenter = Augmenter(
            data.mean,
            data.std,
            data.crop_padding,
            data.flip,
            self.device,
            crop=data.crop,
            out_size=data.crop_size,
        )
        item_src = np.concatenate([split.labeled_idx, split.unlabeled_idx])
        loader = Loader(data.train, item_src, augmenter, self.device, spec.workers)
        history: dict[str, list] = {"epochs": [], "evals": [], "pseudo_labels": []}
        progress = {"step": 0, "epoch": 0, "train_time": 0.0, "images": 0.0}
        opt_state = None
        plan = method.plan()
        digests = plan_digests(plan)
        resumed = None
        payload = None if spec.fresh else load_checkpoint(ckpt_path, identity)
        if payload is not None:
            history, progress, opt_state = self._restore(payload, model, ctx, gen, ckpt_path)
            resumed = dict(progress)
            if dist.is_main:
                self._say_resumed(progress, plan, ckpt_path, record_path)

        def checkpoint(opt: torch.optim.Optimizer | None) -> None:
            if not dist.is_main:
                return
            save_checkpoint(
                ckpt_path,
                {
                    "identity": identity,
                    "model": model.state_dict(),
                    "ema": ctx.ema.state_dict() if ctx.ema is not None else None,
                    "state": {k: v.cpu() for k, v in ctx.state.items()},
                    "optimizer": opt.state_dict() if opt is not None else None,
                    "history": history,
                    "progress": progress,
                    "rng": rng_state(gen),
                },
            )

        session = Session(
            name=spec.method,
            ctx=ctx,
            data=data,
            split=split,
            method=method,
            loader=loader,
            augmenter=augmenter,
            embed=embed,
            dist=dist,
            amp=amp,
            workers=spec.workers,
            show_progress=spec.progress,
            eval_every=spec.eval_every,
            min_steps=getattr(self.data_params, "min_steps_per_epoch", 0),
            history=history,
            progress=progress,
            checkpoint=checkpoint,
            opt_state=opt_state,
            diag=self.diag_settings(),
        )
        try:
            for si, step in enumerate(plan):
                if si < progress["step"]:
                    continue
                if spec.progress and dist.is_main:
                    click.echo(f"stage {si + 1} of {len(plan)}: {_describe_step(step)}", err=True)
                session.run_step(step)
                note_weights(history, step, digests[si], model)
                progress["step"], progress["epoch"] = si + 1, 0
                checkpoint(None)
        except NonFiniteLoss as exc:
            record = self._record(
                data,
                backbone,
                identity,
                run_id,
                history,
                progress,
                t0,
                None,
                status="failed",
                error=f"{spec.method}: {exc}",
            )
            if dist.is_main:
                write_record(record_path, record)
            if lock is not None:
                lock.close()
            raise UsageError(
                f"run failed: {spec.method}: {exc}; record marked failed at {record_path}"
            ) from None

        metrics = session.evaluate(method.eval_head, method.eval_ema)
        record = self._record(
            data, backbone, identity, run_id, history, progress, t0, metrics, resumed=resumed
        )
        record.update(dist.record_fields())
        if dist.is_main:
            record = write_record(record_path, record)
        if lock is not None:
            lock.close()
        record["_path"] = str(record_path)
        return record

    def diag_settings(self) -> DiagnosticSettings:
        """Pseudo-label diagnostics and test-trajectory settings (none changes training)."""
        s = self.spec
        for name in ("diag_every_steps", "diag_subsample", "trajectory_every"):
            if getattr(s, name) < 0:
                raise UsageError(f"{name} must be >= 0 (0 = default), got {getattr(s, name)}")
        return DiagnosticSettings(s.diag_every_steps, s.diag_subsample, 0, s.trajectory_every)

    def _restore(self, payload: dict, model, ctx: StepContext, gen, ckpt: Path) -> tuple:
        """Load a checkpoint into model, EMA, method state and RNGs.

        Returns:
            (history, progress, optimizer state) of the checkpoint.

        Raises:
            UsageError: it does not fit (other model layout, missing entries): another run or
                another version of the code wrote it.
        """
        try:
            model.load_state_dict(payload["model"])
            if payload.get("ema") is not None:
                ctx.ema = make_ema(model)
                ctx.ema.load_state_dict(payload["ema"])
            ctx.state.update({k: v.to(self.device) for k, v in payload["state"].items()})
            set_rng_state(payload["rng"], gen)
            return payload["history"], payload["progress"], payload.get("optimizer")
        except (KeyError, RuntimeError, TypeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
            raise UsageError(
                f"checkpoint {ckpt} is from a different run or version "
                f"({type(exc).__name__}: {first}); use --fresh to start over"
            ) from None

    def _say_resumed(self, progress: dict, plan: list, ckpt: Path, record: Path) -> None:
        """Tell the user what a re-run does: re-evaluate a finished run, or resume it."""
        if progress["step"] >= len(plan) and record.exists():
            click.echo(
                f"already complete (record: {record}); re-evaluating its final checkpoint, "
                "--fresh trains it again",
                err=True,
            )
        elif progress["step"] < len(plan):
            step = plan[progress["step"]]
            click.echo(
                f"resuming from stage {progress['step'] + 1} of {len(plan)} "
                f"({_describe_step(step)}), epoch {progress['epoch']} (checkpoint: {ckpt})",
                err=True,
            )

    def _seed_all(self, seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        if self.spec.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before cuBLAS starts
            # warn_only: an op without a deterministic CUDA kernel (PyTorch's list: e.g. the
            # backward of bilinear interpolate or grid_sample) warns, naming it, instead of
            # aborting a long run with RuntimeError
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True

    def _record(
        self,
        data,
        backbone,
        identity,
        run_id,
        history,
        progress,
        t0,
        metrics,
        status: str = "ok",
        error: str | None = None,
        resumed=None,
    ) -> dict[str, Any]:
        spec, split = self.spec, data.split
        weights = history.get("weights", {})
        return {
            "kind": "sslt-bench-result",
            "version": RECORD_VERSION,
            "status": status,
            "error": error,
            "run_id": run_id,
            "method": spec.method,
            "dataset": spec.dataset,
            "profile": spec.profile,
            "seed": spec.seed,
            "split_seed": self.split_seed,
            "backbone": backbone,
            "method_config": to_dict(self.cfg),
            "data_params": to_dict(self.data_params),
            "overrides": list(spec.overrides),
            "split_hash": split.hash,
            "split": split.summary(),
            "config_hash": identity["config"],
            "data_key": identity["data"],
            "metrics": metrics,
            "init_hash": self.init_hash,
            "init_hashes": {"init": self.init_hash, **{k: v[0] for k, v in weights.items()}},
            "init_plans": {k: v[1] for k, v in weights.items()},
            "history": {k: v for k, v in history.items() if k not in ("weights", "u_diagnostics")},
            **diagnostic_fields(history, self.diag_settings()),
            "wall_time_s": round(time.time() - t0, 3),
            "train_time_s": round(progress["train_time"], 3),
            "diagnostics_time_s": round(progress.get("diag_time", 0.0), 3),
            "train_images": progress["images"],
            "train_images_per_s": round(progress["images"] / max(progress["train_time"], 1e-9), 1),
            "resumed_from": resumed,
            "device": str(self.device),
            "device_name": torch.cuda.get_device_name()
            if self.device.type == "cuda"
            else platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "deterministic": spec.deterministic,
            "torch": torch.__version__,
            "sslt_bench": __version__,
            "git": git_revision(),
            "host": platform.node(),
            "python": platform.python_version(),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
