"""Baseline for benchmarks and tests: a re-implementation of the public PyTorch SRNet port
(Niwhskal/SRNet, later lksshw/SRNet) as described in docs/ARCHITECTURE.md ("SRNet"). Written from that
description; deliberately keeps the port's behaviour, defects included, because it is what we measure
against and what the tests show to be broken:

- stride-2 convolutions and 3x3 stride-2 transposed convolutions with padding 0: a 64 x W input gives
  63 x (W-1) outputs, which the training step pads with one zero row on top and one zero column on the
  left (every output is shifted by one pixel);
- discriminators end in BatchNorm on their 1-channel output, with no sigmoid; after every D update all
  D parameters (BatchNorm scale and shift included) are clamped to +-0.01, and the loss is BCE written
  on the raw output, -log(clamp(x, eps, 1)) - log(clamp(1 - x, eps, 1)): the best such D outputs the
  constant 0.01, loss -ln 0.01 - ln 0.99 = 4.6152;
- Dice over the whole batch; style loss normalised by N*C*H (no width);
- per iteration: D step (generator forward without autograd, D on real and fake in separate calls),
  then G step (a second generator forward, D again on the outputs, VGG19 on cat(t_f, o_f) with the VGG
  weights left trainable, so VGG weight gradients are computed and accumulated every step);
- Adam lr 1e-4, betas (0.9, 0.999), default (per-tensor) implementation; gradients zero-filled.

One liberty: the port splits the VGG features of cat(t_f, o_f) with torch.split(f, 2), i.e. into
chunks of 2 samples, so with batch 8 its perceptual/style losses compare t_f samples with other t_f
samples. Here the halves (t_f vs o_f) are compared, as intended; the amount of computation is the same
(the VGG weight gradients force a full backward over the 2B batch either way).

VGG19 is randomly initialised here (weights do not matter for timing).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

PORT_EPS = 1e-8
SLOPE = 0.2


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, SLOPE)


class PortCBR(nn.Module):
    """conv 3x3 pad 1 (with bias) -> BN -> leaky ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, 1, 1)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _lrelu(self.bn(self.conv(x)))


