"""The recipes learn: at CI size, each family's own training step (the code the recipes run) memorises a
handful of utterances, and *generation* — not teacher forcing — then reproduces them exactly. A loss mask or
a prompt/target offset that is off by one still lowers a teacher-forced loss, but breaks these (issue 22)."""
import pytest
import torch

from audiokit.valle.data import collate_valle, phoneme_ids
from audiokit.valle.generate import SamplingOptions, generate_ar, generate_nar
from audiokit.valle.lightning import ValleARModule, ValleNARModule

PHONEMES = ["wʌn tuː θɹiː", "fɔːɹ faɪv", "sɪks sɛvən eɪt", "naɪn zɪəɹoʊ oʊ"]
Q, CODES, PROMPT = 3, 32, 4


def _utterances(seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, p in enumerate(PHONEMES):
        T = 12 + 3 * i
        codes = torch.randint(0, CODES, (Q, T), generator=g)
        out.append({"id": f"u{i}", "text": torch.tensor(phoneme_ids(p)), "prompt": codes[:, :PROMPT],
                    "target": codes[:, PROMPT:], "prompt_scored": True})
    return out


def _train(module, batch, steps, lr=3e-3, seed=0):
    torch.manual_seed(seed)
    module.log = lambda *a, **k: None  # no Trainer here: the step's logging has nowhere to go
    module.train()
    opt = torch.optim.AdamW(module.model.parameters(), lr=lr)
    for _ in range(steps):
        loss = module.training_step(batch, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    module.eval()
    return float(loss.detach())


@pytest.fixture(scope="module")
def valle():
    items = _utterances()
    batch = collate_valle(items)
    kw = dict(codebook_size=CODES, n_codebooks=Q, d_model=64, n_head=4, n_layer=2, dropout=0.0)
    torch.manual_seed(0)
    ar, nar = ValleARModule(**kw), ValleNARModule(**kw)
    ar_loss = _train(ar, batch, 150)
    nar_loss = _train(nar, batch, 250)
    return items, ar, nar, (ar_loss, nar_loss)


def test_valle_ar_and_nar_generate_the_memorised_utterances(valle):
    """After training on four utterances (prompt = each one's first frames, as a recipe's prefix prompts),
    greedy AR generation from text + prompt gives each target's codebook 1 frame for frame and stops there,
    and the NAR fills codebooks 2..Q exactly from it."""
    items, ar, nar, losses = valle
    assert losses[0] < 0.1 and losses[1] < 0.1, losses
    texts = [it["text"] for it in items]
    greedy = SamplingOptions(temperature=0.0, top_k=None, draft_tokens=0)
    with torch.no_grad():
        first = generate_ar(ar.model, texts, [it["prompt"][0] for it in items], [60] * len(items), greedy)
        for it, f in zip(items, first):
            assert f.tolist() == it["target"][0].tolist(), it["id"]
        rest = generate_nar(nar.model, texts, [it["prompt"] for it in items], [it["target"][0] for it in items])
    for it, codes in zip(items, rest):
        assert torch.equal(codes, it["target"]), it["id"]


def test_valle_generation_depends_on_the_text_and_the_prompt(valle):
    """What it memorised is keyed on its inputs: another utterance's text with this prompt does not give this
    utterance's frames (the model reads the text, not only the prompt's continuation)."""
    items, ar, _, _ = valle
    greedy = SamplingOptions(temperature=0.0, top_k=None, draft_tokens=0)
    with torch.no_grad():
        swapped = generate_ar(ar.model, [items[1]["text"]], [items[0]["prompt"][0]], [60], greedy)[0]
    assert swapped.tolist() != items[0]["target"][0].tolist()


# ----------------------------------------------------------------------------- Tortoise
def _tortoise_items(seed, n, frames, text_len, voice_frames, prefix):
    """``n`` Tortoise items of random text ids and codes (item i: ``frames(i)`` frames, ``text_len(i)`` ids); the
    voice is each item's own first ``voice_frames`` frames."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        codes = torch.randint(0, CODES, (Q, frames(i)), generator=g)
        text = torch.randint(1, 40, (text_len(i),), generator=g)
        items.append({"id": f"{prefix}{i}", "text": text, "codes": codes, "voice": codes[None, :, :voice_frames],
                      "voice_frames": torch.tensor([voice_frames])})
    return items


@pytest.fixture(scope="module")
def tortoise_ar():
    from audiokit.tortoise.data import collate_tortoise
    from audiokit.tortoise.lightning import TortoiseARModule

    items = _tortoise_items(1, 4, lambda i: 10 + 3 * i, lambda i: 5 + i, 6, "t")
    torch.manual_seed(0)
    module = TortoiseARModule(text_vocab=48, codebook_size=CODES, n_codebooks=Q, d_model=64, n_head=4, n_layer=2,
                              n_cond_layer=1, max_text=32, max_speech=64, dropout=0.0)
    loss = _train(module, collate_tortoise(items), 200)
    return items, module, loss


def test_tortoise_ar_generates_the_memorised_speech_tokens(tortoise_ar):
    """Trained by its own training_step on four (text, speech) pairs, greedy decoding (the candidates' code
    path) from each text and voice gives that pair's speech tokens exactly, stop token included."""
    from audiokit.tortoise.generate import sample_candidates

    items, module, loss = tortoise_ar
    assert loss < 0.1, loss
    m = module.model
    greedy = SamplingOptions(temperature=0.0, top_k=None, draft_tokens=0)
    with torch.no_grad():
        for it in items:
            voice = m.conditioning(it["voice"], it["voice_frames"]).mean(0)
            got = sample_candidates(m, voice, it["text"], 1, 60, greedy)[0]
            assert got.tolist() == it["codes"][0].tolist(), it["id"]


@pytest.fixture(scope="module")
def tortoise_pairs():
    """Six (text, speech) pairs for CLVP: random text ids and first-codebook tokens of varied lengths."""
    return _tortoise_items(2, 6, lambda i: 9 + 2 * i, lambda i: 4 + i % 3, 4, "c")


def test_clvp_ranks_each_texts_own_speech_first(tortoise_pairs):
    """CLVP trained by its training_step on six pairs; the pipeline's reranker (TortoiseTTS.rank) then scores,
    for every text, its own speech above the five others'. Pairing texts with the wrong speech in the batch,
    or scoring another codebook than training saw, breaks it."""
    from types import SimpleNamespace

    from audiokit.tortoise.data import collate_tortoise
    from audiokit.tortoise.lightning import CLVPModule
    from audiokit.tortoise.tts import TortoiseTTS

    torch.manual_seed(0)
    module = CLVPModule(text_vocab=48, codebook_size=CODES, clvp_layer=2, clvp_dim=64, clvp_latent=32, max_text=32,
                        max_speech=64, dropout=0.0)
    loss = _train(module, collate_tortoise(tortoise_pairs), 120)
    assert loss < 0.05, loss
    pipeline = SimpleNamespace(clvp=module.model, device=torch.device("cpu"))
    speech = [it["codes"][0] for it in tortoise_pairs]
    for i, it in enumerate(tortoise_pairs):
        scores = TortoiseTTS.rank(pipeline, it["text"], speech)
        assert int(scores.argmax()) == i, (i, scores)


def test_tortoise_diffusion_reproduces_the_memorised_latents(tmp_path):
    """The diffusion decoder trained by its own training_step on four utterances (stage 1: conditioned on
    first-codebook tokens), then sampled by the pipeline's own sampler (TortoiseTTS.diffuse: 20 DDIM steps from
    noise), gives each utterance's codec latents: within about half their spread, and less than half as far from
    its own as from any other's (about 1.3-1.5 spreads). Training on another utterance's conditioning breaks it."""
    from types import SimpleNamespace

    from audiokit.codec.codec import Codec
    from audiokit.codec.model import CodecModel
    from audiokit.tortoise.data import collate_tortoise
    from audiokit.tortoise.lightning import DiffusionModule, batch_voice
    from audiokit.tortoise.tts import TortoiseTTS

    torch.manual_seed(0)
    Codec(CodecModel(sample_rate=16000, encoder_dim=4, encoder_rates=[4, 5, 8], decoder_dim=32, decoder_rates=[8, 5, 4],
                     n_codebooks=Q, codebook_size=CODES, codebook_dim=4), name="c").export(tmp_path / "codec")
    g = torch.Generator().manual_seed(3)
    items = []
    for i in range(4):
        codes = torch.randint(0, CODES, (Q, 16), generator=g)  # one length: the content must come from the condition
        items.append({"id": f"d{i}", "text": torch.tensor([1]), "codes": codes, "voice": codes[None, :, :4],
                      "voice_frames": torch.tensor([4])})
    batch = collate_tortoise(items)
    module = DiffusionModule(str(tmp_path / "codec"), cond_dim=32, voice_dim=16, d_model=64, n_head=4, n_layer=2,
                             n_voice_layer=1, cond_drop=0.0, schedule_steps=1000)
    module._measure_latents([batch])
    _train(module, batch, 400)
    z, _ = module._latents(batch)  # [B, T, D]: what the codec would decode
    pipeline = SimpleNamespace(diffusion=module.model, process=module.process, device=torch.device("cpu"))
    with torch.no_grad():
        voice = batch_voice(module.model.voice_encoder, batch, "cpu")
        out = [TortoiseTTS.diffuse(pipeline, [module.model.cond_from_codes(it["codes"][0][None])[0]], voice[i], 20, 1.0,
                                   torch.Generator().manual_seed(0))[0] for i, it in enumerate(items)]
    spread = (z - z.mean((0, 1))).pow(2).mean().sqrt()
    for i, zi in enumerate(out):
        err = [float((zi.T - z[j]).pow(2).mean().sqrt() / spread) for j in range(len(items))]
        others = min(e for j, e in enumerate(err) if j != i)
        assert err[i] < 0.6 and err[i] < 0.5 * others, (i, err)


def test_text_reading_diffusion_decoder_says_what_only_the_text_tells(tmp_path):
    """Four utterances with the same first codebook and voice but different text and codebooks 2-4: only the
    text tells their latents apart. A decoder that reads the text (``text_vocab``), trained by its own
    training_step and sampled by the pipeline's sampler with each text, gives each utterance's own latents —
    nearer them than any other's. A decoder that ignored the text would give all four the same latents."""
    from types import SimpleNamespace

    from audiokit.codec.codec import Codec
    from audiokit.codec.model import CodecModel
    from audiokit.tortoise.data import collate_tortoise
    from audiokit.tortoise.lightning import DiffusionModule, batch_voice
    from audiokit.tortoise.tts import TortoiseTTS

    torch.manual_seed(0)
    Codec(CodecModel(sample_rate=16000, encoder_dim=4, encoder_rates=[4, 5, 8], decoder_dim=32, decoder_rates=[8, 5, 4],
                     n_codebooks=Q, codebook_size=CODES, codebook_dim=4), name="c").export(tmp_path / "codec")
    g = torch.Generator().manual_seed(5)
    first = torch.randint(0, CODES, (1, 16), generator=g)
    voice = torch.randint(0, CODES, (1, Q, 4), generator=g)
    texts = [[1, 2], [3], [4, 5, 6], [7, 1]]
    items = [{"id": f"t{i}", "text": torch.tensor(t), "voice": voice, "voice_frames": torch.tensor([4]),
              "codes": torch.cat([first, torch.randint(0, CODES, (Q - 1, 16), generator=g)])} for i, t in enumerate(texts)]
    batch = collate_tortoise(items)
    module = DiffusionModule(str(tmp_path / "codec"), cond_dim=32, voice_dim=16, d_model=64, n_head=4, n_layer=2,
                             n_voice_layer=1, cond_drop=0.0, schedule_steps=1000, text_vocab=8, n_text_layer=1)
    module._measure_latents([batch])
    _train(module, batch, 400)
    z, _ = module._latents(batch)
    pipeline = SimpleNamespace(diffusion=module.model, process=module.process, device=torch.device("cpu"))
    with torch.no_grad():
        v = batch_voice(module.model.voice_encoder, batch, "cpu")
        cond = module.model.cond_from_codes(first)[0]
        out = [TortoiseTTS.diffuse(pipeline, [cond], v[i], 20, 1.0, torch.Generator().manual_seed(0),
                                   text=it["text"])[0] for i, it in enumerate(items)]
    spread = (z - z.mean((0, 1))).pow(2).mean().sqrt()
    err = [[float((zi.T - z[j]).pow(2).mean().sqrt() / spread) for j in range(len(items))] for zi in out]
    own = [e[i] for i, e in enumerate(err)]
    nearest_other = [min(x for j, x in enumerate(e) if j != i) for i, e in enumerate(err)]
    assert all(a < 0.6 * b for a, b in zip(own, nearest_other)), err


# ----------------------------------------------------------------------------- ASR
def test_asr_transcribes_the_memorised_utterances_exactly(synth_corpus, tmp_path):
    """The ASR trained by its own loss on three utterances (no augmentation), then decoded as validation and
    transcription decode (greedy, no timestamps, the default suppression), writes each transcript exactly. This
    test found the non-speech suppression list taking the lone space from a corpus BPE whose words start with it
    (every such word was then unreachable): see decoding.word_start_tokens."""
    from audiokit.asr.decoding import DecodingOptions, decode
    from audiokit.asr.lightning import ASRLightningModule
    from audiokit.asr.metrics import scoring_forms
    from audiokit.data.datamodule import SpeechDataModule
    from audiokit.data.datasets import collate_audio
    from audiokit.text import BPETokenizer

    corpus = synth_corpus[0]
    BPETokenizer.from_manifest(corpus / "train.jsonl", vocab_size=300).save(tmp_path / "bpe.json")
    dm = SpeechDataModule(str(corpus / "train.jsonl"), kind="audio", sample_rate=16000, max_duration=4.0,
                          max_batch_size=3, max_batch_seconds=1000)
    dm.setup("fit")
    ds = dm.datasets["train"]
    batch = collate_audio([ds[i] for i in range(3)])
    torch.manual_seed(0)
    module = ASRLightningModule(str(tmp_path / "bpe.json"), dims=dict(
        n_mels=80, n_audio_ctx=250, n_audio_state=64, n_audio_head=4, n_audio_layer=2, n_text_ctx=64, n_text_state=64,
        n_text_head=4, n_text_layer=2), freq_masks=0, time_masks=0, concat_prob=0.0, no_speech_prob=0.0,
        timestamp_prob=0.0, ctc_weight=0.3, label_smoothing=0.0)
    opt = torch.optim.AdamW(module.parameters(), lr=3e-3)
    module.train()
    for _ in range(200):
        loss, _, _ = module._loss(batch, train=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
    module.eval()
    with torch.no_grad():
        _, _, mel = module._loss(batch, train=False)
        results = decode(module.model, module.tok, mel, DecodingOptions(without_timestamps=True, sample_len=32))
    refs, hyps = scoring_forms(batch["text"], [r.text for r in results])
    assert hyps == refs, list(zip(refs, hyps))
