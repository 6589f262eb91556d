"""SRNet model, losses and training step (CPU, tiny widths, fast)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from textsynth.srnet.losses import (  # noqa: E402
    LossConfig, VGG19Features, clip_discriminator_weights, dice_loss, gan_d_loss, gram_matrix,
)
from textsynth.srnet.model import Discriminator, Generator, SRNetConfig, count_params  # noqa: E402
from textsynth.srnet.step import make_optimizers, to_device_normalised, train_step  # noqa: E402
from .support.training import torch_threads  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PLATEAU = -math.log(0.01) - math.log(0.99)   # 4.6152: the port's frozen discriminator loss


def _load_port():
    from benchmarks import reference_srnet_port

    return reference_srnet_port


@pytest.fixture(autouse=True)
def _threads():
    with torch_threads(min(2, torch.get_num_threads())):
        yield


TINY = SRNetConfig(width=0.125)


def synthetic_batch(b: int = 4, h: int = 64, w: int = 64, seed: int = 0) -> dict[str, torch.Tensor]:
    """uint8 SRNet batch: white box 'glyphs' on a noisy background; t_sk = 1-px vertical strokes."""
    g = torch.Generator().manual_seed(seed)
    rnd = lambda lo, hi: int(torch.randint(lo, hi, (1,), generator=g))  # noqa: E731
    bg = F.interpolate(torch.rand(b, 3, h // 8, w // 8, generator=g), size=(h, w), mode="bilinear",
                       align_corners=False)
    bg = (bg * 160 + torch.rand(b, 3, h, w, generator=g) * 40).clamp(0, 255)

    def words() -> list[list[tuple[int, int, int, int]]]:
        out = []
        for _ in range(b):
            boxes, x = [], rnd(2, 10)
            for _ in range(rnd(2, 5)):
                bw, bh = rnd(5, 10), rnd(14, 30)
                if x + bw >= w - 2:
                    break
                boxes.append(((h - bh) // 2 + rnd(-4, 5), x, bh, bw))
                x += bw + rnd(2, 6)
            out.append(boxes)
        return out

    src, tgt = words(), words()
    ms, mt, sk = torch.zeros(b, 1, h, w), torch.zeros(b, 1, h, w), torch.zeros(b, 1, h, w)
    for i in range(b):
        for y, x, bh, bw in src[i]:
            ms[i, 0, y:y + bh, x:x + bw] = 1
        for y, x, bh, bw in tgt[i]:
            mt[i, 0, y:y + bh, x:x + bw] = 1
            sk[i, 0, y + 2:y + bh - 2, x + bw // 2] = 1
    white, grey = torch.full((b, 3, h, w), 255.0), torch.full((b, 3, h, w), 127.0)
    u8 = lambda t: t.round().clamp(0, 255).to(torch.uint8)  # noqa: E731
    return {"i_s": u8(bg * (1 - ms) + white * ms), "i_t": u8(grey * (1 - mt)), "t_sk": u8(sk * 255),
            "t_t": u8(grey * (1 - mt) + white * mt), "t_b": u8(bg), "t_f": u8(bg * (1 - mt) + white * mt),
            "mask_t": u8(mt * 255), "mask_s": u8(ms * 255)}


# ------------------------------------------------------------------------------------------------
# model


@pytest.mark.parametrize("width", [64, 128, 200])
def test_every_output_has_the_input_shape(width):
    torch.manual_seed(0)
    gen = Generator(TINY)
    i_t, i_s = torch.rand(2, 3, 64, width) * 2 - 1, torch.rand(2, 3, 64, width) * 2 - 1
    with torch.no_grad():
        out = gen(i_t, i_s)
    assert set(out) == {"o_sk", "o_t", "o_b", "o_f"}
    assert out["o_sk"].shape == (2, 1, 64, width)
    for k in ("o_t", "o_b", "o_f"):
        assert out[k].shape == (2, 3, 64, width), k
    assert 0 <= out["o_sk"].min() and out["o_sk"].max() <= 1
    assert -1 <= out["o_f"].min() and out["o_f"].max() <= 1
    logits = Discriminator(TINY)(torch.cat((out["o_b"], i_s), 1))
    assert logits.shape == (2, 1, 4, width // 16 + (width % 16 > 0))


def test_sizes_must_be_multiples_of_8():
    gen = Generator(TINY)
    with pytest.raises(ValueError, match="multiples of 8"):
        gen(torch.zeros(1, 3, 64, 100), torch.zeros(1, 3, 64, 100))


def test_port_outputs_are_one_pixel_short():
    """The baseline keeps the port's padding-0 defect: 63 x (W-1) outputs."""
    port = _load_port()
    g = port.PortGenerator(width=0.125)
    with torch.no_grad():
        outs = g(torch.zeros(1, 3, 64, 128), torch.zeros(1, 3, 64, 128))
    assert all(o.shape[-2:] == (63, 127) for o in outs)


