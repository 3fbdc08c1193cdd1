"""The EMA-decay schedule is a declared field of the Train step that the runner applies.

Mean Teacher + LDAM used to set the decay on its own Train object from inside its loss; under
DDP the runner trains a copy of the step (``Dist.wrap_step``), so the decay stayed at its
ramp-up value. The schedule now travels with the step (``stages.EmaDecay``).
"""

import json
import os
import subprocess
import sys

import pytest
import torch

from sslt_bench.config import build_config
from sslt_bench.methods.base import DataInfo
from sslt_bench.methods.mean_teacher_ldam import MeanTeacherLDAM, MeanTeacherLDAMConfig
from sslt_bench.train.distributed import Dist
from sslt_bench.train.engine import ema_decay_at
from sslt_bench.train.stages import EmaDecay, StepContext

INFO = DataInfo(10, torch.arange(10, 0, -1).numpy(), 55, 220, 1, 8)


def _ctx(epoch, epochs, step):
    net = torch.nn.Linear(1, 1)
    return StepContext(net, None, {}, 2, torch.ones(2), 2, 0, torch.device("cpu"),
                       torch.Generator(), epoch=epoch, epochs=epochs, step=step)  # fmt: skip


def test_schedule_values():
    s = EmaDecay(0.999, 0.99, 0.25, warm_cap=True)
    assert s.at(0, 8, 0) == 0.0 and s.at(0, 8, 3) == 0.75  # capped: mean of the weights so far
    assert s.at(1, 8, 10_000) == 0.99 and s.at(2, 8, 10_000) == 0.999  # ramp-up ends at 2/8
    assert EmaDecay(0.9).at(0, 8, 0) == 0.9  # no ramp-up, no cap


def test_mean_teacher_declares_its_schedule_and_it_survives_the_ddp_copy():
    cfg = build_config(MeanTeacherLDAMConfig, "quick")
    (step,) = MeanTeacherLDAM(cfg, INFO).plan()
    assert step.ema_decay == EmaDecay(cfg.ema_decay, cfg.ema_decay_rampup, cfg.rampup, True)
    copy = Dist(rank=0, world_size=1).wrap_step(step, torch.nn.Linear(1, 1))
    late = _ctx(cfg.epochs - 1, cfg.epochs, 10_000)
    assert ema_decay_at(copy, late) == cfg.ema_decay  # after the ramp-up, in the copy too


@pytest.mark.slow  # two torchrun ranks: ~20 s
@pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="torch.distributed with gloo is not available",
)
def test_two_gloo_ranks_apply_the_post_rampup_decay(tmp_path):
    """Decay 0 after a ramp-up of 0.9: the teacher must end equal to the student, bit for bit."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "sslt_bench", "run", "--method", "mean-teacher+ldam"]
    cmd += ["--dataset", "digits-sslt", "--device", "cpu", "--out", str(out), "--no-progress"]
    cmd += ["--nproc", "2"]
    for o in ("epochs=2", "rampup=0.5", "ema_decay_rampup=0.9", "ema_decay=0", "warmup_epochs=0"):
        cmd += ["--set", o]
    cmd += ["--set", "min_steps_per_epoch=4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (record,) = (out / "records").glob("*.json")
    assert json.loads(record.read_text())["distributed"]["world_size"] == 2
    payload = torch.load(out / "checkpoints" / record.with_suffix(".pt").name, weights_only=True)
    model, ema = payload["model"], payload["ema"]
    for key, value in model.items():
        assert torch.equal(ema[key], value), key  # the stale 0.9 would leave them apart
