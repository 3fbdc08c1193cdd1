"""CReST+ as the DASO repository ships it (ytaek-oh/daso, ``lib/algorithm/fm_crest.py``).

Run as the code's own ``main()`` with ``configs/<cifar>/fixmatch_crest.yaml`` (algorithm
``FixMatchCReST``, PROGRESSIVE_ALIGN and MODEL.DIST_ALIGN on: CReST+) and its nodes set from
our ``fixmatch+crest`` config: the shared ones of :func:`peers.daso_code.config_argv` (batch, mu,
lr, wd, EMA, threshold, ...), GEN_PERIOD_STEPS = epochs x steps_per_epoch (our generation),
MAX_ITER = generations x that, ALPHA = 1 / our alpha (the code raises to ``1 / ALPHA``,
fm_crest.py:40), TMIN = t_min, PROGRESSIVE_ALIGN = DIST_ALIGN.APPLY = align. The patches are
those of :mod:`peers.daso_code` (our split, backbone with our initial weights, our SGD groups and
our engine's cosine, here over each generation as the code's ``override_max_iter`` asks, CPU,
no checkpoints); at every new generation the code rebuilds its model, which is then a fresh
copy of our initial weights (the code draws new random ones: fm_crest.py:64-75). Observed:
each generation's rebuilt labeled set (class counts) and the final (last generation's) EMA.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import Ours, Patches
from .daso_code import REPO, config_argv, run_code

__all__ = ["REPO", "METHOD", "argv", "run"]

METHOD = "fixmatch+crest"
ALGORITHM = "FixMatchCReST"
#: batches in the code's p_model queue (lib/models/dist_align.py:7, fixed in the code)
CODE_WINDOW = 128


def argv(ours: Ours, out: Path) -> list[str]:
    """The code's command line (config file and yacs nodes) for our CReST+ config."""
    c = ours.cfg
    if c.generations < 2:
        raise ValueError("the code's gradual temperature divides by generations - 1 (>= 2)")
    if c.align and c.window != CODE_WINDOW:
        raise ValueError(f"the code's p_model window is {CODE_WINDOW} batches, ours {c.window}")
    gen = c.epochs * c.steps_per_epoch
    return config_argv(
        ours,
        out,
        "fixmatch_crest.yaml",
        {
            "SOLVER.MAX_ITER": c.generations * gen,
            "ALGORITHM.CREST.GEN_PERIOD_STEPS": gen,
            "ALGORITHM.CREST.ALPHA": 1.0 / c.alpha,
            "ALGORITHM.CREST.TMIN": float(c.t_min),
            "ALGORITHM.CREST.PROGRESSIVE_ALIGN": bool(c.align),
            "MODEL.DIST_ALIGN.APPLY": bool(c.align),
        },
    )


def run(ours: Ours, code: Path, work: Path) -> dict[str, Any]:
    """Train with the code's ``main()``; returns the parts of the peer record it produced."""
    return run_code(ours, code, argv(ours, work), ALGORITHM, extra=_observe)


def _observe(mods: dict[str, Any], p: Patches, seen: dict[str, Any]) -> None:
    """Keep each new generation's labeled-set class counts (training unchanged)."""
    cls = getattr(mods["lib.algorithm"], ALGORITHM)
    rebuild = cls._rebuild_labeled_dataset
    gens = seen.setdefault("code_log", {}).setdefault("generation_labeled_counts", [])

    def keep(self: Any) -> None:
        rebuild(self)
        counts = self.current_label_dist(device="cpu").tolist()
        gens.append({"iteration": self.iter + 1, "counts": [int(n) for n in counts]})

    p.set(cls, "_rebuild_labeled_dataset", keep, "keeps each generation's class counts")