def test_config_validation_names_the_field():
    for kw, field in [({"width": 0}, "width"), ({"norm": "layer"}, "norm"), ({"d_norm": "x"}, "d_norm"),
                      ({"base": 0}, "base"), ({"n_res_blocks": -1}, "n_res_blocks"),
                      ({"spectral_norm": 1}, "spectral_norm"), ({"sk_prior": 1.0}, "sk_prior"),
                      ({"width": 0.001}, "width")]:
        with pytest.raises(ValueError, match=field):
            SRNetConfig(**kw)
    with pytest.raises(ValueError, match="gan"):
        LossConfig(gan="ragan")
    with pytest.raises(ValueError, match="g_every"):
        LossConfig(g_every=0)
    with pytest.raises(ValueError, match="fus_style"):
        LossConfig(fus_style=-1)
    assert SRNetConfig.from_dict(SRNetConfig(width=0.5).to_dict()) == SRNetConfig(width=0.5)


def test_norm_variants_and_spectral_norm_build_and_run():
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    for norm in ("instance", "group", "none"):
        out = Generator(SRNetConfig(width=0.125, norm=norm))(x, x)
        assert out["o_f"].shape == x.shape
    d = Discriminator(SRNetConfig(width=0.125, spectral_norm=True, d_norm="none"))
    assert d(torch.cat((x, x), 1)).shape == (2, 1, 4, 4)


def test_full_size_parameter_counts():
    gen, d = Generator(), Discriminator()
    assert 18.0e6 < count_params(gen) < 19.5e6        # ~18.9M as in the paper's layout
    assert 1.5e6 < count_params(d) < 1.6e6             # ~1.56M


# ------------------------------------------------------------------------------------------------
# losses


def test_dice_is_per_sample_not_batch_wide():
    """A large perfectly-predicted skeleton must not hide a small, completely missed one."""
    port = _load_port()
    target = torch.zeros(2, 1, 64, 64)
    target[0, 0, 10:50, 5:60] = 1            # big
    target[1, 0, 30, 20:30] = 1              # small
    pred = torch.zeros_like(target)
    pred[0] = target[0]                      # sample 0 perfect, sample 1 empty
    ours = dice_loss(pred, target)
    per_sample = torch.stack([dice_loss(pred[i:i + 1], target[i:i + 1]) for i in range(2)])
    assert per_sample.tolist() == pytest.approx([0.0, 1.0], abs=1e-4)
    assert float(ours) == pytest.approx(float(per_sample.mean()), abs=1e-6)
    batch_wide = float(port.port_dice_loss(target, pred))
    assert batch_wide < 0.01                 # the port's batch-wide Dice barely notices the miss
    assert float(ours) - batch_wide > 0.4


def test_gram_is_normalised_by_c_h_w():
    f = torch.ones(1, 4, 3, 5)
    assert torch.allclose(gram_matrix(f), torch.full((1, 4, 4), 15.0 / (4 * 15)))
    # width-independent for a width-periodic map: doubling W does not change the Gram matrix
    f = torch.rand(2, 8, 4, 6)
    assert torch.allclose(gram_matrix(f), gram_matrix(torch.cat((f, f), 3)), atol=1e-6)


