"""DASO's official code (ytaek-oh/daso, ``main.py`` -> ``lib/algorithm/daso.py``) on our run.

Run as the code's own ``main()`` (its trainer, DASO's ``run_step`` and
``lib/models/daso_model.py``: queue, semantic pseudo labels, distribution-aware blending,
alignment loss) with ``configs/<cifar>/fixmatch_daso.yaml`` and its yacs nodes set from our
``fixmatch+daso`` config: the shared ones of :func:`peers.daso_code.config_argv` (batch, mu,
steps, lr, momentum, Nesterov, wd, EMA, threshold, lambda_u) and DASO's PRETRAIN_STEPS,
PROTO_TEMP, PL_DIST_UPDATE_PERIOD (our dist_period), WITH_DIST_AWARE, DIST_TEMP, INTERP_ALPHA,
PSA_LOSS_WEIGHT (lambda_align), the queue size (MODEL.QUEUE.MAX_SIZE, the node FeatureQueue
reads, and the unread ALGORITHM.DASO.QUEUE_SIZE) and FEAT_DIM (our embedding's). The patches
are :mod:`peers.daso_code`'s: our split (U's labels hidden), our backbone and head with our
initial weights, our SGD groups and our engine's schedule (quick: cosine over the 2,100
steps; the code's config: constant lr), CPU / current-torch shims, no checkpoints. Scored:
the code's final EMA model (its test-time logit-adjusted variant as ``other_heads``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import Ours
from .daso_code import REPO, config_argv, run_code

__all__ = ["REPO", "METHOD", "argv", "run"]

METHOD = "fixmatch+daso"
ALGORITHM = "DASO"


def argv(ours: Ours, out: Path) -> list[str]:
    """The code's command line (config file and yacs nodes) for our DASO config."""
    c = ours.cfg
    daso = {
        "PRETRAIN_STEPS": c.pretrain_steps,
        "PROTO_TEMP": float(c.proto_temp),
        "PL_DIST_UPDATE_PERIOD": c.dist_period,
        "WITH_DIST_AWARE": bool(c.dist_aware),
        "DIST_TEMP": float(c.dist_temp),
        "INTERP_ALPHA": float(c.interp_alpha),
        "PSA_LOSS_WEIGHT": float(c.lambda_align),
        "QUEUE_SIZE": c.queue_size,
    }
    nodes = {f"ALGORITHM.DASO.{k}": v for k, v in daso.items()}
    nodes.update(
        {"MODEL.QUEUE.MAX_SIZE": c.queue_size, "MODEL.QUEUE.FEAT_DIM": ours.model.feat_dim}
    )
    return config_argv(ours, out, "fixmatch_daso.yaml", nodes)


def run(ours: Ours, code: Path, work: Path) -> dict[str, Any]:
    """Train with the code's ``main()``; returns the parts of the peer record it produced."""
    return run_code(ours, code, argv(ours, work), ALGORITHM)