class PortRes(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(c, c // 4, 1)
        self.c2 = nn.Conv2d(c // 4, c // 4, 3, 1, 1)
        self.c3 = nn.Conv2d(c // 4, c, 1)
        self.bn = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.c3(_lrelu(self.c2(_lrelu(self.c1(x)))))
        return _lrelu(self.bn(x + y))


class PortEncoder(nn.Module):
    def __init__(self, cin: int, c: int) -> None:
        super().__init__()
        self.b1 = nn.Sequential(PortCBR(cin, c), PortCBR(c, c))
        self.p1 = nn.Conv2d(c, 2 * c, 3, 2, 0)                 # padding 0: H -> (H-3)//2 + 1
        self.b2 = nn.Sequential(PortCBR(2 * c, 2 * c), PortCBR(2 * c, 2 * c))
        self.p2 = nn.Conv2d(2 * c, 4 * c, 3, 2, 0)
        self.b3 = nn.Sequential(PortCBR(4 * c, 4 * c), PortCBR(4 * c, 4 * c))
        self.p3 = nn.Conv2d(4 * c, 8 * c, 3, 2, 0)
        self.b4 = nn.Sequential(PortCBR(8 * c, 8 * c), PortCBR(8 * c, 8 * c))
        self.res = nn.Sequential(*[PortRes(8 * c) for _ in range(4)])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.b1(x)
        f_half = self.b2(_lrelu(self.p1(x)))
        f_quarter = self.b3(_lrelu(self.p2(f_half)))
        x = self.b4(_lrelu(self.p3(f_quarter)))
        return self.res(x), [f_quarter, f_half]


class PortDecoder(nn.Module):
    """in_mult multiplies every fused stage's input (concatenations at 1/8, 1/4, 1/2); mid_mult only
    the 1/4 and 1/2 stages (the U-Net skips of the inpainting module)."""

    def __init__(self, cin: int, c: int, in_mult: int = 1, mid_mult: int = 1) -> None:
        super().__init__()
        self.b1 = nn.Sequential(PortCBR(in_mult * cin, 8 * c), PortCBR(8 * c, 8 * c))
        self.u1 = nn.ConvTranspose2d(8 * c, 4 * c, 3, 2, 0)     # H -> 2H + 1
        self.b2 = nn.Sequential(PortCBR(in_mult * mid_mult * 4 * c, 4 * c), PortCBR(4 * c, 4 * c))
        self.u2 = nn.ConvTranspose2d(4 * c, 2 * c, 3, 2, 0)
        self.b3 = nn.Sequential(PortCBR(in_mult * mid_mult * 2 * c, 2 * c), PortCBR(2 * c, 2 * c))
        self.u3 = nn.ConvTranspose2d(2 * c, c, 3, 2, 0)
        self.b4 = nn.Sequential(PortCBR(c, c), PortCBR(c, c))

    def forward(self, x: torch.Tensor, fuse: list[torch.Tensor | None] | None = None
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        fuse = fuse or [None, None, None]
        if fuse[0] is not None:
            x = torch.cat((x, fuse[0]), 1)
        f1 = self.b1(x)
        x = _lrelu(self.u1(f1))
        if fuse[1] is not None:
            x = torch.cat((x, fuse[1]), 1)
        f2 = self.b2(x)
        x = _lrelu(self.u2(f2))
        if fuse[2] is not None:
            x = torch.cat((x, fuse[2]), 1)
        f3 = self.b3(x)
        x = self.b4(_lrelu(self.u3(f3)))
        return x, [f1, f2, f3]


class PortGenerator(nn.Module):
    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c = max(1, int(round(32 * width)))
        self.c = c
        self.t_enc, self.s_enc = PortEncoder(3, c), PortEncoder(3, c)
        self.sk_dec, self.t_dec = PortDecoder(16 * c, c), PortDecoder(16 * c, c)
        self.sk_out = nn.Conv2d(c, 1, 3, 1, 1)
        self.t_cbr = PortCBR(2 * c, 2 * c)
        self.t_out = nn.Conv2d(2 * c, 3, 3, 1, 1)
        self.b_enc = PortEncoder(3, c)
        self.b_dec = PortDecoder(8 * c, c, mid_mult=2)
        self.b_out = nn.Conv2d(c, 3, 3, 1, 1)
        self.f_enc = PortEncoder(3, c)
        self.f_dec = PortDecoder(8 * c, c, in_mult=2)
        self.f_out = nn.Conv2d(c, 3, 3, 1, 1)

    def forward(self, i_t: torch.Tensor, i_s: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = torch.cat((self.t_enc(i_t)[0], self.s_enc(i_s)[0]), 1)
        y_sk, _ = self.sk_dec(x)
        o_sk = torch.sigmoid(self.sk_out(y_sk))
        y_t, _ = self.t_dec(x)
        o_t = torch.tanh(self.t_out(self.t_cbr(torch.cat((y_sk, y_t), 1))))
        xb, enc_feats = self.b_enc(i_s)
        yb, fs = self.b_dec(xb, [None] + enc_feats)
        o_b = torch.tanh(self.b_out(yb))
        xf, _ = self.f_enc(o_t)
        yf, _ = self.f_dec(xf, fs)
        o_f = torch.tanh(self.f_out(yf))
        return o_sk, o_t, o_b, o_f


class PortDiscriminator(nn.Module):
    """conv s2 (pad 0) 64 -> 128 -> 256 -> 512 with BN, conv to 1 channel, then BatchNorm(1): no sigmoid."""

    def __init__(self, in_channels: int = 6, width: float = 1.0) -> None:
        super().__init__()
        d = max(1, int(round(64 * width)))
        self.c1 = nn.Conv2d(in_channels, d, 3, 2, 0)
        self.c2 = nn.Conv2d(d, 2 * d, 3, 2, 0)
        self.bn2 = nn.BatchNorm2d(2 * d)
        self.c3 = nn.Conv2d(2 * d, 4 * d, 3, 2, 0)
        self.bn3 = nn.BatchNorm2d(4 * d)
        self.c4 = nn.Conv2d(4 * d, 8 * d, 3, 2, 0)
        self.bn4 = nn.BatchNorm2d(8 * d)
        self.c5 = nn.Conv2d(8 * d, 1, 3, 1, 1)
        self.bn5 = nn.BatchNorm2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _lrelu(self.c1(x))
        x = _lrelu(self.bn2(self.c2(x)))
        x = _lrelu(self.bn3(self.c3(x)))
        x = _lrelu(self.bn4(self.c4(x)))
        return self.bn5(self.c5(x))


_VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


class PortVGG(nn.Module):
    """The port's VGG19: the full `features` stack (all 37 layers run), weights left trainable,
    fed [-1, 1] images directly; returns relu1_1..relu5_1 (indices 1, 6, 11, 20, 29)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in _VGG19_LAYOUT:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, 1, 1), nn.ReLU(inplace=True)]
                cin = int(v)
        self.features = nn.ModuleList(layers).eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, m in enumerate(self.features):
            x = m(x)
            if i in (1, 6, 11, 20, 29):
                out.append(x)
        return out


# ------------------------------------------------------------------------------------------------
# losses, as the port writes them


def port_d_loss(x_true: torch.Tensor, x_fake: torch.Tensor) -> torch.Tensor:
    return -torch.mean(torch.log(torch.clamp(x_true, PORT_EPS, 1.0))
                       + torch.log(torch.clamp(1.0 - x_fake, PORT_EPS, 1.0)))


def port_g_gan_loss(x_pred: torch.Tensor) -> torch.Tensor:
    return -torch.mean(torch.log(torch.clamp(x_pred, PORT_EPS, 1.0)))


def port_dice_loss(target: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """Dice over the whole batch (one number for all samples together)."""
    p, t = pred.reshape(-1), target.reshape(-1)
    return 1.0 - (2.0 * (p * t).sum() + PORT_EPS) / (p.sum() + t.sum() + PORT_EPS)


def _port_gram(x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    m = x.reshape(b, c, h * w)
    return torch.matmul(m, m.transpose(1, 2)) / (h * w * c)


def port_vgg_losses(feats: list[torch.Tensor], batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    per, sty = [], []
    for f in feats:
        true, pred = f[:batch_size], f[batch_size:]
        per.append(torch.mean(torch.abs(true - pred)))
        norm = 1.0 / (true.shape[0] * true.shape[1] * true.shape[2])     # N*C*H: no width
        sty.append(norm * torch.mean(torch.abs(_port_gram(true) - _port_gram(pred))))
    return torch.stack(per).sum(), torch.stack(sty).sum()


@torch.no_grad()
def port_clip(module: nn.Module, c: float = 0.01) -> None:
    """The port's clipping: every parameter, BatchNorm scale and shift included."""
    for p in module.parameters():
        p.clamp_(-c, c)


def port_d_step(d: nn.Module, opt: torch.optim.Optimizer, real: torch.Tensor, fake: torch.Tensor) -> float:
    """One port-style D update on given inputs: separate real/fake calls, clamped BCE, clamp all params."""
    d.zero_grad(set_to_none=False)
    loss = port_d_loss(d(real), d(fake))
    loss.backward()
    opt.step()
    port_clip(d)
    return float(loss.item())


# ------------------------------------------------------------------------------------------------
# model + training step


@dataclass
class PortState:
    G: PortGenerator
    D1: PortDiscriminator
    D2: PortDiscriminator
    vgg: PortVGG
    opt_g: torch.optim.Adam
    opt_d1: torch.optim.Adam
    opt_d2: torch.optim.Adam
    step: int = 0
    weights: dict[str, float] = field(default_factory=lambda: {
        "lt": 1.0, "lt_alpha": 1.0, "lb": 1.0, "lb_beta": 10.0,
        "lf": 1.0, "lf_theta_1": 10.0, "lf_theta_2": 1.0, "lf_theta_3": 500.0})


def make_port(width: float = 1.0, lr: float = 1e-4) -> PortState:
    G, D1, D2, vgg = PortGenerator(width), PortDiscriminator(6, width), PortDiscriminator(6, width), PortVGG()
    adam = lambda m: torch.optim.Adam(m.parameters(), lr=lr, betas=(0.9, 0.999))  # noqa: E731
    for p in G.parameters():          # the port starts with G frozen, D trainable
        p.requires_grad_(False)
    return PortState(G, D1, D2, vgg, adam(G), adam(D1), adam(D2))


def _requires_grad(m: nn.Module, flag: bool) -> None:
    for p in m.parameters():
        p.requires_grad_(flag)


def _normalise(batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    out = {}
    for k in ("i_t", "i_s", "t_sk", "t_t", "t_b", "t_f", "mask_t"):
        v = batch[k]
        if v.dtype == torch.uint8:
            v = v.float() / (255.0 if k in ("t_sk", "mask_t") else 127.5)
            if k not in ("t_sk", "mask_t"):
                v = v - 1.0
        out[k] = v
    return out


_pad = nn.ZeroPad2d((1, 0, 1, 0))     # 63 x (W-1) -> 64 x W: one zero row on top, one column on the left


def port_train_step(state: PortState, batch: Mapping[str, Any]) -> dict[str, float]:
    """One port iteration: D step then G step. batch: uint8 dict (or already-normalised floats)."""
    x = _normalise(batch)
    i_t, i_s, t_sk, t_t, t_b, t_f = x["i_t"], x["i_s"], x["t_sk"], x["t_t"], x["t_b"], x["t_f"]
    G, D1, D2, w = state.G, state.D1, state.D2, state.weights
    bs = i_t.shape[0]

    # ---- D step (G frozen: forward without a graph into G's weights)
    D1.zero_grad(set_to_none=False)
    D2.zero_grad(set_to_none=False)
    o_sk, o_t, o_b, o_f = (_pad(o) for o in G(i_t, i_s))
    o_db_true, o_db_pred = D1(torch.cat((t_b, i_s), 1)), D1(torch.cat((o_b, i_s), 1))
    o_df_true, o_df_pred = D2(torch.cat((t_f, i_t), 1)), D2(torch.cat((o_f, i_t), 1))
    db_loss = port_d_loss(o_db_true, o_db_pred)
    df_loss = port_d_loss(o_df_true, o_df_pred)
    db_loss.backward()
    df_loss.backward()
    state.opt_d1.step()
    state.opt_d2.step()
    port_clip(D1)
    port_clip(D2)

    # ---- G step
    _requires_grad(G, True)
    _requires_grad(D1, False)
    _requires_grad(D2, False)
    state.opt_g.zero_grad(set_to_none=False)
    o_sk, o_t, o_b, o_f = (_pad(o) for o in G(i_t, i_s))
    o_db_pred = D1(torch.cat((o_b, i_s), 1))
    o_df_pred = D2(torch.cat((o_f, i_t), 1))
    feats = state.vgg(torch.cat((t_f, o_f), 0))
    l_t_sk = w["lt_alpha"] * port_dice_loss(t_sk, o_sk)
    l_t_l1 = torch.mean(torch.abs(t_t - o_t))
    l_b_gan = port_g_gan_loss(o_db_pred)
    l_b_l1 = w["lb_beta"] * torch.mean(torch.abs(t_b - o_b))
    l_f_gan = port_g_gan_loss(o_df_pred)
    l_f_l1 = w["lf_theta_1"] * torch.mean(torch.abs(t_f - o_f))
    per, sty = port_vgg_losses(feats, bs)
    l_f = l_f_gan + w["lf_theta_2"] * per + w["lf_theta_3"] * sty + l_f_l1
    g_loss = w["lt"] * (l_t_l1 + l_t_sk) + w["lb"] * (l_b_gan + l_b_l1) + w["lf"] * l_f
    g_loss.backward()
    state.opt_g.step()
    _requires_grad(G, False)
    _requires_grad(D1, True)
    _requires_grad(D2, True)
    state.step += 1
    return {"d_b": db_loss.item(), "d_f": df_loss.item(), "g_total": g_loss.item(),
            "t_dice": l_t_sk.item(), "t_l1": l_t_l1.item()}
