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
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch

from ..config import (
    build_config,
    check_batch_size,
    field_types,
    method_config,
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
from ..results.records import check_writable, write_record
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .diagnostics import DiagnosticSettings
from .distributed import Dist
from .ema import make_ema
from .engine import Loader, NonFiniteLoss, embed_items
from .run_identity import data_content_key, run_lock, split_mismatch
from .run_record import make_record
from .run_spec import RunSpec
from .session import Session, note_weights, plan_digests, weights_hash
from .stages import StepContext


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


@dataclass(frozen=True)
class _RunFiles:
    """Where one run's record, checkpoint and lock live, and the identity checked on resume."""

    out: Path
    run_id: str
    identity: dict[str, Any]

    @property
    def checkpoint(self) -> Path:
        return self.out / "checkpoints" / f"{self.run_id}.pt"

    @property
    def record(self) -> Path:
        return self.out / "records" / f"{self.run_id}.json"

    @property
    def lock(self) -> Path:
        return self.out / "locks" / f"{self.run_id}.lock"


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
        hints = getattr(self.builder, "hints", {}).get(spec.profile, {})
        self.cfg = method_config(self.method_cls.Config, spec.profile, hints, routed["method"])
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
        t0 = time.time()
        self.dist = dist = Dist.from_env(self.device)  # torchrun ranks: see distributed.py
        self.device = dist.device(self.device)
        data = self._load_data()
        split = data.split
        check_batch_size(
            self.cfg,
            len(split.labeled_idx) + len(split.unlabeled_idx),
            getattr(self.data_params, "min_steps_per_epoch", 0),
        )
        identity = {
            "method": self.spec.method,
            "dataset": self.spec.dataset,
            "split_hash": split.hash,
            "data": data_content_key(data),
            "config": self.config_digest(),
            "seed": self.spec.seed,
        }
        run = _RunFiles(Path(self.spec.out), f"{self.run_prefix()}{_digest(identity)}", identity)
        lock = run_lock(run.lock) if dist.is_main else None
        try:
            return self._execute(data, run, t0)
        finally:
            if lock is not None:
                lock.close()

    def _execute(self, data: SSLTData, run: _RunFiles, t0: float) -> dict[str, Any]:
        """Build, restore, run the plan step by step, evaluate and write the record."""
        spec, dist = self.spec, self.dist
        self._seed_all(spec.seed)
        gen = torch.Generator().manual_seed(spec.seed)
        method, ctx, loader = self._build(data, gen)
        model, plan = ctx.model, method.plan()
        digests = plan_digests(plan)
        history: dict[str, list] = {"epochs": [], "evals": [], "pseudo_labels": []}
        progress = {"step": 0, "epoch": 0, "train_time": 0.0, "images": 0.0}
        opt_state, resumed = None, None
        payload = None if spec.fresh else load_checkpoint(run.checkpoint, run.identity)
        if payload is not None:
            history, progress, opt_state = self._restore(payload, model, ctx, gen, run.checkpoint)
            resumed = dict(progress)
            if dist.is_main:
                self._say_resumed(progress, plan, run.checkpoint, run.record)
        session = self._session(data, method, ctx, loader, history, progress, opt_state, run, gen)
        try:
            for si, step in enumerate(plan):
                if si < progress["step"]:
                    continue
                if spec.progress and dist.is_main:
                    click.echo(f"stage {si + 1} of {len(plan)}: {_describe_step(step)}", err=True)
                session.run_step(step)
                note_weights(history, step, digests[si], model)
                progress["step"], progress["epoch"] = si + 1, 0
                session.checkpoint(None)
        except NonFiniteLoss as exc:
            error = f"{spec.method}: {exc}"
            record = make_record(self, data, run, history, progress, t0, None, error=error)
            if dist.is_main:
                write_record(run.record, record)
            raise UsageError(f"run failed: {error}; record marked failed at {run.record}") from None
        others = tuple(h for h in method.heads if h != method.eval_head)
        reports = session.evaluate_heads((method.eval_head, *others), method.eval_ema)
        metrics = reports.pop(method.eval_head)
        record = make_record(
            self, data, run, history, progress, t0, metrics, resumed=resumed, other_heads=reports
        )
        record.update(dist.record_fields())
        if dist.is_main:
            record = write_record(run.record, record)
        record["_path"] = str(run.record)
        return record

    def _build(self, data: SSLTData, gen: torch.Generator) -> tuple[Method, StepContext, Loader]:
        """The method, its model (on the device; its ``init_hash`` noted) and the step context.

        The order of construction is part of a run's identity: the model's initial weights
        come from the global seed right after the method is built.
        """
        split, spec = data.split, self.spec
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
            self.backbone,
            data.channels,
            data.image_size,
            split.num_classes,
            method.heads,
            method.extra_heads,
        ).to(self.device)
        channels_last = spec.channels_last
        if channels_last is None:  # the measured default of this device and backbone
            channels_last = use_channels_last(self.device, self.backbone)
        self.channels_last = bool(channels_last)  # in the record: it changes the floats
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        if spec.compile:  # in place: state_dict keys (checkpoints) stay the same
            model.embed.compile()
        self.init_hash = weights_hash(model)  # before any step (same on resume: same seed)
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
        return method, ctx, Loader(data.train, item_src, augmenter, self.device, spec.workers)

    def _session(self, data, method, ctx, loader, history, progress, opt_state, run, gen):
        """The session that executes the plan, with a checkpoint callback for its epochs."""
        dist = self.dist

        def checkpoint(opt: torch.optim.Optimizer | None) -> None:
            if not dist.is_main:
                return
            save_checkpoint(
                run.checkpoint,
                {
                    "identity": run.identity,
                    "model": ctx.model.state_dict(),
                    "ema": ctx.ema.state_dict() if ctx.ema is not None else None,
                    "state": {k: v.cpu() for k, v in ctx.state.items()},
                    "optimizer": opt.state_dict() if opt is not None else None,
                    "history": history,
                    "progress": progress,
                    "rng": rng_state(gen),
                },
            )

        amp = (
            ("bf16" if self.device.type == "cuda" else "none")
            if self.spec.amp == "auto"
            else self.spec.amp
        )
        return Session(
            name=self.spec.method,
            ctx=ctx,
            data=data,
            split=data.split,
            method=method,
            loader=loader,
            augmenter=loader.augmenter,
            embed=dist.sharded(embed_items),
            dist=dist,
            amp=amp,
            workers=self.spec.workers,
            show_progress=self.spec.progress,
            eval_every=self.spec.eval_every,
            min_steps=getattr(self.data_params, "min_steps_per_epoch", 0),
            history=history,
            progress=progress,
            checkpoint=checkpoint,
            opt_state=opt_state,
            diag=self.diag_settings(),
        )

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
