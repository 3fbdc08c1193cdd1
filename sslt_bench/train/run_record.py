"""The result record of a run: what it measured and everything needed to say where from.

Profile, method config, data parameters, split hash and summary, init hashes, timing,
device, thread count, versions and git revision, next to the final-model metrics.
"""

from __future__ import annotations

import platform
import time
from typing import TYPE_CHECKING, Any

import torch

from .. import __version__
from ..config import to_dict
from ..data.split import SPLIT_NAMES
from ..results.records import RECORD_VERSION, git_revision
from .diagnostics import record_fields as diagnostic_fields

if TYPE_CHECKING:
    from ..data.source import SSLTData
    from .runner import Runner, _RunFiles


def make_record(
    runner: Runner,
    data: SSLTData,
    run: _RunFiles,
    history: dict[str, Any],
    progress: dict[str, Any],
    t0: float,
    metrics: dict[str, Any] | None,
    error: str | None = None,
    resumed: dict[str, Any] | None = None,
    other_heads: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The record of ``runner``'s run; ``status`` is ``failed`` when ``error`` is given.

    ``other_heads``: test reports of the model's C-way heads that are not scored (ACR's and
    ABC's standard branch, Decoupling's instance-sampled classifier), kept as ``other_heads``
    (overall and many/medium/few) for diagnosis, as the official codes log both branches.
    """
    spec, split = runner.spec, data.split
    weights = history.get("weights", {})
    return {
        "kind": "sslt-bench-result",
        "version": RECORD_VERSION,
        "status": "ok" if error is None else "failed",
        "error": error,
        "run_id": run.run_id,
        "method": spec.method,
        "dataset": spec.dataset,
        "profile": spec.profile,
        "seed": spec.seed,
        "split_seed": runner.split_seed,
        "backbone": runner.backbone,
        "method_config": to_dict(runner.cfg),
        "data_params": to_dict(runner.data_params),
        "overrides": list(spec.overrides),
        "split_hash": split.hash,
        "split": split.summary(),
        "config_hash": run.identity["config"],
        "data_key": run.identity["data"],
        "metrics": metrics,
        **(
            {"other_heads": {h: _summary(r) for h, r in other_heads.items()}} if other_heads else {}
        ),
        "init_hash": runner.init_hash,
        "init_hashes": {"init": runner.init_hash, **{k: v[0] for k, v in weights.items()}},
        "init_plans": {k: v[1] for k, v in weights.items()},
        "history": {k: v for k, v in history.items() if k not in ("weights", "u_diagnostics")},
        **diagnostic_fields(history, runner.diag_settings()),
        **_timing(progress, t0, resumed),
        **_machine(runner),
    }


def _timing(progress: dict[str, Any], t0: float, resumed: dict[str, Any] | None) -> dict:
    """Wall, training and diagnostics seconds, images trained on, and the resumed run."""
    return {
        "wall_time_s": round(time.time() - t0, 3),
        "train_time_s": round(progress["train_time"], 3),
        "diagnostics_time_s": round(progress.get("diag_time", 0.0), 3),
        "train_images": progress["images"],
        "train_images_per_s": round(progress["images"] / max(progress["train_time"], 1e-9), 1),
        "resumed_from": resumed,
    }


def _machine(runner: Runner) -> dict[str, Any]:
    """Where the run ran: device, threads, memory format, versions, revision, host, time."""
    device = runner.device
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name()
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "channels_last": getattr(runner, "channels_last", None),
        "deterministic": runner.spec.deterministic,
        "torch": torch.__version__,
        "sslt_bench": __version__,
        "git": git_revision(),
        "host": platform.node(),
        "python": platform.python_version(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _summary(report: dict[str, Any]) -> dict[str, float]:
    """Overall and many/medium/few of an accuracy report (no per-class list)."""
    return {k: report[k] for k in ("overall", *SPLIT_NAMES) if k in report}
