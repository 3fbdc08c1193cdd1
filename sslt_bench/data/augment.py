"""Batched image augmentation on tensors, on the training device.

No per-sample PIL work happens in the training loop: a whole uint8 batch is cropped, flipped
or RandAugment-ed with tensor ops whose random parameters come from one seeded
``torch.Generator`` (checkpointed with the run, so resumed runs see the same augmentations).

* ``weak``: random crop with ``padding`` pixels of reflection padding + horizontal flip
  (the CIFAR recipe of LDAM-DRW, Decoupling and FixMatch).
* ``crop="resized"`` (ImageNet-style sources decoded to ``S x S`` squares, shorter side
  resized to S then centre-cropped): ``weak`` is RandomResizedCrop to ``out_size`` (scale
  0.08-1, aspect 3/4-4/3, torchvision's sampling with 10 tries and a centre fallback; bilinear,
  no antialiasing) + flip, and ``none`` the centre ``out_size`` crop: with S = 256 and
  out_size = 224 that is exactly torchvision's Resize(256) + CenterCrop(224).
* ``strong``: weak, then two RandAugment-style ops per image at random magnitude
  (Cubuk et al. 2020, as used by FixMatch, Sohn et al. 2020), then Cutout (DeVries & Taylor
  2017) of half the image side. The pool is FixMatch's 14 ops (kekmodel/FixMatch-pytorch,
  ``dataset/randaugment.py`` ``fixmatch_augment_pool``): identity, autocontrast, brightness,
  colour, contrast, equalize, posterize, solarize, rotate, shear x/y, translate x/y,
  sharpness. Each op agrees with ``torchvision.transforms.v2.functional`` at the same
  magnitude (tests/test_augment.py); shears and rotations are about the image centre
  (torchvision's convention; the PIL code shears about the top-left corner).

On CUDA the ops of a RandAugment round run on the whole batch and are selected per image with
``torch.where`` (no host synchronisation); on CPU only the images that drew an op are
computed. Both give the same pixels per image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _rand(gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=gen)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A CPU tensor on ``device``; to CUDA through pinned memory without a host sync.

    A plain ``.to("cuda")`` of pageable memory waits for the stream, which would stall the
    training loop at every batch; ``t`` is a fresh tensor nobody writes to afterwards.
    """
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def to_float(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 [B, C, H, W] -> normalised float32."""
    return (x.float().div_(255.0) - mean) / std


def random_crop_flip(
    x: torch.Tensor, gen: torch.Generator, padding: int, flip: bool
) -> torch.Tensor:
    """Random crop after reflection padding, and random horizontal flip, for a float batch."""
    b, _, h, w = x.shape
    if padding > 0:
        padded = F.pad(x, (padding,) * 4, mode="reflect")
        dx = to_device((_rand(gen, b) * (2 * padding + 1)).long(), x.device)
        dy = to_device((_rand(gen, b) * (2 * padding + 1)).long(), x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device)[None]).clamp_(
            max=h + 2 * padding - 1
        )
        cols = (dx[:, None] + torch.arange(w, device=x.device)[None]).clamp_(
            max=w + 2 * padding - 1
        )
        bi = torch.arange(b, device=x.device)[:, None, None]
        x = padded.permute(0, 2, 3, 1)[bi, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if flip:
        mask = to_device(_rand(gen, b) < 0.5, x.device)
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x.contiguous()


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False)


def _blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (b + (a - b) * factor[:, None, None, None]).clamp(0, 1)


def _gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    w = to_device(torch.tensor([0.299, 0.587, 0.114]), x.device)[None, :, None, None]
    return (x * w).sum(1, keepdim=True).expand_as(x)


def _op(k: int, x: torch.Tensor, m: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """Apply RandAugment op ``k`` at magnitudes ``m`` in [0, 1] to pixels in [0, 1]."""
    b = x.shape[0]
    eye = torch.eye(2, 3, device=x.device).repeat(b, 1, 1)
    if k == 0:  # identity
        return x
    if k == 1:  # autocontrast
        lo = x.amin((2, 3), keepdim=True)
        hi = x.amax((2, 3), keepdim=True)
        flat = (hi - lo) < 1e-3  # a constant channel stays as it is (PIL, torchvision)
        scaled = ((x - lo) / torch.where(flat, torch.ones_like(hi), hi - lo)).clamp(0, 1)
        return torch.where(flat, x, scaled)
    if k == 2:  # brightness
        return _blend(x, torch.zeros_like(x), 1 + 0.9 * m * sign)
    if k == 3:  # colour (saturation)
        return _blend(x, _gray(x), 1 + 0.9 * m * sign)
    if k == 4:  # contrast
        mean = _gray(x).mean((1, 2, 3), keepdim=True).expand_as(x)
        return _blend(x, mean, 1 + 0.9 * m * sign)
    if k == 5:  # posterize to 4..8 bits: keep the top bits of the 8-bit value (PIL)
        bits = (8 - (m * 4).round()).clamp(4, 8)
        step = (2 ** (8 - bits))[:, None, None, None]
        return torch.floor(torch.round(x * 255) / step) * step / 255
    if k == 6:  # solarize
        thr = (1 - m)[:, None, None, None]
        return torch.where(x >= thr, 1 - x, x)
    if k == 7:  # rotate up to 30 degrees
        a = m * sign * math.pi / 6
        theta = eye.clone()
        theta[:, 0, 0], theta[:, 0, 1] = a.cos(), -a.sin()
        theta[:, 1, 0], theta[:, 1, 1] = a.sin(), a.cos()
        return _affine(x, theta)
    if k == 8:  # shear x up to 0.3
        theta = eye.clone()
        theta[:, 0, 1] = 0.3 * m * sign
        return _affine(x, theta)
    if k == 9:  # translate x up to 30% of the side
        theta = eye.clone()
        theta[:, 0, 2] = 0.6 * m * sign
        return _affine(x, theta)
    if k == 10:  # translate y
        theta = eye.clone()
        theta[:, 1, 2] = 0.6 * m * sign
        return _affine(x, theta)
    if k == 11:  # sharpness: blend with a smoothed copy whose border pixels are unchanged
        kernel = to_device(torch.tensor([[1, 1, 1], [1, 5, 1], [1, 1, 1]]), x.device) / 13.0
        kernel = kernel.to(x.dtype).expand(x.shape[1], 1, 3, 3)
        smooth = x.clone()
        smooth[..., 1:-1, 1:-1] = F.conv2d(x, kernel, groups=x.shape[1])
        return _blend(x, smooth, 1 + 0.9 * m * sign)
    if k == 12:  # equalize (PIL's histogram equalisation, per image and channel)
        return equalize(x)
    if k == 13:  # shear y up to 0.3
        theta = eye.clone()
        theta[:, 1, 0] = 0.3 * m * sign
        return _affine(x, theta)
    raise ValueError(k)


NUM_OPS = 14


def equalize(x: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation of [0, 1] pixels on their 8-bit values, per image and channel.

    PIL's ``ImageOps.equalize``: with n the pixels of a channel outside its brightest occupied
    level and ``step = n // 255``, level v maps to ``(pixels below v + step // 2) // step``;
    a channel with ``step == 0`` is left unchanged.
    """
    b, c, h, w = x.shape
    levels = torch.round(x * 255).clamp(0, 255).long().reshape(b * c, h * w)
    hist = torch.zeros(b * c, 256, dtype=torch.long, device=x.device)
    hist.scatter_add_(1, levels, torch.ones_like(levels))
    top = levels.amax(1, keepdim=True)
    step = (h * w - hist.gather(1, top)) // 255
    below = hist.cumsum(1) - hist  # pixels strictly below each level
    lut = ((below + step // 2) // step.clamp_min(1)).clamp(0, 255)
    out = lut.gather(1, levels).to(x.dtype) / 255
    out = torch.where(step > 0, out, levels.to(x.dtype) / 255)
    return out.reshape(b, c, h, w)


def rand_augment(x: torch.Tensor, gen: torch.Generator, n_ops: int = 2) -> torch.Tensor:
    """Two random ops per image at uniform random magnitude (FixMatch's RandAugment variant)."""
    b = x.shape[0]
    for _ in range(n_ops):
        ops = to_device((_rand(gen, b) * NUM_OPS).long(), x.device)
        mags = to_device(_rand(gen, b), x.device)
        signs = to_device(torch.where(_rand(gen, b) < 0.5, -1.0, 1.0), x.device)
        x = apply_ops(x, ops, mags, signs, batched=x.is_cuda)
    return x


def apply_ops(
    x: torch.Tensor, ops: torch.Tensor, mags: torch.Tensor, signs: torch.Tensor, batched: bool
) -> torch.Tensor:
    """Op ``ops[i]`` at magnitude ``mags[i]`` and sign ``signs[i]`` on image i.

    ``batched``: every op on the whole batch, kept per image with ``torch.where`` (no host
    sync; for GPUs); else each op only on the images that drew it (less work; for CPUs).
    """
    out = x.clone()
    for k in range(1, NUM_OPS):
        if batched:
            out = torch.where((ops == k)[:, None, None, None], _op(k, x, mags, signs), out)
            continue
        sel = (ops == k).nonzero().flatten()
        if len(sel):
            out[sel] = _op(k, x[sel], mags[sel], signs[sel])
    return out


def cutout(x: torch.Tensor, gen: torch.Generator, frac: float = 0.5) -> torch.Tensor:
    """Zero a square of side ``frac`` * image side at a random centre in every image."""
    b, _, h, w = x.shape
    size = max(1, int(round(frac * h)))
    cy = to_device((_rand(gen, b) * h).long(), x.device)
    cx = to_device((_rand(gen, b) * w).long(), x.device)
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    my = ((ys - cy[:, None]).abs() <= size // 2)[:, :, None]
    mx = ((xs - cx[:, None]).abs() <= size // 2)[:, None, :]
    return x * (~(my & mx))[:, None].to(x.dtype)


def resized_crop_boxes(
    b: int, h: int, w: int, gen: torch.Generator, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)
) -> torch.Tensor:
    """RandomResizedCrop boxes ``[B, 4]`` (top, left, height, width) for ``h x w`` images.

    torchvision's ``RandomResizedCrop.get_params`` for a batch: 10 tries of a random area
    fraction in ``scale`` and log-uniform aspect in ``ratio``; the first that fits wins, else
    the whole image clipped to ``ratio``, centred.
    """
    tries = 10
    area = h * w * (scale[0] + (scale[1] - scale[0]) * _rand(gen, b, tries))
    logr = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * _rand(gen, b, tries)
    aspect = logr.exp()
    cw = (area * aspect).sqrt().round()
    ch = (area / aspect).sqrt().round()
    ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((b,), -1))
    u_top, u_left = _rand(gen, b, tries), _rand(gen, b, tries)
    out = torch.empty(b, 4)
    in_ratio = w / h
    fw = w if in_ratio <= ratio[1] else round(h * ratio[1])
    fh = h if in_ratio >= ratio[0] else round(w / ratio[0])
    for k in range(b):
        t = int(first[k])
        if t < 0:
            out[k] = torch.tensor([(h - fh) // 2, (w - fw) // 2, fh, fw], dtype=torch.float32)
            continue
        hh, ww = int(ch[k, t]), int(cw[k, t])
        top = int(u_top[k, t] * (h - hh + 1))
        left = int(u_left[k, t] * (w - ww + 1))
        out[k] = torch.tensor([top, left, hh, ww], dtype=torch.float32)
    return out


def resized_crop_flip(
    x: torch.Tensor, boxes: torch.Tensor, size: int, flip: torch.Tensor
) -> torch.Tensor:
    """Crop ``boxes`` out of float batch ``x``, resize to ``size`` (bilinear), flip where set."""
    b, _, h, w = x.shape
    top, left, hh, ww = to_device(boxes, x.device).unbind(1)
    theta = torch.zeros(b, 2, 3, device=x.device)
    sign = 1.0 - 2.0 * to_device(flip, x.device).float()
    theta[:, 0, 0] = ww / w * sign
    theta[:, 0, 2] = 2 * (left + ww / 2) / w - 1
    theta[:, 1, 1] = hh / h
    theta[:, 1, 2] = 2 * (top + hh / 2) / h - 1
    grid = F.affine_grid(theta, [b, x.shape[1], size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The centre ``size x size`` crop (torchvision's rounding of the offsets)."""
    h, w = x.shape[-2:]
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return x[..., top : top + size, left : left + size]


class Augmenter:
    """Turns uint8 batches into normalised float views: ``none``, ``weak`` or ``strong``.

    Args:
        mean: per-channel mean (of [0, 1] pixels).
        std: per-channel std.
        padding: crop padding for ``weak``.
        flip: whether to flip horizontally.
        device: the training device.
        crop: ``pad`` (padded random crop) or ``resized`` (RandomResizedCrop; centre crop
            for ``none``), for sources decoded larger than the network input.
        out_size: network input side for ``crop="resized"``.
    """

    def __init__(
        self,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        padding: int,
        flip: bool,
        device: torch.device,
        crop: str = "pad",
        out_size: int | None = None,
    ) -> None:
        self.mean = torch.tensor(mean, device=device)[None, :, None, None]
        self.std = torch.tensor(std, device=device)[None, :, None, None]
        self.padding, self.flip = padding, flip
        if crop not in ("pad", "resized") or (crop == "resized" and not out_size):
            raise ValueError(f"bad crop {crop!r} / out_size {out_size!r}")
        self.crop, self.out_size = crop, out_size

    def __call__(self, x: torch.Tensor, view: str, gen: torch.Generator) -> torch.Tensor:
        """Return the ``view`` of uint8 batch ``x`` as a normalised float tensor.

        A ``:tag`` suffix (``weak:teacher``) names another, independently drawn copy of the same
        view, so one batch can carry two weak views (Mean Teacher's student and teacher inputs).
        """
        kind = view.partition(":")[0]
        img = x.float().div_(255.0)
        if self.crop == "resized" and kind == "none":
            img = center_crop(img, self.out_size)
        elif self.crop == "resized" and kind in ("weak", "strong"):
            boxes = resized_crop_boxes(len(img), img.shape[2], img.shape[3], gen)
            flips = (
                _rand(gen, len(img)) < 0.5 if self.flip else torch.zeros(len(img), dtype=torch.bool)
            )
            img = resized_crop_flip(img, boxes, self.out_size, flips)
        elif kind in ("weak", "strong"):
            img = random_crop_flip(img, gen, self.padding, self.flip)
        if kind == "strong":
            img = cutout(rand_augment(img, gen), gen)
        elif kind not in ("none", "weak"):
            raise ValueError(f"unknown view {view!r}")
        return img.sub_(self.mean).div_(self.std)  # img is this call's own buffer
