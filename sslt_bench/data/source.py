"""Image sources and the data bundle a data set builder returns.

Small data sets (digits, CIFAR) live in memory as one uint8 tensor ``[N, C, H, W]`` (moved to
the training device once); large ones (ImageNet, iNaturalist) stream from files through a
DataLoader whose workers decode and resize to uint8. Both expose the same
:meth:`ImageSource.iter_batches`, so the runner never knows which it has.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .augment import to_device
from .split import Split


class ImageSource:
    """Indexable uint8 images: ``iter_batches`` yields ``[B, C, H, W]`` uint8 tensors."""

    channels: int
    image_size: int

    def __len__(self) -> int:
        raise NotImplementedError

    def iter_batches(
        self, batches: Sequence[np.ndarray], device: torch.device, workers: int = 0
    ) -> Iterator[torch.Tensor]:
        """Yield the images of each index batch, in order, on ``device``."""
        raise NotImplementedError


class TensorSource(ImageSource):
    """All images in one uint8 tensor (moved to the training device once, on first use).

    CIFAR-sized sets stay resident in GPU memory as uint8 (CIFAR-10: 184 MB); a batch is an
    index into it, its ids copied without a host sync (:func:`~.augment.to_device`).
    """

    def __init__(self, images: torch.Tensor) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError("TensorSource needs a uint8 tensor [N, C, H, W]")
        self.images = images
        self.channels = images.shape[1]
        self.image_size = images.shape[2]
        self._on: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return self.images.shape[0]

    def on(self, device: torch.device) -> torch.Tensor:
        """The images on ``device`` (cached)."""
        key = str(device)
        if key not in self._on:
            self._on[key] = self.images.to(device)
        return self._on[key]

    def iter_batches(
        self, batches: Sequence[np.ndarray], device: torch.device, workers: int = 0
    ) -> Iterator[torch.Tensor]:
        """Index the in-memory tensor; no copies beyond the batch itself."""
        images = self.on(device)
        for idx in batches:
            yield images[to_device(torch.as_tensor(idx), device)]


class _FileDataset(torch.utils.data.Dataset):
    def __init__(self, paths: Sequence[Path], size: int, channels: int, fit: str) -> None:
        self.paths, self.size, self.channels, self.fit = paths, size, channels, fit

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        from .imageio import load_image

        return load_image(self.paths[i], self.size, self.channels, self.fit)


class FileSource(ImageSource):
    """Images decoded from files by DataLoader workers, resized to ``image_size`` squares.

    ``fit``: ``stretch`` (resize to the square) or ``shorter`` (shorter side to
    ``image_size``, centre square kept; see :func:`~sslt_bench.data.imageio.to_uint8`).
    """

    def __init__(
        self, paths: Sequence[Path], image_size: int, channels: int = 3, fit: str = "stretch"
    ) -> None:
        self.paths = list(paths)
        self.image_size = image_size
        self.channels = channels
        self.fit = fit

    def __len__(self) -> int:
        return len(self.paths)

    def iter_batches(
        self, batches: Sequence[np.ndarray], device: torch.device, workers: int = 0
    ) -> Iterator[torch.Tensor]:
        """Decode with ``workers`` processes; pinned memory and async copies on CUDA."""
        ds = _FileDataset(self.paths, self.image_size, self.channels, self.fit)
        loader = torch.utils.data.DataLoader(
            ds,
            batch_sampler=[list(map(int, b)) for b in batches],
            num_workers=workers,
            pin_memory=device.type == "cuda",
            persistent_workers=False,
        )
        for images in loader:
            yield images.to(device, non_blocking=True)


@dataclass
class SSLTData:
    """What a data set builder returns: the split and where its images come from.

    Attributes:
        split: the :class:`~sslt_bench.data.split.Split`.
        train: source of labeled and unlabeled images (indexed by the split).
        test: source of test images.
        mean: per-channel mean of [0, 1] pixels, for normalisation.
        std: per-channel std.
        crop_padding: padding of the random crop in the weak augmentation.
        flip: whether horizontal flips are label-preserving (False for digits).
        crop: ``pad`` (padded random crop) or ``resized`` (RandomResizedCrop to
            ``crop_size``, centre crop at test: ImageNet's reference pipeline).
        crop_size: the network input side for ``crop="resized"``.
    """

    split: Split
    train: ImageSource
    test: ImageSource
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int = 4
    flip: bool = True
    crop: str = "pad"
    crop_size: int | None = None

    @property
    def channels(self) -> int:
        """Image channels."""
        return self.train.channels

    @property
    def image_size(self) -> int:
        """Image side in pixels."""
        return self.train.image_size