def test_wgan_clipping_leaves_norm_parameters_untouched():
    torch.manual_seed(0)
    d = Discriminator(SRNetConfig(width=0.25))
    d(torch.randn(4, 6, 64, 64))             # populate BN running stats
    bns = [m for m in d.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns
    with torch.no_grad():
        for m in bns:
            m.weight.uniform_(0.5, 2.0)
            m.bias.uniform_(-1.0, 1.0)
        for m in d.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.mul_(100.0)
    before = {k: v.clone() for k, v in d.state_dict().items()}
    n = clip_discriminator_weights(d, 0.01)
    assert n > 0
    after = d.state_dict()
    for name, m in d.named_modules():
        if isinstance(m, nn.Conv2d):
            assert m.weight.abs().max() <= 0.01 + 1e-9, name
    for k, v in before.items():
        is_norm = any(k.startswith(f"{name}.") for name, m in d.named_modules() if isinstance(m, nn.BatchNorm2d))
        if is_norm:
            assert torch.equal(after[k], v), f"{k} was modified"
    # spectral-norm parametrised convs are clamped on their underlying weight
    dsn = Discriminator(SRNetConfig(width=0.25, spectral_norm=True))
    with torch.no_grad():
        dsn.head.parametrizations.weight.original.mul_(100.0)
    clip_discriminator_weights(dsn, 0.01)
    assert dsn.head.parametrizations.weight.original.abs().max() <= 0.01 + 1e-9


def test_port_discriminator_is_frozen_at_4_6152_ours_learns():
    """docs/ARCHITECTURE.md ("SRNet"): the port's D ends in BatchNorm(1) with every parameter clamped to +-0.01 and
    is trained with -log(clamp(D(real))) - log(clamp(1 - D(fake))). In train mode its output per batch
    averages to the BN shift (<= 0.01), so by Jensen the loss cannot go below -ln 0.01 - ln 0.99 =
    4.6152 however separable the data. Our D (raw logits, BCE with logits = the same loss written on
    sigmoid probabilities, no clamping) separates the same data and its loss falls far below.
    """
    port = _load_port()
    torch.manual_seed(0)
    b = 8
    cond = torch.rand(b, 3, 64, 64) * 2 - 1
    real_img = F.interpolate(torch.rand(b, 3, 8, 8) * 2 - 1, size=(64, 64), mode="bilinear", align_corners=False)
    fake_img = torch.rand(b, 3, 64, 64) * 2 - 1
    real, fake = torch.cat((real_img, cond), 1), torch.cat((fake_img, cond), 1)

    ours = Discriminator(SRNetConfig(width=0.25))
    opt = torch.optim.Adam(ours.parameters(), lr=1e-3)
    theirs = port.PortDiscriminator(6, width=0.25)
    opt_p = torch.optim.Adam(theirs.parameters(), lr=1e-3)
    ours_l, port_l = [], []
    for _ in range(80):
        opt.zero_grad(set_to_none=True)
        loss = gan_d_loss("bce", ours(real), ours(fake))
        loss.backward()
        opt.step()
        ours_l.append(loss.item())
        port_l.append(port.port_d_step(theirs, opt_p, real, fake))

    assert ours_l[0] == pytest.approx(2 * math.log(2), abs=0.3)
    assert max(ours_l[-10:]) < 0.2                       # learned: far from 4.6152 and from its start
    tail = port_l[-20:]
    assert min(port_l) >= PLATEAU - 1e-3                  # never below the bound
    assert max(tail) == pytest.approx(PLATEAU, abs=0.01)  # and stuck on it
    # what it outputs: the constant 0.01 whatever the input
    theirs.train()
    with torch.no_grad():
        out_r, out_f = theirs(real), theirs(fake)
    assert out_r.mean().item() == pytest.approx(0.01, abs=1e-3)
    assert out_f.mean().item() == pytest.approx(0.01, abs=1e-3)


# ------------------------------------------------------------------------------------------------
# VGG19


def _torchvision_style_vgg19_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with torchvision's vgg19() key layout (features.N.*, classifier.*)."""
    g = torch.Generator().manual_seed(seed)
    layout = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M")
    sd, idx, cin = {}, 0, 3
    for v in layout:
        if v == "M":
            idx += 1
            continue
        sd[f"features.{idx}.weight"] = torch.randn(v, cin, 3, 3, generator=g) * 0.01
        sd[f"features.{idx}.bias"] = torch.randn(v, generator=g) * 0.01
        idx += 2
        cin = v
    sd["classifier.0.weight"] = torch.zeros(8, 4)      # (shape irrelevant: ignored)
    sd["classifier.0.bias"] = torch.zeros(8)
    return sd


def test_vgg19_loads_torchvision_state_dict_pth_and_safetensors(tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    sd = _torchvision_style_vgg19_state()
    pth, st = tmp_path / "vgg19.pth", tmp_path / "vgg19.safetensors"
    torch.save(sd, pth)
    safetensors_torch.save_file(sd, str(st))
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    outs = []
    for path in (pth, st):
        vgg = VGG19Features.from_file(path)
        assert torch.equal(vgg.features[28].weight, sd["features.28.weight"])
        assert torch.equal(vgg.features[0].bias, sd["features.0.bias"])
        assert not any(p.requires_grad for p in vgg.parameters())
        vgg.train()
        assert not vgg.training
        with torch.no_grad():
            feats = vgg(x)
        assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]
        assert [f.shape[-1] for f in feats] == [64, 32, 16, 8, 4]
        outs.append(feats)
    for a, b in zip(*outs):
        assert torch.equal(a, b)


def test_vgg19_rejects_wrong_files_naming_them(tmp_path):
    wrong = tmp_path / "not_vgg.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(ValueError, match="not_vgg.pth") as ei:
        VGG19Features.from_file(wrong)
    assert "VGG19" in str(ei.value)

    sd = _torchvision_style_vgg19_state()
    sd["features.0.weight"] = torch.zeros(64, 1, 3, 3)   # right keys, wrong shape
    bad_shape = tmp_path / "bad_shape.pth"
    torch.save(sd, bad_shape)
    with pytest.raises(ValueError, match="bad_shape.pth.*features.0.weight"):
        VGG19Features.from_file(bad_shape)

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"this is not a safetensors file")
    with pytest.raises(ValueError, match="garbage.safetensors"):
        VGG19Features.from_file(garbage)

    text = tmp_path / "weights.pth"
    text.write_text("hello")
    with pytest.raises(ValueError, match="weights.pth"):
        VGG19Features.from_file(text)

    with pytest.raises(FileNotFoundError, match="missing.pth"):
        VGG19Features.from_file(tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="vgg.npz"):
        (tmp_path / "vgg.npz").write_bytes(b"")
        VGG19Features.from_file(tmp_path / "vgg.npz")


