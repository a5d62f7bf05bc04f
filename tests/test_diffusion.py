"""Diffusion: schedule algebra, DDIM with an oracle, guidance, and the Tortoise decoder learns."""
import pytest
import torch
from torch import nn

from audiokit.nn.diffusion import DDPM, CosineSchedule, RectifiedFlow, ddim_sample, guided, make_process
from audiokit.tortoise.diffusion import DiffusionDecoder


def test_cosine_schedule_and_target_conversions():
    s = CosineSchedule(1000)
    ab = s.alpha_bar
    assert ab[0] > 0.999 and ab[-1] < 1e-3 and (ab[1:] <= ab[:-1]).all()
    x0, noise = torch.randn(3, 5, 4), torch.randn(3, 5, 4)
    t = torch.tensor([0, 500, 999])
    xt = s.q_sample(x0, t, noise)
    for pred in ("eps", "v"):
        est_x0, est_eps = s.to_x0_eps(xt, t, s.target(x0, noise, t, pred), pred)
        assert torch.allclose(est_x0[:2], x0[:2], atol=1e-3) and torch.allclose(est_eps[1:], noise[1:], atol=1e-3)
    with pytest.raises(ValueError):
        s.target(x0, noise, t, "x")


@pytest.mark.parametrize("pred, eta", [("eps", 0.0), ("v", 0.0), ("v", 1.0)])
def test_ddim_with_an_oracle_recovers_the_data(pred, eta):
    s = CosineSchedule(1000)
    x0 = torch.randn(2, 7, 3)

    def oracle(x_t, t):  # the network that knows x0: outputs the target implied by x_t
        ab = s.alpha_bar[t].view(-1, 1, 1)
        eps = (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()
        return s.target(x0, eps, t, pred)

    out = ddim_sample(oracle, s, x0.shape, steps=10, prediction=pred, eta=eta, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, x0, atol=1e-3)
    with pytest.raises(ValueError):
        ddim_sample(oracle, s, x0.shape, steps=0)


def test_rectified_flow_paths_targets_and_processes():
    f = make_process("flow", 1000)
    assert isinstance(f, RectifiedFlow) and isinstance(make_process("v"), DDPM) and make_process("eps").prediction == "eps"
    x0, noise = torch.randn(3, 5, 4), torch.randn(3, 5, 4)
    t = torch.tensor([0.0, 0.25, 1.0])
    xt = f.noisy(x0, t, noise)
    assert torch.equal(xt[0], x0[0]) and torch.equal(xt[2], noise[2])
    assert torch.allclose(xt[1], 0.75 * x0[1] + 0.25 * noise[1])
    h = 1e-3  # the target is the path's velocity d x_t / dt
    assert torch.allclose((f.noisy(x0, t + h, noise) - xt) / h, f.target(x0, noise, t), atol=1e-2)
    assert f.net_time(torch.tensor([0.5])).item() == 500.0 and f.level(t).tolist() == [0.0, 0.25, 1.0]
    assert make_process("v", 100).level(torch.tensor([50])).item() == 0.5
    d = f.draw(1000, torch.Generator().manual_seed(0))
    assert d.min() >= 0 and d.max() < 1 and abs(d.mean().item() - 0.5) < 0.05
    with pytest.raises(ValueError, match="solver"):
        RectifiedFlow(solver="rk4")
    with pytest.raises(ValueError, match="prediction"):
        make_process("x0")


@pytest.mark.parametrize("solver", ["euler", "midpoint"])
def test_flow_sampling_with_an_oracle_follows_the_straight_path(solver):
    f = RectifiedFlow(1000, solver)
    x0 = torch.randn(2, 7, 3)
    seen = []

    def oracle(x_t, t_net):  # the exact velocity towards x0 on a straight path: (x_t - x0) / t
        seen.append(t_net[0].item())
        t = (t_net / 1000).view(-1, 1, 1)
        return (x_t - x0) / t

    for steps in (1, 4):
        seen.clear()
        out = f.sample(oracle, x0.shape, steps, generator=torch.Generator().manual_seed(0))
        assert torch.allclose(out, x0, atol=1e-5)  # straight paths: any number of steps is exact
        assert len(seen) == steps * (1 if solver == "euler" else 2) and seen[0] == 1000.0
    a = f.sample(lambda x, t: torch.zeros_like(x), x0.shape, 3, generator=torch.Generator().manual_seed(5))
    b = f.sample(lambda x, t: torch.zeros_like(x), x0.shape, 3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.shape == x0.shape
    with pytest.raises(ValueError, match="steps"):
        f.sample(oracle, x0.shape, 0)


@pytest.mark.parametrize("prediction", ["eps", "v", "flow"])
def test_one_step_estimate_with_the_true_target_is_the_data(prediction):
    """``x0_from`` inverts ``noisy`` given the exact target at any level ``time_at`` gives (and ``level`` of it is
    that level): the diagnosis's "denoise from truth noised to t" rows rest on it."""
    s = make_process(prediction, 1000)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 5, 4, generator=g), torch.randn(3, 5, 4, generator=g)
    for level in (0.0, 0.3, 0.9):
        t = s.time_at(level, 3)
        assert t.shape == (3,) and torch.allclose(s.level(t), torch.full((3,), level), atol=1e-3)
        x_t = s.noisy(x0, t, noise)
        assert torch.allclose(s.x0_from(x_t, t, s.target(x0, noise, t)), x0, atol=1e-3)
    assert not torch.allclose(s.x0_from(x_t, t, torch.zeros_like(x0)), x0, atol=1e-2)


def test_guidance_mixes_conditional_and_unconditional():
    calls = []

    def model(x, t, drop):
        calls.append(drop)
        return x + (0.0 if drop else 1.0)

    x = torch.zeros(1, 2)
    assert torch.equal(guided(model, 1.0)(x, None), x + 1) and calls == [False]
    assert torch.equal(guided(model, 3.0)(x, None), x + 3)

    def batched_model(x, t, drop):  # per-row drop; counts rows seen
        calls.append(x.shape[0])
        keep = torch.ones(x.shape[0]) if drop is None else (~drop).float()
        return x * 2 + keep[:, None] * (t[:, None] + 1.0)

    calls.clear()
    x, t = torch.randn(3, 2), torch.tensor([0.0, 1.0, 2.0])
    plain = guided(lambda x, t, drop: x * 2 + (0.0 if drop else 1.0) * (t[:, None] + 1.0), 2.5)(x, t)
    assert torch.allclose(guided(batched_model, 2.5, batched=True)(x, t), plain) and calls == [6]  # one pass of 2B rows
    assert torch.allclose(guided(batched_model, 1.0, batched=True)(x, t), x * 2 + t[:, None] + 1) and calls == [6, 3]


@pytest.mark.parametrize("prediction", ["v", "flow"])
def test_decoder_learns_and_ignores_padding_and_drops_conditioning(prediction):
    torch.manual_seed(0)
    net = DiffusionDecoder(latent_dim=6, cond_dim=8, voice_dim=5, codebook_size=16, d_model=32, n_head=4, n_layer=2)
    s = make_process(prediction, 100)
    codes = torch.randint(0, 16, (4, 12))
    x0 = torch.randn(16, 6)[codes]  # latents determined by the codes: learnable
    voice = torch.randn(4, 5)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(150):
        t = s.draw(4, g)
        noise = torch.randn(x0.shape, generator=g)
        out = net(s.noisy(x0, t, noise), s.net_time(t), net.cond_from_codes(codes), voice)
        loss = (out - s.target(x0, noise, t)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])
    net.eval()
    with torch.no_grad():
        t = torch.tensor([50])
        xt = torch.randn(1, 12, 6)
        a = net(xt, t, net.cond_from_codes(codes[:1]), voice[:1])
        padded = torch.cat([xt, torch.randn(1, 4, 6)], 1)
        cond = torch.cat([net.cond_from_codes(codes[:1]), torch.zeros(1, 4, 8)], 1)
        b = net(padded, t, cond, voice[:1], valid=torch.arange(16)[None] < 12)
        assert torch.allclose(a, b[:, :12], atol=1e-5)
        dropped = net(xt, t, net.cond_from_codes(codes[:1]), voice[:1], drop=torch.tensor([True]))
        other = net(xt, t, net.cond_from_codes(codes[1:2]), voice[1:2], drop=torch.tensor([True]))
        assert torch.allclose(dropped, other, atol=1e-6) and not torch.allclose(dropped, a)


