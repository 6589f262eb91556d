"""SRNet generator and patch discriminator (torch only; no trainer imports).

Layout follows the reference recipe (docs/ARCHITECTURE.md, "SRNet"): base width 32; encoders of two
conv-norm-act blocks then three times [stride-2 conv + two conv-norm-act] at 2x/4x/8x the base width,
four residual bottleneck blocks; decoders mirror them with transposed convolutions.

Unlike the public PyTorch port, every layer uses "same" padding: 3x3 stride-2 convolutions with
padding 1 halve H and W exactly, 3x3 transposed convolutions with padding 1 / output_padding 1 double
them exactly, so every output has exactly the input's H and W (any H, W that are multiples of 8) and
nothing has to be padded afterwards (the port's one-pixel shift does not exist here).

Images are expected in [-1, 1] (RGB); `o_sk` is in [0, 1] (sigmoid), the other outputs in [-1, 1] (tanh).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from ..typedconfig import TypedConfig

NORM_TYPES: tuple[str, ...] = ("batch", "instance", "group", "none")


@dataclass
class SRNetConfig(TypedConfig):
    """Architecture hyper-parameters.

    base: channels of the first encoder stage (32 in the paper); stages use base * width * (1, 2, 4, 8).
    width: multiplier on every channel count (1.0 = paper size; tests use e.g. 0.125).
    in_channels: channels of i_t / i_s (3 = RGB).
    norm: generator normalisation, one of NORM_TYPES.
    negative_slope: LeakyReLU slope.
    n_res_blocks: residual bottleneck blocks after each encoder.
    d_base: channels of the discriminator's first conv (64); then x2, x4, x8, times width.
    d_norm: discriminator normalisation of its inner layers (never on the first or the output layer).
    spectral_norm: wrap every discriminator conv in spectral normalisation.
    sk_prior: initial o_sk probability (the skeleton head's bias starts at logit(sk_prior)). Skeleton
        pixels are ~1-2% of an image; starting at 0.5 everywhere leaves the Dice gradient on the
        background tiny and the skeleton branch learns very slowly.
    """

    base: int = 32
    width: float = 1.0
    in_channels: int = 3
    norm: str = "batch"
    negative_slope: float = 0.2
    n_res_blocks: int = 4
    d_base: int = 64
    d_norm: str = "batch"
    spectral_norm: bool = False
    sk_prior: float = 0.05

    SECTION = "train.model"

    def check(self, path: str) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"{path}.{name} {why}, got {getattr(self, name)!r}")

        for name in ("base", "in_channels", "d_base"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise bad(name, "must be a positive integer")
        if isinstance(self.n_res_blocks, bool) or not isinstance(self.n_res_blocks, int) or self.n_res_blocks < 0:
            raise bad("n_res_blocks", "must be a non-negative integer")
        if isinstance(self.width, bool) or not isinstance(self.width, (int, float)) or not math.isfinite(self.width) \
                or self.width <= 0:
            raise bad("width", "must be a finite number > 0")
        if round(self.base * self.width) < 1:
            raise bad("width", f"base * width = {self.base * self.width:g} leaves no channels")
        for name in ("norm", "d_norm"):
            if getattr(self, name) not in NORM_TYPES:
                raise bad(name, f"must be one of {NORM_TYPES}")
        if isinstance(self.negative_slope, bool) or not isinstance(self.negative_slope, (int, float)) \
                or not 0.0 <= self.negative_slope < 1.0:
            raise bad("negative_slope", "must be a number in [0, 1)")
        if not isinstance(self.spectral_norm, bool):
            raise bad("spectral_norm", "must be a bool")
        if isinstance(self.sk_prior, bool) or not isinstance(self.sk_prior, (int, float)) \
                or not 0.0 < self.sk_prior < 1.0:
            raise bad("sk_prior", "must be a number in (0, 1)")

    def ch(self, mult: int) -> int:
        """Generator channels at `mult` times the base width."""
        return max(1, int(round(self.base * self.width * mult)))

    def d_ch(self, mult: int) -> int:
        """Discriminator channels at `mult` times its base width."""
        return max(1, int(round(self.d_base * self.width * mult)))



# ---------------------------------------------------------------------------------------------
# building blocks


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        groups = max(g for g in range(1, min(32, channels) + 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm={kind!r}: must be one of {NORM_TYPES}")


class ConvNormAct(nn.Sequential):
    """3x3 'same' conv -> norm -> LeakyReLU (bias only when there is no norm to absorb it)."""

    def __init__(self, cin: int, cout: int, norm: str, slope: float) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, 1, 1, bias=(norm == "none")),
            make_norm(norm, cout),
            nn.LeakyReLU(slope, inplace=True),
        )


class Down(nn.Sequential):
    """3x3 stride-2 conv with padding 1 (exactly halves even H, W) + LeakyReLU."""

    def __init__(self, cin: int, cout: int, slope: float) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, 2, 1), nn.LeakyReLU(slope, inplace=True))


class Up(nn.Sequential):
    """3x3 stride-2 transposed conv, padding 1, output_padding 1 (exactly doubles H, W) + LeakyReLU."""

    def __init__(self, cin: int, cout: int, slope: float) -> None:
        super().__init__(nn.ConvTranspose2d(cin, cout, 3, 2, 1, output_padding=1),
                         nn.LeakyReLU(slope, inplace=True))


class ResBlock(nn.Module):
    """Bottleneck residual block: 1x1 (c -> c/4), 3x3, 1x1 (-> c), add, norm, LeakyReLU."""

    def __init__(self, c: int, norm: str, slope: float) -> None:
        super().__init__()
        m = max(1, c // 4)
        self.body = nn.Sequential(
            nn.Conv2d(c, m, 1), nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(m, m, 3, 1, 1), nn.LeakyReLU(slope, inplace=True),
            nn.Conv2d(m, c, 1),
        )
        self.norm = make_norm(norm, c)
        self.act = nn.LeakyReLU(slope, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(x + self.body(x)))


class Encoder(nn.Module):
    """Input (B, cin, H, W) -> (B, 8c, H/8, W/8) after the residual blocks, plus features at 1/2, 1/4."""

    def __init__(self, cfg: SRNetConfig, cin: int) -> None:
        super().__init__()
        n, s = cfg.norm, cfg.negative_slope
        c1, c2, c4, c8 = cfg.ch(1), cfg.ch(2), cfg.ch(4), cfg.ch(8)
        self.stage1 = nn.Sequential(ConvNormAct(cin, c1, n, s), ConvNormAct(c1, c1, n, s))
        self.stage2 = nn.Sequential(Down(c1, c2, s), ConvNormAct(c2, c2, n, s), ConvNormAct(c2, c2, n, s))
        self.stage3 = nn.Sequential(Down(c2, c4, s), ConvNormAct(c4, c4, n, s), ConvNormAct(c4, c4, n, s))
        self.stage4 = nn.Sequential(Down(c4, c8, s), ConvNormAct(c8, c8, n, s), ConvNormAct(c8, c8, n, s))
        self.res = nn.Sequential(*[ResBlock(c8, n, s) for _ in range(cfg.n_res_blocks)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        f2 = self.stage2(self.stage1(x))      # 1/2
        f4 = self.stage3(f2)                   # 1/4
        x = self.res(self.stage4(f4))          # 1/8
        return x, [f2, f4]


class Decoder(nn.Module):
    """(B, cin, H/8, W/8) -> (B, c, H, W); optional skip inputs concatenated at 1/8, 1/4, 1/2.

    Returns the full-resolution features and the decoder's own features at 1/8, 1/4, 1/2.
    """

    def __init__(self, cfg: SRNetConfig, cin: int, skip: tuple[int, int, int] = (0, 0, 0)) -> None:
        super().__init__()
        n, s = cfg.norm, cfg.negative_slope
        c1, c2, c4, c8 = cfg.ch(1), cfg.ch(2), cfg.ch(4), cfg.ch(8)
        self.skip = skip
        self.stage8 = nn.Sequential(ConvNormAct(cin + skip[0], c8, n, s), ConvNormAct(c8, c8, n, s))
        self.up4 = Up(c8, c4, s)
        self.stage4 = nn.Sequential(ConvNormAct(c4 + skip[1], c4, n, s), ConvNormAct(c4, c4, n, s))
        self.up2 = Up(c4, c2, s)
        self.stage2 = nn.Sequential(ConvNormAct(c2 + skip[2], c2, n, s), ConvNormAct(c2, c2, n, s))
        self.up1 = Up(c2, c1, s)
        self.stage1 = nn.Sequential(ConvNormAct(c1, c1, n, s), ConvNormAct(c1, c1, n, s))

    @staticmethod
    def _cat(x: torch.Tensor, f: torch.Tensor | None) -> torch.Tensor:
        return x if f is None else torch.cat((x, f), dim=1)

    def forward(self, x: torch.Tensor, skips: tuple[torch.Tensor | None, ...] = (None, None, None)
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        for have, f in zip(self.skip, skips):
            if bool(have) != (f is not None):
                raise ValueError("decoder skip inputs do not match the skip channels it was built with")
        f8 = self.stage8(self._cat(x, skips[0]))
        f4 = self.stage4(self._cat(self.up4(f8), skips[1]))
        f2 = self.stage2(self._cat(self.up2(f4), skips[2]))
        x = self.stage1(self.up1(f2))
        return x, [f8, f4, f2]


class TextConversion(nn.Module):
    """Separate encoders for i_t and i_s, concatenated; skeleton decoder -> sigmoid o_sk; text decoder
    features concatenated with skeleton decoder features -> conv-norm-act -> conv -> tanh o_t."""

    def __init__(self, cfg: SRNetConfig) -> None:
        super().__init__()
        c1, c2, c8 = cfg.ch(1), cfg.ch(2), cfg.ch(8)
        self.enc_t = Encoder(cfg, cfg.in_channels)
        self.enc_s = Encoder(cfg, cfg.in_channels)
        self.dec_sk = Decoder(cfg, 2 * c8)
        self.sk_out = nn.Conv2d(c1, 1, 3, 1, 1)
        nn.init.constant_(self.sk_out.bias, math.log(cfg.sk_prior / (1.0 - cfg.sk_prior)))
        self.dec_t = Decoder(cfg, 2 * c8)
        self.t_fuse = ConvNormAct(2 * c1, c2, cfg.norm, cfg.negative_slope)
        self.t_out = nn.Conv2d(c2, 3, 3, 1, 1)

    def forward(self, i_t: torch.Tensor, i_s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat((self.enc_t(i_t)[0], self.enc_s(i_s)[0]), dim=1)
        y_sk, _ = self.dec_sk(x)
        o_sk = torch.sigmoid(self.sk_out(y_sk))
        y_t, _ = self.dec_t(x)
        o_t = torch.tanh(self.t_out(self.t_fuse(torch.cat((y_sk, y_t), dim=1))))
        return o_sk, o_t


class BackgroundInpainting(nn.Module):
    """U-Net on i_s -> tanh o_b; exports its decoder features at 1/8, 1/4, 1/2 for the fusion module."""

    def __init__(self, cfg: SRNetConfig) -> None:
        super().__init__()
        self.enc = Encoder(cfg, cfg.in_channels)
        self.dec = Decoder(cfg, cfg.ch(8), skip=(0, cfg.ch(4), cfg.ch(2)))
        self.out = nn.Conv2d(cfg.ch(1), 3, 3, 1, 1)

    def forward(self, i_s: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x, (f2, f4) = self.enc(i_s)
        y, feats = self.dec(x, (None, f4, f2))
        return torch.tanh(self.out(y)), feats


class Fusion(nn.Module):
    """Encoder on o_t; decoder concatenating the inpainting decoder's features -> tanh o_f."""

    def __init__(self, cfg: SRNetConfig) -> None:
        super().__init__()
        self.enc = Encoder(cfg, 3)
        self.dec = Decoder(cfg, cfg.ch(8), skip=(cfg.ch(8), cfg.ch(4), cfg.ch(2)))
        self.out = nn.Conv2d(cfg.ch(1), 3, 3, 1, 1)

    def forward(self, o_t: torch.Tensor, feats: list[torch.Tensor]) -> torch.Tensor:
        x, _ = self.enc(o_t)
        y, _ = self.dec(x, tuple(feats))
        return torch.tanh(self.out(y))


def _check_hw(x: torch.Tensor, name: str) -> None:
    if x.dim() != 4:
        raise ValueError(f"{name}: expected (B, C, H, W), got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % 8 or w % 8:
        raise ValueError(f"{name}: H and W must be multiples of 8, got {h}x{w}")


class Generator(nn.Module):
    """SRNet generator. forward(i_t, i_s) -> dict(o_sk, o_t, o_b, o_f), each with the input's H and W."""

    def __init__(self, cfg: SRNetConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or SRNetConfig()
        self.text = TextConversion(self.cfg)
        self.background = BackgroundInpainting(self.cfg)
        self.fusion = Fusion(self.cfg)

    def forward(self, i_t: torch.Tensor, i_s: torch.Tensor) -> dict[str, torch.Tensor]:
        _check_hw(i_t, "i_t")
        _check_hw(i_s, "i_s")
        if i_t.shape != i_s.shape:
            raise ValueError(f"i_t {tuple(i_t.shape)} and i_s {tuple(i_s.shape)} differ in shape")
        o_sk, o_t = self.text(i_t, i_s)
        o_b, feats = self.background(i_s)
        o_f = self.fusion(o_t, feats)
        return {"o_sk": o_sk, "o_t": o_t, "o_b": o_b, "o_f": o_f}

    @torch.no_grad()
    def predict(self, i_t: torch.Tensor, i_s: torch.Tensor) -> dict[str, torch.Tensor]:
        """Inference: eval mode (BatchNorm running statistics; train-mode BatchNorm at inference gives
        the "black dots" of the notes) and no autograd; the previous mode is restored afterwards."""
        was_training = self.training
        self.eval()
        try:
            return self(i_t, i_s)
        finally:
            self.train(was_training)


class Discriminator(nn.Module):
    """Patch discriminator: 3x3 stride-2 convs d -> 2d -> 4d -> 8d (norm on the inner three), then a
    3x3 conv to 1 channel of raw logits: no normalisation on the output, no sigmoid.

    Inputs are 6 channels: D_b sees cat[t_b or o_b, i_s], D_f sees cat[t_f or o_f, i_t].
    Output (B, 1, H/16, W/16).
    """

    def __init__(self, cfg: SRNetConfig | None = None, in_channels: int = 6) -> None:
        super().__init__()
        self.cfg = cfg = cfg or SRNetConfig()
        s = cfg.negative_slope
        d1, d2, d4, d8 = cfg.d_ch(1), cfg.d_ch(2), cfg.d_ch(4), cfg.d_ch(8)
        sn = nn.utils.parametrizations.spectral_norm if cfg.spectral_norm else (lambda m: m)
        # With spectral norm a following norm layer would undo it; keep the bias then.
        def conv(cin: int, cout: int, stride: int, norm: str) -> nn.Module:
            return sn(nn.Conv2d(cin, cout, 3, stride, 1, bias=(norm == "none")))

        n = cfg.d_norm
        self.body = nn.Sequential(
            conv(in_channels, d1, 2, "none"), nn.LeakyReLU(s, inplace=True),
            conv(d1, d2, 2, n), make_norm(n, d2), nn.LeakyReLU(s, inplace=True),
            conv(d2, d4, 2, n), make_norm(n, d4), nn.LeakyReLU(s, inplace=True),
            conv(d4, d8, 2, n), make_norm(n, d8), nn.LeakyReLU(s, inplace=True),
        )
        self.head = conv(d8, 1, 1, "none")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def count_params(module: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
