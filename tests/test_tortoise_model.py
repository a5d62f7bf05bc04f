"""Tortoise modules: masks, conditioning latents, the AR model (causal, learns), CLVP (contrastive, ranks)."""
import pytest
import torch

from audiokit.nn.transformer import padded_causal_mask
from audiokit.tortoise.model import CLVP, ConditioningEncoder, TortoiseAR, TortoiseDims, framed

DIMS = TortoiseDims(text_vocab=40, codebook_size=32, n_codebooks=3, d_model=32, n_head=4, n_layer=2, n_cond_layer=1,
                    max_text=30, max_speech=60, clvp_layer=1, clvp_dim=32, clvp_latent=16)


def _pairs(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    texts = [torch.randint(0, 40, (5 + i,), generator=g) for i in range(n)]
    speech = [torch.randint(0, 32, (10 + 3 * i,), generator=g) for i in range(n)]
    return texts, speech


def test_padded_causal_mask():
    valid = torch.tensor([[True, False, True, True]])
    m = padded_causal_mask(valid)[0, 0]
    assert m[3].tolist() == [True, False, True, True] and m[2].tolist() == [True, False, True, False]
    assert m[1, 1]  # a pad row sees itself only, so no row is empty


def test_conditioning_latents_ignore_padding():
    torch.manual_seed(0)
    enc = ConditioningEncoder(32, 3, 32, 4, 1).eval()
    codes = torch.randint(0, 32, (1, 3, 50))
    padded = torch.cat([codes, torch.randint(0, 32, (1, 3, 30))], -1)
    a = enc(codes)
    b = enc(padded, frames=torch.tensor([50]))
    assert a.shape == (1, 32) and torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(enc(torch.cat([codes, codes[:, :1]], 1)), a)  # codebooks past n_codebooks are cut
    assert not torch.allclose(enc(codes.roll(1, 1)), a)  # each codebook has its own table


def test_ar_is_causal_and_learns():
    torch.manual_seed(0)
    ar = TortoiseAR(DIMS)
    texts, speech = _pairs()
    t, tv = framed(texts, ar.start_text, ar.stop_text)
    s, sv = framed(speech, ar.start_speech, ar.stop_speech)
    cond = ar.conditioning(torch.randint(0, 32, (4, 3, 40)))
    ar.eval()
    with torch.no_grad():
        x, valid = ar.embed(cond, t, tv, s, sv)
        h = ar(x, padded_causal_mask(valid))
        s2 = s.clone()
        s2[0, 5] = (s2[0, 5] + 1) % 32
        x2, _ = ar.embed(cond, t, tv, s2, sv)
        h2 = ar(x2, padded_causal_mask(valid))
    pos = 1 + t.shape[1] + 5
    assert torch.allclose(h[0, :pos], h2[0, :pos], atol=1e-6) and not torch.allclose(h[0, pos], h2[0, pos])
    out = ar.losses(cond, t, tv, s, sv)
    assert out["latents"].shape == (4, s.shape[1], 32)
    ar.train()
    opt = torch.optim.AdamW(ar.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        out = ar.losses(cond.detach(), t, tv, s, sv)
        loss = out["speech_loss"] + 0.1 * out["text_loss"]
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first and out["speech_acc"] > 0.5
    with pytest.raises(ValueError, match="too long"):
        ar.embed(cond, *framed([torch.zeros(40, dtype=torch.long)] * 4, 0, 1), s, sv)


def test_clvp_learns_to_match_text_and_speech():
    torch.manual_seed(0)
    clvp = CLVP(DIMS)
    texts, speech = _pairs(6)
    t, tv = framed(texts, None, None)
    s, sv = framed(speech, None, None)
    opt = torch.optim.AdamW(clvp.parameters(), lr=3e-3)
    for _ in range(60):
        loss, acc = clvp.loss(t, tv, s, sv)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert acc == 1.0
    right = clvp.score(t, tv, s, sv)
    wrong = clvp.score(t, tv, s.roll(1, 0), sv.roll(1, 0))
    assert (right > wrong).all()


def test_corrupt_speech_drops_repeats_or_swaps_a_span():
    import random

    from audiokit.tortoise.lightning import corrupt_speech

    seqs = [torch.arange(20), torch.arange(100, 130), torch.arange(200, 210)]
    kinds = set()
    for seed in range(30):
        a = corrupt_speech(seqs, random.Random(seed))
        assert [x.tolist() for x in a] == [x.tolist() for x in corrupt_speech(seqs, random.Random(seed))]  # seeded
        for orig, new in zip(seqs, a):
            assert not torch.equal(orig, new)
            d = len(new) - len(orig)
            if d < 0:  # a span dropped: what is left is the sequence's own tokens, in order
                kinds.add("drop")
                assert set(new.tolist()) < set(orig.tolist()) and new.tolist() == sorted(new.tolist())
            elif set(new.tolist()) <= set(orig.tolist()):  # a span repeated in place
                kinds.add("repeat")
                assert d > 0
            else:  # a span of another sequence in place of one of its own
                kinds.add("swap")
                assert {v // 100 for v in new.tolist()} - {int(orig[0]) // 100}
    assert kinds == {"drop", "repeat", "swap"}
    assert corrupt_speech([torch.tensor([7])], random.Random(0))[0].tolist() == [7, 7]  # one token: repeated


def test_clvp_hard_negatives_teach_it_near_misses():
    """Trained with near misses of its own speech as negatives, CLVP scores an utterance above its corruptions
    (new ones, never seen) — what ranking one text's candidates asks; the plain contrastive loss learns less of it."""
    import random

    from audiokit.tortoise.lightning import corrupt_speech

    texts, speech = _pairs(6)
    t, tv = framed(texts, None, None)
    s, sv = framed(speech, None, None)

    def train(hard):
        torch.manual_seed(0)
        clvp = CLVP(DIMS)
        opt = torch.optim.AdamW(clvp.parameters(), lr=3e-3)
        for step in range(80):
            neg = framed(corrupt_speech(speech, random.Random(step)), None, None) if hard else (None, None)
            loss, _ = clvp.loss(t, tv, s, sv, *neg)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return clvp

    def wins(clvp):  # own speech above a fresh near miss, over 20 draws of 6
        right, won = clvp.score(t, tv, s, sv), 0
        for seed in range(1000, 1020):
            n, nv = framed(corrupt_speech(speech, random.Random(seed)), None, None)
            won += int((right > clvp.score(t, tv, n, nv)).sum())
        return won / 120

    hard, plain = wins(train(True)), wins(train(False))
    assert hard > 0.9 and hard > plain


def test_candidate_sampling_with_the_cache_equals_recomputation():
    from audiokit.tortoise.generate import ar_latents, sample_candidates
    from audiokit.valle.generate import SamplingOptions

    torch.manual_seed(0)
    ar = TortoiseAR(DIMS).eval()
    voice = ar.conditioning(torch.randint(0, 32, (1, 3, 30)))[0]
    text = torch.randint(0, 40, (8,))
    greedy = SamplingOptions(temperature=0.0)
    a = sample_candidates(ar, voice, text, 2, 15, greedy, suppress_stop=True)
    b = sample_candidates(ar, voice, text, 2, 15, greedy, use_cache=False, suppress_stop=True)
    assert [len(x) for x in a] == [15, 15] and all(torch.equal(x, y) for x, y in zip(a, b))
    s1 = sample_candidates(ar, voice, text, 4, 15, SamplingOptions(seed=1))
    s2 = sample_candidates(ar, voice, text, 4, 15, SamplingOptions(seed=1))
    assert all(torch.equal(x, y) for x, y in zip(s1, s2))
    with torch.no_grad():
        ar.speech_head.bias[ar.stop_speech] += 100.0
    assert [len(x) for x in sample_candidates(ar, voice, text, 3, 15, SamplingOptions(temperature=0.0, min_length=0.0))] == [0, 0, 0]
    assert [len(x) for x in sample_candidates(ar, voice, text, 3, 30, greedy)] == [3, 3, 3]  # not before a tenth
    with torch.no_grad():
        ar.speech_head.bias[ar.stop_speech] -= 100.0
    lat = ar_latents(ar, voice, text, a)
    assert [tuple(x.shape) for x in lat] == [(15, 32), (15, 32)]
    with pytest.raises(ValueError):
        sample_candidates(ar, voice, text, 0, 15)