def test_text_reading_decoder_masks_padded_text_and_drops_it_with_the_rest():
    """A decoder with ``text_vocab`` reads the text through cross-attention: padded text positions change
    nothing, another text changes the output, a dropped row (guidance) reads the null text whatever the text,
    and calling it without text is one clear error. One without keeps its saved configuration."""
    torch.manual_seed(0)
    plain = DiffusionDecoder(latent_dim=6, cond_dim=8, voice_dim=5, codebook_size=16, d_model=32, n_head=4, n_layer=2)
    assert "text_vocab" not in plain.config  # decoders saved before the option load unchanged
    net = DiffusionDecoder(latent_dim=6, cond_dim=8, voice_dim=5, codebook_size=16, d_model=32, n_head=4, n_layer=2,
                           text_vocab=20, n_text_layer=1)
    nn.init.normal_(net.out.weight)  # the zero-initialised output would hide every difference
    x, t, cond, voice = torch.randn(2, 7, 6), torch.tensor([3, 500]), torch.randn(2, 7, 8), torch.randn(2, 5)
    text = torch.tensor([[1, 2, 3, 0], [4, 5, 6, 7]])
    valid = torch.tensor([[True, True, True, False], [True] * 4])
    with torch.no_grad():
        a = net(x, t, cond, voice, text=text, text_valid=valid)
        other_pad = text.clone()
        other_pad[0, 3] = 9
        assert torch.equal(a, net(x, t, cond, voice, text=other_pad, text_valid=valid))
        other = text.clone()
        other[0, 1] = 9
        b = net(x, t, cond, voice, text=other, text_valid=valid)
        assert not torch.allclose(a[0], b[0]) and torch.equal(a[1], b[1])
        drop = torch.tensor([True, False])
        d1 = net(x, t, cond, voice, text=text, text_valid=valid, drop=drop)
        d2 = net(x, t, cond, voice, text=other, text_valid=valid, drop=drop)
        assert torch.equal(d1[0], d2[0]) and not torch.allclose(d1[0], a[0])
        assert torch.equal(d1[1], a[1])
    with pytest.raises(ValueError, match="reads the text"):
        net(x, t, cond, voice)
    # the guided-attention prior: each frame's likeliest token is the one at the same share of its own row's
    # lengths (row 0: 6 of 7 frames, 3 tokens; row 1: 7 frames, 4 tokens); padded tokens are -inf
    bias = net.text_bias(torch.tensor([[True] * 6 + [False], [True] * 7]), valid)[:, 0]
    assert bias.argmax(-1)[0, :6].tolist() == [0, 0, 1, 1, 2, 2] and bias.argmax(-1)[1].tolist() == [0, 0, 1, 1, 2, 3, 3]
    assert torch.isinf(bias[0, :, 3]).all() and torch.isfinite(bias[1]).all()
    net.text_prior = 0.0
    assert (net.text_bias(torch.ones(2, 7, dtype=torch.bool), valid)[1] == 0).all()
