"""Each RandAugment op against ``torchvision.transforms.v2.functional`` (same op, same magnitude).

The pool is FixMatch's 14 ops (kekmodel/FixMatch-pytorch ``fixmatch_augment_pool``). Our ops
act on float batches in [0, 1]; geometric ops use bilinear sampling about the image centre, as
torchvision does with ``interpolation=BILINEAR``.
"""

import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from sslt_bench.data.augment import NUM_OPS, _op, apply_ops, cutout, equalize, rand_augment

BIL = InterpolationMode.BILINEAR
MAG = 0.7
FACTOR = 1 + 0.9 * MAG  # colour ops: enhance factor 1 +- 0.9 m (FixMatch: 0.05..0.95 +- ...)


def _images(seed: int = 0, n: int = 2) -> torch.Tensor:
    """Smooth 32x32 images on the 8-bit grid (so 8-bit based ops see exact levels)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 3, 8, 8), generator=g).float() / 255
    x = torch.nn.functional.interpolate(x, size=32, mode="bilinear", align_corners=False)
    return (x * 255).round() / 255


def _affine(x, **kw):
    args = {"angle": 0.0, "translate": [0.0, 0.0], "scale": 1.0, "shear": [0.0, 0.0]}
    return TF.affine(x, **{**args, **kw}, interpolation=BIL)


def _shear(a):
    return math.degrees(math.atan(a * 0.3 * MAG))


def _shift(a):
    return a * 0.3 * MAG * 32  # pixels: up to 30% of the side


# op index -> reference for sign +1 (sign -1 mirrors the magnitude where the op has a sign)
REFERENCE = {
    1: ("autocontrast", lambda x, s: TF.autocontrast(x)),
    2: ("brightness", lambda x, s: TF.adjust_brightness(x, 1 + 0.9 * MAG * s)),
    3: ("colour", lambda x, s: TF.adjust_saturation(x, 1 + 0.9 * MAG * s)),
    4: ("contrast", lambda x, s: TF.adjust_contrast(x, 1 + 0.9 * MAG * s)),
    5: (
        "posterize",
        lambda x, s: TF.to_dtype(
            TF.posterize((x * 255).round().to(torch.uint8), 8 - round(MAG * 4)),
            torch.float32,
            scale=True,
        ),
    ),
    6: ("solarize", lambda x, s: TF.solarize(x, 1 - MAG)),
    7: ("rotate", lambda x, s: TF.rotate(x, s * MAG * 30, interpolation=BIL)),
    8: ("shear_x", lambda x, s: _affine(x, shear=[_shear(s), 0.0])),
    9: ("translate_x", lambda x, s: _affine(x, translate=[-_shift(s), 0.0])),
    10: ("translate_y", lambda x, s: _affine(x, translate=[0.0, -_shift(s)])),
    11: ("sharpness", lambda x, s: TF.adjust_sharpness(x, 1 + 0.9 * MAG * s)),
    12: ("equalize", lambda x, s: TF.equalize(x)),
    13: ("shear_y", lambda x, s: _affine(x, shear=[0.0, _shear(s)])),
}


def test_pool_is_fixmatchs_14_ops():
    assert NUM_OPS == 14 and set(REFERENCE) == set(range(1, NUM_OPS))  # 0 = identity


@pytest.mark.parametrize("k", sorted(REFERENCE), ids=[REFERENCE[k][0] for k in sorted(REFERENCE)])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_op_matches_torchvision(k, sign):
    x = _images()
    m, s = torch.full((2,), MAG), torch.full((2,), sign)
    ours = _op(k, x, m, s)
    ref = REFERENCE[k][1](x, sign)
    assert ours.shape == ref.shape
    tol = 1e-4 if k in (3, 4) else 1e-5  # colour/contrast: grey weights 0.299 vs 0.2989
    assert (ours - ref).abs().max() < tol
    assert not torch.equal(ours, x) or k == 6  # the op does something (solarize may not)


def test_equalize_leaves_constant_channels_and_spreads_levels():
    x = torch.full((1, 3, 4, 4), 0.5)
    assert torch.equal(equalize(x), (x * 255).round() / 255)
    ramp = (torch.arange(4096) % 16).float().div(255).reshape(1, 1, 64, 64).expand(1, 3, 64, 64)
    out = equalize(ramp)
    assert out.max() > 0.8 and torch.allclose(out, TF.equalize(ramp))


def test_batched_selection_equals_per_op_subsets():
    """The GPU path (every op on the batch, torch.where) gives the CPU path's pixels."""
    x = _images(1, n=40)
    g = torch.Generator().manual_seed(3)
    ops = torch.arange(40) % NUM_OPS
    mags = torch.rand(40, generator=g)
    signs = torch.where(torch.rand(40, generator=g) < 0.5, -1.0, 1.0)
    a = apply_ops(x, ops, mags, signs, batched=False)
    b = apply_ops(x, ops, mags, signs, batched=True)
    assert torch.allclose(a, b, atol=1e-6)


def test_rand_augment_and_cutout_are_seeded():
    x = _images(2, n=8)
    a = cutout(rand_augment(x, torch.Generator().manual_seed(5)), torch.Generator().manual_seed(6))
    b = cutout(rand_augment(x, torch.Generator().manual_seed(5)), torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, x)
    assert ((a == 0).flatten(1).float().mean(1) > 0.2).all()  # a 16x16-ish square is zeroed
