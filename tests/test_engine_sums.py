"""engine.EpochSums: the CUDA path (values kept on the device, read once) equals the CPU path."""

import pytest
import torch

from sslt_bench.train.engine import EpochSums, NonFiniteLoss


def _feed(sums: EpochSums, losses, logs):
    for i, (loss, log) in enumerate(zip(losses, logs, strict=True)):
        sums.add(i, torch.tensor(loss), log)


def test_deferred_means_equal_per_step_means():
    losses = [0.5, 1.25, 2.0, 0.125]
    logs = [{"mask": torch.tensor(0.5), "sup": 1.0}] * 2 + [{"mask": 0.25, "sup": 3.0}] * 2
    now, later = EpochSums(True, "x"), EpochSums(False, "x")
    _feed(now, losses, logs)
    _feed(later, losses, logs)
    assert later.running_loss(4) is None and now.running_loss(4) == pytest.approx(0.96875)
    assert later.pending["loss"] and later.sums == {"loss": 0.0}  # nothing read yet
    a, b = now.means(4), later.means(4)
    assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k]) for k in a)


@pytest.mark.parametrize("sync", [True, False])
def test_non_finite_loss_names_its_batch(sync):
    sums = EpochSums(sync, "step 'train', epoch 3")
    with pytest.raises(NonFiniteLoss, match=r"step 'train', epoch 3, batch 2"):
        _feed(sums, [1.0, float("nan"), 1.0], [{}] * 3)
        sums.means(3)