# ------------------------------------------------------------------------------------------------
# training step


def test_to_device_normalised_ranges():
    batch = synthetic_batch(b=2)
    x = to_device_normalised(batch, "cpu", channels_last=True)
    for k in ("i_s", "i_t", "t_t", "t_b", "t_f"):
        assert x[k].dtype == torch.float32 and x[k].min() >= -1 and x[k].max() <= 1
        assert x[k].is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(x["i_t"][batch["i_t"] == 127], torch.tensor(127 / 127.5 - 1), atol=1e-6)
    for k in ("t_sk", "mask_t", "mask_s"):
        assert x[k].min() >= 0 and x[k].max() == 1
    with pytest.raises(TypeError):
        to_device_normalised({"i_s": batch["i_s"].to(torch.int32)}, "cpu")
    with pytest.raises(ValueError, match="t_sk"):
        to_device_normalised({"t_sk": batch["i_s"]}, "cpu")


def _tiny_setup(seed: int = 0, lr: float = 3e-3):
    torch.manual_seed(seed)
    gen, d_b, d_f = Generator(TINY), Discriminator(TINY), Discriminator(TINY)
    opt_g, opt_d = make_optimizers(gen, d_b, d_f, lr=lr)
    return gen, d_b, d_f, opt_g, opt_d


def test_train_steps_reduce_l1_and_dice():
    batch = synthetic_batch(b=4)
    gen, d_b, d_f, opt_g, opt_d = _tiny_setup()
    cfg = LossConfig()
    hist = [train_step(gen, d_b, d_f, opt_g, opt_d, batch, cfg, None, step=i) for i in range(40)]
    assert all(h["g_updated"] == 1.0 for h in hist)
    assert "f_perc" not in hist[0] and "f_style" not in hist[0]      # no VGG: terms absent
    first = hist[0]
    last = {k: sum(h[k] for h in hist[-5:]) / 5 for k in ("t_l1", "b_l1", "f_l1", "t_dice")}
    l1_first = first["t_l1"] + first["b_l1"] + first["f_l1"]
    l1_last = last["t_l1"] + last["b_l1"] + last["f_l1"]
    assert l1_last < 0.75 * l1_first, (first, last)
    for k in ("t_l1", "b_l1", "f_l1"):
        assert last[k] < 0.9 * first[k], (k, first[k], last[k])
    assert last["t_dice"] < first["t_dice"] - 0.1, (first["t_dice"], last["t_dice"])
    assert all(math.isfinite(v) for h in hist for v in h.values())


