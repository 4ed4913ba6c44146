"""Shared encoders and decoders, chosen from the environment's observation shape.

Images ``[C, H, W]`` get a stride-2 convolutional stack (kernel 4, padding 1, so
every layer halves the side: 64 -> 32 -> 16 -> 8 -> 4 with four layers); flat
vectors ``[D]`` get an MLP. Decoders mirror encoders and output logits, or, for
images, are the spatial-broadcast decoder of Watters et al. 2019.

Named architectures of the references (``ARCHITECTURES``, specs/latent.md 1.3):
``burgess`` / ``kim`` (conv 32, 32, 64, 64, then 256 units), ``montero`` (conv 64, 64,
128, 128, 256, then 256) and ``abdi`` (conv 32, 32, 64, 128, 256, then 256).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

#: Named conv stacks: name -> (channels per stride-2 layer, width of the fully connected layer).
ARCHITECTURES = {
    "burgess": ((32, 32, 64, 64), 256),
    "kim": ((32, 32, 64, 64), 256),
    "montero": ((64, 64, 128, 128, 256), 256),
    "abdi": ((32, 32, 64, 128, 256), 256),
}
DECODERS = ("mirror", "spatial_broadcast")
#: Hidden activations of the MLPs: ``leaky_relu`` is LeakyReLU(0.2), the mechanism-sparsity
#: references' choice (specs/causal.md 1.2); ``elu`` is ICM-VAE's (2.2).
LEAKY_SLOPE = 0.2
_ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(LEAKY_SLOPE), "elu": nn.ELU}
MLP_ACTIVATIONS = tuple(_ACTIVATIONS)
#: Conv layers (5x5, 64 channels, 'same' padding) of the spatial-broadcast decoder before its output conv.
BROADCAST_LAYERS, BROADCAST_CHANNELS = 3, 64


#: Elements from which :class:`ConvReLU` writes its backward in place (4 MB of float32, twice these cores'
#: L2): below, a new gradient buffer stays in cache and the Python autograd Function costs more than it saves
#: (benchmarks/step_ab.py: GridWorld's largest activation, 786k elements, 0.98x with it; β-VAE b64, whose
#: first layers have 2.1M, 1.02x).
IN_PLACE_GRAD_MIN = 2 ** 20


class _ReLUGradInPlace(torch.autograd.Function):
    """``x.relu_()`` whose backward writes the input's gradient into the output's (``threshold_backward`` into
    its own gradient argument: the same values, no new activation-sized buffer)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x.relu_()
        ctx.mark_dirty(x)
        ctx.save_for_backward(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        out, = ctx.saved_tensors
        if torch.is_grad_enabled():  # a double backward (create_graph=True) differentiates this: out of place
            return torch.ops.aten.threshold_backward(grad, out, 0)
        return torch.ops.aten.threshold_backward.grad_input(grad, out, 0, grad_input=grad)


class ConvReLU(nn.ReLU):
    """The conv stacks' ReLU: in place (a convolution's backward does not read its output) and, on inputs of at
    least :data:`IN_PLACE_GRAD_MIN` elements, its backward overwrites the incoming gradient, which here is
    always a buffer of its own (the next layer's input gradient, or a view of it). ``inplace=False``, and
    inside ``torch.compile`` (whose traced backward cannot take the in-place write), it is ``nn.ReLU``."""

    def __init__(self):
        super().__init__(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.inplace and x.numel() >= IN_PLACE_GRAD_MIN and x.requires_grad and torch.is_grad_enabled()
                and not torch.compiler.is_compiling()):
            return _ReLUGradInPlace.apply(x)
        return super().forward(x)


def _stack(sizes: Sequence[int], activation: str, linear) -> nn.Sequential:
    """``linear(a, b, output)`` layers between consecutive ``sizes`` (``output`` True for the last) with
    ``activation`` between them."""
    if activation not in MLP_ACTIVATIONS:
        raise ValueError(f"mlp_activation must be one of {MLP_ACTIVATIONS}, got {activation!r}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        output = i == len(sizes) - 2
        layers.append(linear(a, b, output))
        if not output:
            layers.append(_ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def mlp(sizes: Sequence[int], activation: str = "relu") -> nn.Sequential:
    """Linear layers between consecutive ``sizes`` (``[B, sizes[0]] -> [B, sizes[-1]]``) with ``activation``
    (one of :data:`MLP_ACTIVATIONS`) between them, not after the last."""
    return _stack(sizes, activation, lambda a, b, output: nn.Linear(a, b))


def _check_image(shape: Sequence[int], channels: Sequence[int]) -> int:
    """Side after the conv stack; ValueError if the image does not fit it."""
    _, height, width = shape
    factor = 2 ** len(channels)
    if height != width or height % factor:
        raise ValueError(f"conv nets need square images whose side is divisible by 2**len(channels) = {factor}; "
                         f"got observation shape {tuple(shape)}")
    return height // factor


def build_encoder(obs_shape: Sequence[int], out_dim: int, channels: Sequence[int], hidden: int,
                  mlp_hidden: Sequence[int], mlp_activation: str = "relu") -> nn.Module:
    """Network ``[B, *obs_shape] float -> [B, out_dim]``.

    Images: conv(k4, s2, p1) with ``channels`` and ReLU (:class:`ConvReLU`: in place, on large activations
    its backward too), flatten, Linear ``hidden``, ReLU,
    Linear ``out_dim``. Vectors: MLP through ``mlp_hidden`` with ``mlp_activation``.
    """
    if len(obs_shape) == 1:
        return mlp([obs_shape[0], *mlp_hidden, out_dim], mlp_activation)
    if len(obs_shape) != 3:
        raise ValueError(f"no encoder for observation shape {tuple(obs_shape)}; expected [C, H, W] or [D]")
    side = _check_image(obs_shape, channels)
    layers: list[nn.Module] = []
    for c_in, c_out in zip([obs_shape[0], *channels[:-1]], channels):
        layers += [nn.Conv2d(c_in, c_out, 4, 2, 1), ConvReLU()]
    layers += [nn.Flatten(), *mlp([channels[-1] * side * side, hidden, out_dim])]
    return nn.Sequential(*layers)


class _Unflatten(nn.Module):
    def __init__(self, shape: Sequence[int]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], *self.shape)


class SpatialBroadcastDecoder(nn.Module):
    """Watters et al. 2019: tile ``z [B, L]`` over the ``H x W`` grid, append x and y coordinate channels
    (``linspace(-1, 1)``), then ``BROADCAST_LAYERS`` conv(64, 5, 'same')-ReLU and a conv(C, 5, 'same') to
    logits ``[B, C, H, W]``."""

    def __init__(self, latent_dim: int, obs_shape: Sequence[int]):
        super().__init__()
        channels, height, width = obs_shape
        grid = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        self.register_buffer("coordinates", torch.stack(grid[::-1])[None], persistent=False)  # x then y
        layers: list[nn.Module] = []
        sizes = [latent_dim + 2] + [BROADCAST_CHANNELS] * BROADCAST_LAYERS
        for c_in, c_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Conv2d(c_in, c_out, 5, padding=2), ConvReLU()]
        layers.append(nn.Conv2d(sizes[-1], channels, 5, padding=2))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        height, width = self.coordinates.shape[-2:]
        tiled = z[:, :, None, None].expand(-1, -1, height, width)
        return self.net(torch.cat([tiled, self.coordinates.expand(len(z), -1, -1, -1)], dim=1))


def build_decoder(latent_dim: int, obs_shape: Sequence[int], channels: Sequence[int], hidden: int,
                  mlp_hidden: Sequence[int], kind: str = "mirror", mlp_activation: str = "relu") -> nn.Module:
    """Network ``[B, latent_dim] -> [B, *obs_shape]`` logits: the mirror of :func:`build_encoder`
    (``kind="mirror"``) or, for images, a :class:`SpatialBroadcastDecoder` (``kind="spatial_broadcast"``)."""
    if kind not in DECODERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {kind!r}")
    if kind == "spatial_broadcast":
        if len(obs_shape) != 3:
            raise ValueError(f"the spatial-broadcast decoder needs image observations [C, H, W], got {tuple(obs_shape)}")
        return SpatialBroadcastDecoder(latent_dim, obs_shape)
    if len(obs_shape) == 1:
        return mlp([latent_dim, *reversed(mlp_hidden), obs_shape[0]], mlp_activation)
    if len(obs_shape) != 3:
        raise ValueError(f"no decoder for observation shape {tuple(obs_shape)}; expected [C, H, W] or [D]")
    side = _check_image(obs_shape, channels)
    rev = list(reversed(channels))
    layers: list[nn.Module] = [*mlp([latent_dim, hidden, rev[0] * side * side]), nn.ReLU(),
                               _Unflatten((rev[0], side, side))]
    for i, (c_in, c_out) in enumerate(zip(rev, [*rev[1:], obs_shape[0]])):
        layers.append(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1))
        if i < len(rev) - 1:
            layers.append(ConvReLU())
    return nn.Sequential(*layers)


