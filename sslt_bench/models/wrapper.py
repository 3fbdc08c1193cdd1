"""The model every method trains: an embedding f and named classifier heads.

The paper's notation: f is the feature embedding; ``heads["random"]`` is g' (trained with
random sampling), ``heads["balanced"]`` is g (re-trained class-balanced). Methods that need
more heads (a rotation head for Salsa's self-supervision) add them by name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import MODELS


class CosineLinear(nn.Module):
    """Cosine-normalised classifier: logits = normalise(x) @ normalise(W) (LDAM's NormedLinear)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_dim, out_dim).uniform_(-1, 1))
        self.weight.data.renorm_(2, 1, 1e-5).mul_(1e5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Cosine-similarity logits."""
        return F.normalize(x, dim=1) @ F.normalize(self.weight, dim=0)


def make_head(kind: str, in_dim: int, out_dim: int) -> nn.Module:
    """A classifier head: ``linear`` or ``cosine``."""
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    if kind == "cosine":
        return CosineLinear(in_dim, out_dim)
    raise ValueError(f"unknown head kind {kind!r}; choose from: linear, cosine")


class SSLTModel(nn.Module):
    """Embedding plus named heads; ``forward(x, head)`` returns that head's logits."""

    def __init__(self, embed: nn.Module, heads: dict[str, nn.Module], head_kinds: dict[str, str]):
        super().__init__()
        self.embed = embed
        self.heads = nn.ModuleDict(heads)
        self.head_kinds = dict(head_kinds)

    @property
    def feat_dim(self) -> int:
        """Embedding dimension d."""
        return self.embed.out_dim

    def forward(self, x: torch.Tensor, head: str = "random") -> torch.Tensor:
        """Logits of ``head`` on the embedding of ``x``."""
        return self.heads[head](self.embed(x))

    def reset_head(self, name: str, generator: torch.Generator | None = None) -> None:
        """Re-initialise head ``name`` (fresh parameters of the same kind and shape)."""
        old = self.heads[name]
        out_dim = old.out_features if isinstance(old, nn.Linear) else old.weight.shape[1]
        with torch.random.fork_rng(devices=[]):
            if generator is not None:
                torch.manual_seed(int(torch.randint(2**31, (1,), generator=generator)))
            new = make_head(self.head_kinds[name], self.feat_dim, out_dim)
        self.heads[name] = new.to(next(old.parameters()).device)


#: Backbones that default to channels_last, per device type, chosen by measurement
#: (``benchmarks/throughput.py`` times our loop and the model-only step in both formats in one
#: run; docs/scale-out.md). CUDA: all (cuDNN's NHWC tensor-core kernels under bf16). CPU: the
#: CIFAR ResNets, whose SGD step runs faster in channels_last on this project's 2-core CPU
#: (resnet20 1.27-1.43x, resnet32 1.23-1.27x, resnet56 1.28-1.30x, resnet18-cifar 1.07-1.13x;
#: evaluation 1.05-1.33x), and the small CNN (our training loop level in both formats, 6,306 vs
#: 6,463 img/s, its evaluation 1.3-1.4x faster: 2 threads, idle, 3 interleaved rounds), not the
#: ImageNet ResNets (not measured on CPU). The format changes float results (oneDNN's NHWC
#: kernels sum in another order), so records say which ran (``channels_last``); CPU records of
#: these backbones made before their switch (CIFAR ResNets: before 387c65c; the small CNN:
#: records without ``channels_last: true``) ran NCHW and reproduce with ``--no-channels-last``,
#: which like ``--channels-last`` overrides the default per run.
CHANNELS_LAST: dict[str, tuple[str, ...]] = {
    "cuda": ("*",),
    "cpu": (
        "resnet20",
        "resnet32",
        "resnet44",
        "resnet56",
        "resnet18-cifar",
        "resnet18-cifar-proj",
        "small-cnn",
    ),
}


def use_channels_last(device: torch.device | str, backbone: str) -> bool:
    """Whether ``backbone`` trains faster in channels_last on ``device`` (see CHANNELS_LAST)."""
    names = CHANNELS_LAST.get(torch.device(device).type, ())
    return "*" in names or backbone in names


def to_memory_format(model: nn.Module, channels_last: bool) -> nn.Module:
    """``model`` in channels_last (4-D weights NHWC) or the default contiguous format."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return model.to(memory_format=fmt)


def build_model(
    backbone: str,
    in_channels: int,
    image_size: int,
    num_classes: int,
    heads: dict[str, str],
    extra_heads: dict[str, tuple[str, int]] | None = None,
) -> SSLTModel:
    """Build a registered backbone with classifier heads.

    Args:
        backbone: registered backbone name.
        in_channels: image channels.
        image_size: image side.
        num_classes: C.
        heads: head name -> kind (``linear``/``cosine``), each with C outputs.
        extra_heads: head name -> (kind, outputs) for auxiliary heads.
    """
    embed = MODELS.get(backbone)(in_channels, image_size)
    kinds = dict(heads)
    modules = {n: make_head(k, embed.out_dim, num_classes) for n, k in heads.items()}
    for n, (k, out) in (extra_heads or {}).items():
        modules[n] = make_head(k, embed.out_dim, out)
        kinds[n] = k
    return SSLTModel(embed, modules, kinds)