def test_g_every_schedule_and_gan_types():
    batch = synthetic_batch(b=2)
    for gan in ("lsgan", "hinge", "wgan", "bce"):
        gen, d_b, d_f, opt_g, opt_d = _tiny_setup()
        cfg = LossConfig(gan=gan, g_every=2)
        g_before = [p.detach().clone() for p in gen.parameters()]
        r0 = train_step(gen, d_b, d_f, opt_g, opt_d, batch, cfg, step=0)
        assert r0["g_updated"] == 0.0 and "g_total" not in r0
        assert all(torch.equal(a, p) for a, p in zip(g_before, gen.parameters()))   # G untouched
        r1 = train_step(gen, d_b, d_f, opt_g, opt_d, batch, cfg, step=1)
        assert r1["g_updated"] == 1.0 and math.isfinite(r1["g_total"])
        assert not all(torch.equal(a, p) for a, p in zip(g_before, gen.parameters()))
        # d_steps_per_g overrides the config
        r2 = train_step(gen, d_b, d_f, opt_g, opt_d, batch, cfg, step=2, d_steps_per_g=1)
        assert r2["g_updated"] == 1.0
        assert all(p.requires_grad for p in d_b.parameters())        # restored after the G update
        if gan == "wgan":
            for m in list(d_b.modules()) + list(d_f.modules()):
                if isinstance(m, nn.Conv2d):
                    assert m.weight.abs().max() <= cfg.wgan_clip + 1e-9
            bn = next(m for m in d_b.modules() if isinstance(m, nn.BatchNorm2d))
            assert bn.weight.abs().max() > cfg.wgan_clip                # BN scale never clamped


def test_train_step_with_vgg_adds_perceptual_and_style():
    batch = synthetic_batch(b=2)
    gen, d_b, d_f, opt_g, opt_d = _tiny_setup()
    vgg = VGG19Features()
    r = train_step(gen, d_b, d_f, opt_g, opt_d, batch, LossConfig(), vgg, step=0)
    assert r["f_perc"] > 0 and r["f_style"] > 0
    assert all(p.grad is None for p in vgg.parameters())                  # VGG stays frozen


def test_predict_uses_eval_mode_and_restores_it():
    torch.manual_seed(0)
    gen = Generator(TINY)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    gen.train()
    for _ in range(3):                       # move the BN running statistics away from their init
        gen(x, x)
    out = gen.predict(x, x)
    assert gen.training
    gen.eval()
    with torch.no_grad():
        ref = gen(x, x)
    assert all(torch.equal(out[k], ref[k]) for k in out)
    assert not out["o_f"].requires_grad


def test_bench_train_quick_runs(capsys):
    from benchmarks import bench_train

    res = bench_train.main(["--quick"])
    rows = [r for r in res["results"] if "port" in r]
    assert rows and all(r["ratio_wall"] > 0 for r in rows)
    assert '"results"' in capsys.readouterr().out


def test_grad_sync_is_called_before_each_optimiser_step():
    batch = synthetic_batch(b=2)
    gen, d_b, d_f, opt_g, opt_d = _tiny_setup()
    calls = []

    def sync(params):
        calls.append(len(params))
        assert all(p.grad is not None for p in params)   # after backward, before the step
        for p in params:
            p.grad.zero_()                               # a sync that zeroes: nothing may move

    g0 = [p.detach().clone() for p in gen.parameters()]
    d0 = [p.detach().clone() for p in d_b.parameters()]
    train_step(gen, d_b, d_f, opt_g, opt_d, batch, LossConfig(), step=0, grad_sync=sync)
    assert calls == [len(list(d_b.parameters())) * 2, len(list(gen.parameters()))]
    # Adam with zero gradients from a fresh state leaves parameters unchanged
    assert all(torch.equal(a, p) for a, p in zip(g0, gen.parameters()))
    assert all(torch.equal(a, p) for a, p in zip(d0, d_b.parameters()))