class ParallelLinear(nn.Module):
    """``n`` independent linear maps applied in one batched matmul: ``[B, n, in] -> [B, n, out]``.

    Map ``i`` has weight ``weight[i]`` ``[out, in]`` (and ``bias[i]`` ``[out]``), initialised like
    ``nn.Linear`` (Kaiming-uniform with ``a = sqrt(5)``, bias uniform in ``±1/sqrt(in)``), each map
    on its own.
    """

    def __init__(self, n: int, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(n, out_features)) if bias else None
        for i in range(n):
            nn.init.kaiming_uniform_(self.weight[i], a=5 ** 0.5)
        if self.bias is not None:
            bound = 1 / in_features ** 0.5 if in_features else 0.0
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.einsum("bni,noi->bno", x, self.weight)
        return out if self.bias is None else out + self.bias


def parallel_mlp(n: int, sizes: Sequence[int], activation: str = "relu", hidden_bias: bool = True) -> nn.Sequential:
    """``n`` independent MLPs through ``sizes`` run as one: ``[B, n, sizes[0]] -> [B, n, sizes[-1]]``,
    :class:`ParallelLinear` layers with ``activation`` (:data:`MLP_ACTIVATIONS`) between them; with
    ``hidden_bias=False`` only the output layer has a bias."""
    return _stack(sizes, activation, lambda a, b, output: ParallelLinear(n, a, b, bias=hidden_bias or output))
