"""VALL-E modules and decoding: masks, causality, padding invariance, KV cache = recomputation, NAR stages."""
import pytest
import torch

from audiokit.nn.sampling import Spelling, filter_logits, repetition_aware, sample
from audiokit.valle.data import ar_inputs, collate_valle, nar_inputs
from audiokit.valle.generate import SamplingOptions, generate_ar, generate_nar
from audiokit.valle.model import AUDIO, PAD, TEXT, ValleAR, ValleDims, ValleNAR, attention_mask

DIMS = ValleDims(codebook_size=32, n_codebooks=4, d_model=32, n_head=4, n_layer=2, dropout=0.0)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return ValleAR(DIMS).eval(), ValleNAR(DIMS).eval()


def _items(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        L, P, T = 5 + 3 * i, 4 + 2 * i, 6 + i
        out.append({"id": str(i), "text": torch.randint(4, 60, (L,), generator=g),
                    "prompt": torch.randint(0, 32, (4, P), generator=g), "target": torch.randint(0, 32, (4, T), generator=g),
                    "prompt_scored": i % 2 == 0})
    return out


def test_attention_mask_rules():
    kind = torch.tensor([[TEXT, TEXT, PAD, AUDIO, AUDIO, AUDIO]])
    m = attention_mask(kind, causal_audio=True)[0, 0]
    assert m[0, :2].all() and not m[0, 3:].any()          # text sees text only (both ways)
    assert m[4, :2].all() and m[4, 3:5].all() and not m[4, 5]  # audio sees text and earlier audio
    assert not m[3, 2] and not m[4, 2]                      # nobody sees the pad
    full = attention_mask(kind, causal_audio=False)[0, 0]
    assert full[3, 5] and full[0, 4] and not full[0, 2]


def test_ar_is_causal_over_audio_and_text_ignores_audio(models):
    ar, _ = models
    x = ar_inputs(collate_valle(_items(1)), ar.bos, ar.eos)
    h = ar(x["tokens"], x["kind"], x["pos"])
    tokens = x["tokens"].clone()
    last = int((x["kind"][0] == AUDIO).nonzero()[-1])
    tokens[0, last] = (tokens[0, last] + 1) % 32
    h2 = ar(tokens, x["kind"], x["pos"])
    assert torch.allclose(h[0, :last], h2[0, :last], atol=1e-6)
    assert not torch.allclose(h[0, last], h2[0, last])


def test_ar_and_nar_do_not_depend_on_batch_padding(models):
    ar, nar = models
    items = _items(3)
    xb = ar_inputs(collate_valle(items), ar.bos, ar.eos)
    hb = ar.logits(ar(xb["tokens"], xb["kind"], xb["pos"]))
    stage = torch.tensor([1, 2, 3])
    nb = nar_inputs(collate_valle(items), stage)
    lb = nar(nb["tokens"], nb["kind"], nb["pos"], nb["codes"], nb["n_sum"], stage)
    for i in range(3):
        x1 = ar_inputs(collate_valle(items[i : i + 1]), ar.bos, ar.eos)
        h1 = ar.logits(ar(x1["tokens"], x1["kind"], x1["pos"]))
        assert torch.equal(xb["targets"][i][xb["targets"][i] != -100], x1["targets"][0][x1["targets"][0] != -100])
        assert torch.allclose(hb[i][xb["targets"][i] != -100], h1[0][x1["targets"][0] != -100], atol=1e-5)
        n1 = nar_inputs(collate_valle(items[i : i + 1]), stage[i : i + 1])
        l1 = nar(n1["tokens"], n1["kind"], n1["pos"], n1["codes"], n1["n_sum"], stage[i : i + 1])
        assert torch.allclose(lb[i][nb["targets"][i] != -100], l1[0][n1["targets"][0] != -100], atol=1e-5)


def test_ar_targets_score_the_prompt_only_when_it_is_the_utterances_own_prefix(models):
    ar, _ = models
    items = _items(2)  # item 0: own prefix (scored); item 1: another utterance's crop
    x = ar_inputs(collate_valle(items), ar.bos, ar.eos)
    for b, it in enumerate(items):
        scored = x["targets"][b][x["targets"][b] != -100]
        c1 = torch.cat([it["prompt"][0], it["target"][0]]) if it["prompt_scored"] else it["target"][0]
        assert torch.equal(scored, torch.cat([c1, torch.tensor([ar.eos])]))


def test_nar_uses_only_codebooks_below_its_stage_and_the_stage_matters(models):
    _, nar = models
    items = _items(1)
    stage = torch.tensor([2])
    x = nar_inputs(collate_valle(items), stage)
    out = nar(x["tokens"], x["kind"], x["pos"], x["codes"], x["n_sum"], stage)
    codes = x["codes"].clone()
    target_pos = x["targets"][0] != -100
    codes[0, 2:, target_pos] = (codes[0, 2:, target_pos] + 5) % 32  # codebooks >= stage of the target: hidden
    out2 = nar(x["tokens"], x["kind"], x["pos"], codes, x["n_sum"], stage)
    assert torch.allclose(out, out2, atol=1e-6)
    codes[0, 1, target_pos] = (codes[0, 1, target_pos] + 5) % 32  # codebook 2 of the target: an input
    assert not torch.allclose(out, nar(x["tokens"], x["kind"], x["pos"], codes, x["n_sum"], stage), atol=1e-4)
    with torch.no_grad():
        nar.stage_embedding.weight.normal_()
        a = nar(x["tokens"], x["kind"], x["pos"], x["codes"], x["n_sum"], torch.tensor([1]))
        b = nar(x["tokens"], x["kind"], x["pos"], x["codes"], x["n_sum"], torch.tensor([3]))
    assert not torch.allclose(a, b, atol=1e-4)
    with pytest.raises(ValueError, match="stages"):
        nar(x["tokens"], x["kind"], x["pos"], x["codes"], x["n_sum"], torch.tensor([4]))


def test_kv_cache_decoding_equals_recomputation_and_rows_are_independent(models):
    ar, _ = models
    items = _items(3)
    texts, prompts = [it["text"] for it in items], [it["prompt"][0] for it in items]
    greedy = SamplingOptions(temperature=0.0, draft_tokens=0)  # one pass per frame (drafting: test below)
    limits = [12, 7, 10]
    cached = generate_ar(ar, texts, prompts, limits, greedy, suppress_eos=True)
    plain = generate_ar(ar, texts, prompts, limits, greedy, use_cache=False, suppress_eos=True)
    assert [len(c) for c in cached] == limits
    assert all(torch.equal(a, b) for a, b in zip(cached, plain))
    for i in range(3):  # a row decoded alone gives the same frames as in the batch (left padding is invisible)
        alone = generate_ar(ar, texts[i : i + 1], prompts[i : i + 1], limits[i : i + 1], greedy, suppress_eos=True)
        assert torch.equal(alone[0], cached[i])
    s1 = generate_ar(ar, texts, prompts, limits, SamplingOptions(seed=3), suppress_eos=True)
    s2 = generate_ar(ar, texts, prompts, limits, SamplingOptions(seed=3), suppress_eos=True)
    s3 = generate_ar(ar, texts, prompts, limits, SamplingOptions(seed=4), suppress_eos=True)
    assert all(torch.equal(a, b) for a, b in zip(s1, s2))
    assert any(not torch.equal(a, b) for a, b in zip(s1, s3))


@pytest.mark.parametrize("mode", ["ngram", "jacobi", "ngram+jacobi"])
def test_drafted_greedy_decoding_is_plain_greedy_decoding_in_fewer_passes(models, mode):
    ar, _ = models
    items = _items(3, seed=5)
    texts, prompts = [it["text"] for it in items], [it["prompt"][0] for it in items]
    limits = [40, 25, 33]
    one = {}
    plain = generate_ar(ar, texts, prompts, limits, SamplingOptions(temperature=0.0, draft_tokens=0), stats=one)
    assert one["passes"] == max(len(p) for p in plain) - 1  # one pass per frame after the first
    for k in (1, 3, 8):
        for suppress in (True, False):
            ref = plain if not suppress else generate_ar(ar, texts, prompts, limits, SamplingOptions(temperature=0.0, draft_tokens=0), suppress_eos=True)
            got = generate_ar(ar, texts, prompts, limits, SamplingOptions(temperature=0.0, draft_tokens=k, draft=mode),
                              suppress_eos=suppress)
            assert all(torch.equal(a, b) for a, b in zip(got, ref)), (k, suppress)
    with torch.no_grad():  # a model that says code 5 whatever it hears: every draft after the first is right
        ar.head.bias[5] += 100.0
        try:
            stats = {}
            got = generate_ar(ar, texts, prompts, limits, SamplingOptions(temperature=0.0, draft_tokens=4, draft=mode), stats=stats)
        finally:
            ar.head.bias[5] -= 100.0
    assert [o.tolist() for o in got] == [[5] * n for n in limits]
    assert stats["frames"] == sum(limits) and stats["passes"] <= max(limits) // 5 + 3  # ~5 frames per pass
    with pytest.raises(ValueError, match="draft"):
        SamplingOptions(draft="oracle")


def test_ar_stops_at_the_end_token_but_not_before_its_minimum(models):
    ar, _ = models
    it = _items(2)
    texts, prompts = [i["text"] for i in it], [i["prompt"][0] for i in it]
    with torch.no_grad():
        ar.head.bias[ar.eos] += 100.0  # the end token always wins
        try:
            out = generate_ar(ar, texts, prompts, [50, 80], SamplingOptions(temperature=0.0, min_length=0.0))
            floor = generate_ar(ar, texts, prompts, [50, 80], SamplingOptions(temperature=0.0))
            floor_plain = generate_ar(ar, texts, prompts, [50, 80], SamplingOptions(temperature=0.0, draft_tokens=0))
            ar.head.bias[5] += 50.0  # and code 5 next: drafts of 5 are right up to the floor, not past it
            repeat = generate_ar(ar, texts, prompts, [50, 80], SamplingOptions(temperature=0.0, draft_tokens=4))
            ar.head.bias[5] -= 50.0
            sampled = generate_ar(ar, texts, prompts, [50, 80], SamplingOptions(seed=0, min_length=0.25))
        finally:
            ar.head.bias[ar.eos] -= 100.0
    assert [len(o) for o in out] == [0, 0]
    assert [len(o) for o in floor] == [5, 8]  # a tenth of each row's limit by default
    assert all(torch.equal(a, b) for a, b in zip(floor, floor_plain))  # drafted decoding keeps the floor
    assert [o.tolist() for o in repeat] == [[5] * 5, [5] * 8]
    assert [len(o) for o in sampled] == [12, 20] and all(ar.eos not in o.tolist() for o in sampled)
    with pytest.raises(ValueError, match="min_length"):
        SamplingOptions(min_length=1.5)


def test_repetition_aware_sampling_redraws_only_a_repeated_code():
    logits = torch.tensor([[9.0, 0.0, 0.0, 0.0], [9.0, 0.0, 0.0, 0.0]])
    drawn = torch.tensor([0, 0])
    # row 0 has said 0 once in its last 4 (threshold 0.25 of 4 = 1 repeat); row 1 has not said it lately
    g = torch.Generator().manual_seed(0)
    out = [repetition_aware(drawn, logits.clone().fill_(0.0), [[0, 1, 2, 3], [0, 1, 2, 3, 1]], 4, 0.25, 1.0, g)
           for _ in range(40)]
    assert all(o[1] == 0 for o in out)  # not repeated within the window: kept
    assert {int(o[0]) for o in out} == {0, 1, 2, 3}  # repeated: a draw from the whole (here uniform) distribution
    assert torch.equal(repetition_aware(drawn, logits, [[0, 1], [1, 2]], 4, 0.5, 1.0), drawn)  # below threshold
    with pytest.raises(ValueError, match="repetition"):
        repetition_aware(drawn, logits, [[], []], 0, 0.1)


def test_repetition_aware_sampling_breaks_a_loop_in_ar_decoding(models):
    ar, _ = models
    it = _items(2)
    texts, prompts = [i["text"] for i in it], [i["prompt"][0] for i in it]
    with torch.no_grad():
        ar.head.bias[5] += 3.0  # code 5 is the likeliest at every step: top-1 sampling loops on it
        try:
            plain = generate_ar(ar, texts, prompts, [40, 40], SamplingOptions(seed=0, top_k=1, min_length=1.0))
            ras = generate_ar(ar, texts, prompts, [40, 40], SamplingOptions(seed=0, top_k=1, min_length=1.0,
                                                                          repetition_window=8, repetition_threshold=0.5))
        finally:
            ar.head.bias[5] -= 3.0
    assert all(o.tolist() == [5] * 40 for o in plain)
    for o in ras:  # once 5 fills half the window it is drawn again from the whole distribution (where it is ~1 in 3)
        assert len(o) == 40 and o.tolist().count(5) < 28 and len(set(o.tolist())) > 5
    with pytest.raises(ValueError, match="repetition"):
        SamplingOptions(repetition_window=-1)


def _spoken(out, pause):
    return [t for t in out if t != pause]


@pytest.mark.parametrize("options", [SamplingOptions(temperature=0), SamplingOptions(seed=3, top_k=None)],
                         ids=["greedy", "sampled"])
def test_spelling_makes_the_ar_say_its_script_in_order_and_nothing_else(models, options):
    """Phone units' monotonic alignment: whatever a (here random) AR prefers, each row spells its script exactly,
    with at most one pause between entries, and stops right after it; without the spelling it does not."""
    ar, _ = models
    it = _items(2)
    texts, prompts = [i["text"] for i in it], [i["prompt"][0] for i in it]
    scripts, pause = [torch.tensor([3, 7, 7, 12, 3]), torch.tensor([30, 1, 9])], 0
    with torch.no_grad():
        ar.head.bias[7] += 4.0  # a model stuck on one code (a loop), and keen on pausing
        ar.head.bias[pause] += 2.0
        try:
            free = generate_ar(ar, texts, prompts, [30, 30], options)
            spelled = generate_ar(ar, texts, prompts, [30, 30], options, spelling=Spelling(scripts, pause, ar.eos))
        finally:
            ar.head.bias[7] -= 4.0
            ar.head.bias[pause] -= 2.0
    assert any(_spoken(o.tolist(), pause) != s.tolist() for o, s in zip(free, scripts))
    for o, s in zip(spelled, scripts):
        o = o.tolist()
        assert _spoken(o, pause) == s.tolist()  # every entry, once, in order; stopped after the last
        assert all(not (a == b == pause) for a, b in zip(o, o[1:]))  # never two pauses in a row
    assert pause in spelled[0].tolist() or pause in spelled[1].tolist()  # the model's preference for pauses shows
    with pytest.raises(ValueError, match="pause or stop"):
        Spelling([torch.tensor([1, 0])], 0, ar.eos)
    with pytest.raises(ValueError, match="one script per row"):
        generate_ar(ar, texts, prompts, [30, 30], options, spelling=Spelling(scripts[:1], pause, ar.eos))


def test_nar_fills_codebooks_2_to_q(models):
    _, nar = models
    items = _items(2)
    first = [torch.randint(0, 32, (5,)), torch.randint(0, 32, (9,))]
    out = generate_nar(nar, [it["text"] for it in items], [it["prompt"] for it in items], first)
    assert [tuple(o.shape) for o in out] == [(4, 5), (4, 9)]
    assert all(torch.equal(o[0], f) for o, f in zip(out, first))
    alone = generate_nar(nar, [items[1]["text"]], [items[1]["prompt"]], first[1:])
    assert torch.equal(alone[0], out[1])


def test_sampling_filters():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
    assert torch.isinf(filter_logits(logits, top_k=2)[0, 2:]).all() and torch.isfinite(filter_logits(logits, top_k=2)[0, :2]).all()
    p = logits.softmax(-1)[0]
    kept = torch.isfinite(filter_logits(logits, top_p=float(p[0]) + 1e-3)[0])
    assert kept.tolist() == [True, True, False, False]
    assert torch.isfinite(filter_logits(logits, top_p=0.01)[0]).tolist() == [True, False, False, False]
    assert sample(logits, 0.0).item() == 0
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    draws1 = [sample(logits, 1.0, generator=g1).item() for _ in range(20)]
    assert draws1 == [sample(logits, 1.0, generator=g2).item() for _ in range(20)] and len(set(draws1)) > 1
    with pytest.raises(ValueError):
        SamplingOptions(top_p=0.0)


def test_nar_starts_near_chance_with_scaled_tied_logits():
    """The NAR's output layer is the codebook's embedding table (N(0, 1) weights): unscaled, its first logits are
    about sqrt(d) wide and the first loss many times ln K (a digits-size NAR then sat at chance); divided by
    sqrt(d) (what new training uses) the first loss is near ln K."""
    import math

    from audiokit.valle.data import collate_valle
    from audiokit.valle.lightning import ValleNARModule

    g = torch.Generator().manual_seed(0)
    items = [{"id": f"u{i}", "text": torch.randint(3, 40, (8,), generator=g), "prompt": torch.randint(0, 256, (4, 10), generator=g),
              "target": torch.randint(0, 256, (4, 20), generator=g), "prompt_scored": False} for i in range(4)]
    batch = collate_valle(items)
    losses = {}
    for scaled in (False, True):
        torch.manual_seed(0)
        m = ValleNARModule(codebook_size=256, n_codebooks=4, d_model=128, n_head=4, n_layer=1, dropout=0.0, scaled_logits=scaled)
        m.log = lambda *a, **k: None
        with torch.no_grad():
            losses[scaled] = float(m.training_step(batch, 0))
    assert abs(losses[True] - math.log(256)) < 1.0, losses
    assert losses[False] > 2 * math.log(256), losses


def test_a_run_saved_before_scaled_logits_resumes_unscaled():
    from audiokit.valle.lightning import ValleNARModule

    m = ValleNARModule(codebook_size=64, n_codebooks=3, d_model=32, n_head=2, n_layer=1)
    assert m.model.dims.scaled_logits
    old = {k: v for k, v in m.dims.to_dict().items() if k != "scaled_logits"}
    m.on_load_checkpoint({"valle": {"stage": "nar", "dims": old, "codec": None}})
    assert not m.model.dims.scaled_logits
    m.on_load_checkpoint({"valle": {"stage": "nar", "dims": {**old, "scaled_logits": True}, "codec": None}})
    assert m.model.dims.scaled_logits


def test_nar_tables_step_sqrt_d_faster_and_a_run_saved_with_one_rate_resumes_so(tmp_path):
    """The NAR's codebook tables are its output layer too: new training steps them at sqrt(d) x lr (a third
    optimizer group); a run saved with two groups (one rate for every table) resumes with two."""
    import lightning as L

    from audiokit.valle.data import collate_valle
    from audiokit.valle.lightning import ValleNARModule

    kw = dict(codebook_size=32, n_codebooks=4, d_model=64, n_head=4, n_layer=1, dropout=0.0, lr=1e-3, warmup_steps=1)
    batch = collate_valle(_items(4))
    loader = lambda: torch.utils.data.DataLoader([batch], batch_size=None)  # noqa: E731
    trainer = lambda steps: L.Trainer(max_steps=steps, logger=False, enable_progress_bar=False,  # noqa: E731
                                      enable_model_summary=False, default_root_dir=tmp_path, accelerator="cpu")
    m, new = ValleNARModule(**kw), trainer(1)
    new.fit(m, loader())
    groups = new.optimizers[0].param_groups
    tables = {id(e.weight) for e in m.model.audio_embeddings}
    assert len(groups) == 3 and {id(p) for p in groups[2]["params"]} == tables
    assert not tables & {id(p) for g in groups[:2] for p in g["params"]}
    assert groups[2]["initial_lr"] == pytest.approx(8 * groups[0]["initial_lr"])  # sqrt(64)

    first = trainer(2)
    first.fit(ValleNARModule(**kw, table_lr_scale=1.0), loader())  # the layout runs were saved in before
    assert len(first.optimizers[0].param_groups) == 2
    first.save_checkpoint(tmp_path / "old.ckpt")
    resumed, later = ValleNARModule(**kw), trainer(3)
    later.fit(resumed, loader(), ckpt_path=tmp_path / "old.ckpt")
    assert later.global_step == 3 and resumed.table_lr_scale == 1.0
    assert len(later.optimizers[0].param_groups) == 2


def test_prompt_kinds_mark_a_voice_only_prompt_in_training_and_decoding():
    """With ``prompt_kinds`` a prompt from another utterance starts with its own token (session 25: an AR that
    cannot tell the kinds apart skips the text's first words after a voice-only prompt)."""
    from dataclasses import replace

    torch.manual_seed(0)
    ar = ValleAR(replace(DIMS, prompt_kinds=True)).eval()
    with torch.no_grad():  # every output projection random (some start at zero: then no earlier token matters)
        for w in ar.parameters():
            if w.dim() == 2:
                w.normal_(0, 0.3)
    assert ar.voice_bos == 34 and ar.audio_embedding.num_embeddings == 35
    assert ValleAR(DIMS).voice_bos == ValleAR(DIMS).bos  # models saved without it: one start token, as trained
    assert ValleDims.from_dict({k: v for k, v in DIMS.to_dict().items() if k != "prompt_kinds"}).prompt_kinds is False
    items = _items(2)  # item 0: the utterance's own prefix; item 1: another utterance
    x = ar_inputs(collate_valle(items), ar.bos, ar.eos, voice_bos=ar.voice_bos)
    starts = [int(x["tokens"][b][x["kind"][b] == AUDIO][0]) for b in range(2)]
    assert starts == [ar.bos, ar.voice_bos]
    plain = ar_inputs(collate_valle(items), ar.bos, ar.eos)
    assert [int(plain["tokens"][b][plain["kind"][b] == AUDIO][0]) for b in range(2)] == [ar.bos, ar.bos]
    texts, prompts = [it["text"] for it in items], [it["prompt"][0] for it in items]
    greedy = SamplingOptions(temperature=0.0)
    with torch.no_grad():
        ar.audio_embedding.weight[ar.voice_bos] = ar.audio_embedding.weight[ar.bos]
        same = generate_ar(ar, texts, prompts, [15, 15], greedy, suppress_eos=True, voice_only=True)
        ref = generate_ar(ar, texts, prompts, [15, 15], greedy, suppress_eos=True)
        assert all(torch.equal(a, b) for a, b in zip(same, ref))  # the tokens' embeddings alike: the same frames
        ar.audio_embedding.weight[ar.voice_bos] = 10 * torch.randn(DIMS.d_model, generator=torch.Generator().manual_seed(1))
        voiced = generate_ar(ar, texts, prompts, [15, 15], greedy, suppress_eos=True, voice_only=[False, True])
        assert torch.equal(voiced[0], ref[0]) and not torch.equal(voiced[1], ref[1])  # only the flagged row moves
        plain_loop = generate_ar(ar, texts, prompts, [15, 15], SamplingOptions(temperature=0.0, draft_tokens=0),
                                 suppress_eos=True, voice_only=[False, True])
        assert all(torch.equal(a, b) for a, b in zip(voiced, plain_loop))  # drafted and plain loops agree
    with pytest.raises(ValueError, match="voice_only has 1 entries for 2 rows"):
        generate_ar(ar, texts, prompts, [5, 5], greedy, voice_only=[True])
