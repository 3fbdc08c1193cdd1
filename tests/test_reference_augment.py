"""ImageNet's reference pipeline: shorter-side decode, RandomResizedCrop boxes, centre crop."""

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from sslt_bench.data.augment import Augmenter, center_crop, resized_crop_boxes, resized_crop_flip
from sslt_bench.data.imageio import to_uint8


def _photo(w, h, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("w,h", [(300, 200), (200, 300), (256, 256), (500, 375)])
def test_test_view_equals_torchvision_resize_256_center_crop_224(w, h):
    img = _photo(w, h)
    ref = T.Compose([T.Resize(256), T.CenterCrop(224), T.PILToTensor()])(img)
    square = to_uint8(img, 256, 3, fit="shorter")
    assert square.shape == (3, 256, 256)
    assert torch.equal(center_crop(square, 224), ref)
    aug = Augmenter((0.0,) * 3, (1.0,) * 3, 4, True, torch.device("cpu"), "resized", 224)
    out = aug(square[None], "none", torch.Generator())
    assert torch.allclose(out[0], ref.float() / 255.0)


def test_boxes_follow_torchvision_ranges_and_fallback():
    gen = torch.Generator().manual_seed(0)
    boxes = resized_crop_boxes(4000, 256, 256, gen)
    top, left, h, w = boxes.unbind(1)
    assert torch.all(h >= 1) and torch.all(w >= 1) and torch.all(top + h <= 256)
    assert torch.all(left + w <= 256)
    area = h * w / 256**2
    assert area.min() >= 0.07 and area.max() <= 1.0
    aspect = w / h
    inside = (aspect >= 0.70) & (aspect <= 1.42)  # 3/4..4/3 up to rounding of small crops
    assert inside.float().mean() > 0.99
    # a 1000 x 10 image never fits a crop within 3/4..4/3 of large area: centre fallback
    fb = resized_crop_boxes(3, 10, 1000, torch.Generator().manual_seed(1), scale=(0.9, 1.0))
    assert fb.tolist() == [[0, 493, 10, 13]] * 3  # width = round(10 * 4/3), centred


def test_resized_crop_of_the_whole_image_is_identity_and_flip_mirrors():
    x = torch.rand(2, 3, 8, 8)
    whole = torch.tensor([[0.0, 0.0, 8.0, 8.0]] * 2)
    out = resized_crop_flip(x, whole, 8, torch.tensor([False, True]))
    assert torch.allclose(out[0], x[0], atol=1e-6)
    assert torch.allclose(out[1], x[1].flip(2), atol=1e-6)
    quarter = torch.tensor([[0.0, 4.0, 4.0, 4.0]] * 2)  # top-right 4x4 block, upsampled x2
    out = resized_crop_flip(x, quarter, 4, torch.tensor([False, False]))
    assert torch.allclose(out[0], x[0, :, 0:4, 4:8], atol=1e-6)
