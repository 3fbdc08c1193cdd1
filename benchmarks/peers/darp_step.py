"""A cause run for the fixmatch peer: DARP's code with our FixMatch step in its loop.

DARP's ``train_fix`` (training_functions.py:370-487) differs from FixMatch's own step (the
paper's Algorithm 1, kekmodel/FixMatch-pytorch, our ``methods/fixmatch_core.py``) in two ways:

1. the pseudo-labels come from a **separate forward of the weak view alone, in train mode**
   (``model(inputs_u)`` under ``no_grad``: BatchNorm normalises the weak batch by its own
   statistics and updates its running statistics with them);
2. the trained forward is ``[labeled, strong, strong']``: **two strong views** of each
   unlabeled item, no weak view, with one loss mean over both.

``joint_train_fix`` replaces only that step with ours: one train-mode forward of
``[labeled, weak, strong]``, hard pseudo-labels from the weak rows (softmax, no gradient) kept
at ``max >= tau``, the code's ``SemiLoss`` on the strong rows (its second strong view is drawn
by its loader and not used). Everything else stays the code's: loaders, transforms, labeled
loss, optimiser and its EMA. The peer ``fixmatch-joint`` runs it (``peer_check.py run
fixmatch-joint``); its record, beside the plain ``fixmatch`` peer's, shows how much of the gap
the step explains. Never used for DARP (its refinement needs the code's saved predictions).
"""

from __future__ import annotations

from typing import Any

import torch


def _cycle(loader):
    """Batches of ``loader`` forever, a fresh pass (reshuffled) after each end (the code's)."""
    while True:
        yield from loader


def joint_train_fix(args, labeled, unlabeled, model, optimizer, ema_optimizer, criterion,
                    epoch, use_cuda, target_disb, emp_distb_u, pseudo_orig, pseudo_refine):  # fmt: skip
    """One epoch of the code's ``train_fix`` interface with FixMatch's one-pass step.

    Returns the code's tuple: mean loss, Lx and Lu, and its three state objects unchanged.
    """
    model.train()
    sums = torch.zeros(3)
    lab, unl = _cycle(labeled), _cycle(unlabeled)
    for _ in range(args.val_iteration):
        x, y, _ = next(lab)
        (weak, strong, _unused), _, _ = next(unl)
        b, m = len(x), len(weak)
        logits, _ = model(torch.cat([x, weak, strong]))
        with torch.no_grad():
            conf, hard = torch.softmax(logits[b : b + m].detach(), dim=1).max(1)
        eye = torch.eye(args.num_class)
        mask = conf.ge(args.tau).float()
        lx, lu = criterion(args, logits[:b], eye[y], logits[b + m :], eye[hard], epoch, mask)
        loss = lx + lu
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ema_optimizer.step()
        sums += torch.stack([loss.detach(), lx.detach(), lu.detach()])
    mean: list[Any] = (sums / args.val_iteration).tolist()
    return (*mean, emp_distb_u, pseudo_orig, pseudo_refine)
