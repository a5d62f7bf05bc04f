"""What does a Tortoise diffusion decoder's conditioning know about the codec latent — and about the words?

    python benchmarks/tortoise_conditioning_probe.py --model exp/synth-digits/tortoise-export \\
        --tokens exp/synth-digits/tokens --manifest data/digits/test.jsonl --mode codes --steps 800

Trains a small deterministic regressor (the conditional mean, MSE on the normalized latent ``codec.embed``) from
one conditioning — ``codes`` (codebook-1 embeddings, the decoder's stage 1), ``ar`` (the export's AR latents,
teacher-forced: stage 2), either ``+text`` (cross-attention to the BPE ids), or ``units`` (the utterance's speech
units, ``--units``: a folder ``audiokit.codec.units.UnitTokenizer.fit`` made, or an ASR model to fit K = 256 units
from, on up to 1,000 training utterances; with ``--ar-units``, also from the units a VALL-E AR trained on a units
store writes for each held-out text, greedy and sampled: text → units → latent, end to end) — on the recipe's
token store, then
prints its validation MSE and the judge's WER on the regressed latents of held-out strings, decoded by the codec
(the same items as ``tortoise_diagnose.py``). Lower MSE = the conditioning tells more about the latent; the WER
says whether what it tells is the words.
"""
import argparse
import json
import os
import time
import warnings

import torch
from torch import nn
from tortoise_diagnose import held_out

warnings.filterwarnings("ignore")


class Regressor(nn.Module):
    def __init__(self, mode: str, latent_dim: int, ar_dim: int, text_vocab: int, codebook_size: int, n_codebooks: int,
                 d: int = 128, layers: int = 3, n_units: int = 0):
        from audiokit.nn.transformer import LayerNorm, Linear, ResidualAttentionBlock
        from audiokit.tortoise.model import ConditioningEncoder

        super().__init__()
        self.d, self.text = d, mode.endswith("+text")
        self.voice = ConditioningEncoder(codebook_size, n_codebooks, 64, 4, 1)
        self.voice_proj = Linear(64, d)
        self.code_emb = nn.Embedding(codebook_size, d) if mode.startswith("codes") else None
        self.unit_emb = nn.Embedding(n_units, d) if mode == "units" else None
        self.ar_proj = Linear(ar_dim, d) if mode.startswith("ar") else None
        if self.text:
            self.text_emb = nn.Embedding(text_vocab, d)
            self.text_enc = nn.ModuleList(ResidualAttentionBlock(d, 4) for _ in range(2))
            self.text_ln = LayerNorm(d)
        self.blocks = nn.ModuleList(ResidualAttentionBlock(d, 4, cross_attention=self.text) for _ in range(layers))
        self.ln = LayerNorm(d)
        self.out = Linear(d, latent_dim)

    def forward(self, first, ar_latents, text, text_valid, voice, valid):
        from audiokit.nn.transformer import padding_mask
        from audiokit.valle.model import sinusoids

        B, T = first.shape
        h = self.voice_proj(voice)[:, None].expand(B, T, self.d) + 0.1 * sinusoids(torch.arange(T), self.d)[None]
        if self.unit_emb is not None:  # units: ``ar_latents`` carries the unit ids [B, T]
            h = h + self.unit_emb(ar_latents)
        else:
            h = h + (self.code_emb(first) if self.code_emb is not None else self.ar_proj(ar_latents))
        src = src_mask = None
        if self.text:
            src = self.text_emb(text) + sinusoids(torch.arange(text.shape[1]), self.d)[None]
            src_mask = padding_mask(text_valid)
            for b in self.text_enc:
                src = b(src, mask=src_mask)
            src = self.text_ln(src)
        for b in self.blocks:
            h = b(h, source=src, mask=padding_mask(valid), source_mask=src_mask)
        return self.out(self.ln(h))


def unit_tokenizer(source: str, manifest: str, seed: int, k: int = 256, items: int = 1000):
    """A saved UnitTokenizer folder, or one fitted here from the ASR ``source`` on ``items`` utterances."""
    import random

    from audiokit.codec.units import UnitTokenizer
    from audiokit.data.manifest import entry_audio, read_manifest

    if source is None:
        raise SystemExit("--mode units needs --units (a units folder or an ASR model)")
    try:
        return UnitTokenizer.load(source)
    except ValueError:
        entries = read_manifest(manifest)
        random.Random(seed).shuffle(entries)
        return UnitTokenizer.fit(source, (entry_audio(e) for e in entries[:items]), k=k, seed=seed)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="an exported Tortoise folder (its codec, tokenizer and AR)")
    p.add_argument("--tokens", required=True, help="the recipe's token store folder (train.jsonl, valid.jsonl)")
    p.add_argument("--manifest", required=True, help="held-out utterances with audio, for the WER")
    p.add_argument("--mode", required=True, choices=["codes", "ar", "codes+text", "ar+text", "units"])
    p.add_argument("--units", default=None, help="units: a UnitTokenizer folder, or an ASR model to fit one from")
    p.add_argument("--regressor", default=None,
                   help="a file: load the regressor from it if it exists (no training), else save it there once trained")
    p.add_argument("--ar-units", default=None,
                   help="units: also regress from the units a VALL-E AR checkpoint trained on a units store writes")
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--loss", default="mse", choices=["mse", "mel", "mel+mse"],
                   help="mse: on the normalized latent (the conditional mean of the latent); mel: multi-scale log-mel "
                        "L1 between the codec decoder's audio from the regressed latent and from the truth's (the "
                        "conditional mean in the listener's domain); mel+mse: both")
    p.add_argument("--items", type=int, default=40)
    p.add_argument("--judge", default="asr")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    from audiokit.asr.metrics import wer_cer
    from audiokit.asr.transcriber import Transcriber
    from audiokit.tortoise.data import TortoiseDataModule
    from audiokit.tortoise.lightning import batch_speech, batch_text, batch_voice
    from audiokit.tortoise.tts import TortoiseTTS

    tts = TortoiseTTS.load(args.model)
    codec, ar = tts.codec, tts.ar.eval()
    tokenizer = f"{args.model}/tokenizer.json"
    dm = TortoiseDataModule(f"{args.tokens}/train.jsonl", tokenizer, val_manifest=f"{args.tokens}/valid.jsonl",
                            token_store=args.tokens, voice_seconds=1.5, max_duration=8.0, max_batch_seconds=120.0,
                            max_batch_size=16, voice_clips=2, seed=args.seed)
    dm.setup("fit")
    units, unit_cache, by_id = None, {}, {}
    if args.mode == "units":
        from audiokit.data.manifest import entry_audio, read_manifest

        units = unit_tokenizer(args.units, f"{args.tokens}/train.jsonl", args.seed)
        by_id = {e["id"]: e for split in ("train", "valid") for e in read_manifest(f"{args.tokens}/{split}.jsonl")}

    def unit_ids(entry_id, T):
        """The utterance's units, cut or padded (last unit) to the codec's ``T`` frames."""
        if entry_id not in unit_cache:
            wav, sr = entry_audio(by_id[entry_id])
            unit_cache[entry_id] = units.encode(wav, sr).codes[0, 0]
        u = unit_cache[entry_id][:T]
        return torch.cat([u, u[-1:].expand(T - len(u))])

    @torch.no_grad()
    def inputs(batch):
        z = codec.model.embed(batch["codes"]).transpose(1, 2).float()
        valid = torch.arange(z.shape[1])[None] < batch["code_lens"][:, None]
        lat = None
        if units is not None:
            T = batch["codes"].shape[-1]
            lat = torch.stack([unit_ids(i, T) for i in batch["id"]])
        if args.mode.startswith("ar"):
            t, tv = batch_text(batch, ar.start_text, ar.stop_text)
            s, sv = batch_speech(batch, ar.start_speech, ar.stop_speech)
            lat = ar.losses(batch_voice(ar.conditioning, batch, "cpu"), t, tv, s, sv)["latents"]
            lat = lat[:, 1: 1 + batch["codes"].shape[-1]].float()
        text_valid = torch.arange(batch["text"].shape[1])[None] < batch["text_lens"][:, None]
        return z, valid, lat, text_valid

    frames = []
    for _, b in zip(range(8), dm.train_dataloader()):
        z, valid, _, _ = inputs(b)
        frames.append(z[valid])
    frames = torch.cat(frames)
    mean, std = frames.mean(0), frames.std(0).clamp(min=1e-4)
    model = Regressor(args.mode, codec.model.latent_dim, ar.dims.d_model, tts.tokenizer.vocab_size,
                      codec.info.codebook_size, codec.info.n_codebooks, n_units=units.k if units else 0)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.96), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 50) * max(0.0, 1 - s / args.steps))

    def predict(batch):
        z, valid, lat, text_valid = inputs(batch)
        out = model(batch["codes"][:, 0], lat, batch["text"], text_valid, batch_voice(model.voice, batch, "cpu"), valid)
        return out, (z - mean) / std, valid

    from audiokit.codec.losses import MultiScaleMelLoss

    mel_loss = MultiScaleMelLoss(codec.sample_rate, n_mels=(20, 40, 80, 160), window_lengths=(128, 256, 512, 1024))
    hop = codec.model.hop_length

    def loss_of(batch, kind=None):
        kind = kind or args.loss
        out, x0, valid = predict(batch)
        err = (out - x0).pow(2).mean(-1)
        mse = ((err * valid).sum(1) / valid.sum(1)).mean()
        if kind == "mse":
            return mse
        keep = valid.repeat_interleave(hop, 1)[:, None].float()
        with torch.no_grad():
            y = codec.model.decoder((x0 * std + mean).masked_fill(~valid[..., None], 0).transpose(1, 2)) * keep
        y_hat = codec.model.decoder((out * std + mean).masked_fill(~valid[..., None], 0).transpose(1, 2)) * keep
        mel = mel_loss(y_hat, y)
        return mel + mse if kind == "mel+mse" else mel

    step, start = 0, time.time()
    if args.regressor and os.path.exists(args.regressor):  # trained before: its weights and normalization
        saved = torch.load(args.regressor, map_location="cpu", weights_only=True)
        model.load_state_dict(saved["model"])
        mean, std, step = saved["mean"], saved["std"], args.steps
    while step < args.steps:
        for batch in dm.train_dataloader():
            loss = loss_of(batch)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            if step % 100 == 0:
                print(f"step {step}: loss {loss.item():.4f}, {step / (time.time() - start):.2f} steps/s", flush=True)
            if step >= args.steps:
                break
    if args.regressor and not os.path.exists(args.regressor):
        torch.save({"model": model.state_dict(), "mean": mean, "std": std}, args.regressor)
    model.eval()
    with torch.no_grad():
        val = [loss_of(b, "mse").item() for _, b in zip(range(6), dm.val_dataloader())]

    sr = tts.sample_rate
    refs, _, real, voices = held_out(args.manifest, sr, args.items, args.seed, tts.min_voice_seconds)
    unit_ar = None
    if args.ar_units:
        from audiokit.valle.lightning import ValleARModule

        unit_ar = ValleARModule.load_from_checkpoint(args.ar_units, map_location="cpu").model.eval()
    systems = {"truth": []} | ({"AR greedy": [], "AR top-k 50": [], "AR top-p 0.8, repetition-aware": []}
                               if unit_ar is not None else {})
    with torch.no_grad():
        for text, wav, voice in zip(refs, real, voices):
            tokens, prompt = codec.encode(wav, sr), codec.encode(voice, sr)
            codes = tokens.codes[0, :, : int(tokens.lengths[0])]
            ids = tts._sentences(text)[0][1]
            inputs_of = {"truth": units.encode(wav, sr).codes[0, 0] if units is not None else None}
            if unit_ar is not None:
                inputs_of.update(generated_units(unit_ar, units, text, voice, sr, args.seed))
            for name, u in inputs_of.items():
                T = codes.shape[1] if name == "truth" else len(u)
                unit_cache["held-out"] = u
                batch = {"id": ["held-out"], "text": ids[None], "text_lens": torch.tensor([len(ids)]),
                         "codes": codes[None] if name == "truth" else torch.zeros(1, codes.shape[0], T, dtype=torch.long),
                         "code_lens": torch.tensor([T]), "voice": prompt.codes[:, :, : int(prompt.lengths[0])],
                         "voice_frames": prompt.lengths.view(-1), "voice_clips": 1}
                out, _, _ = predict(batch)
                z = (out * std + mean).transpose(1, 2)
                audio = codec.decode_latents(z, torch.tensor([T]))[0]
                systems[name].append(audio[: wav.shape[-1]] if name == "truth" else audio)
    judge = Transcriber.load(args.judge)
    result = {"mode": args.mode, "loss": args.loss, "steps": args.steps, "val_mse": round(sum(val) / len(val), 4)}
    for name, wavs in systems.items():
        hyps = [h.text for h in judge.transcribe(wavs, sr, temperature=0.0)]
        scores = wer_cer(refs, hyps)
        key = "" if name == "truth" else f" ({name}'s units)"
        result.update({f"wer{key}": round(scores["wer"], 4), f"wer capped{key}": round(scores["wer_capped"], 4),
                       f"exact{key}": scores["exact"], f"examples{key}": list(zip(refs, hyps))[:4]})
    print(json.dumps(result), flush=True)


def generated_units(ar, units, text: str, voice: torch.Tensor, sr: int, seed: int) -> dict:
    """Units a VALL-E AR trained on a units store writes for ``text`` after the voice clip's units (the prompt as a
    voice reference, no transcript): greedy, top-k 50, and top-p 0.8 with repetition-aware sampling (VALL-E 2)."""
    from audiokit.text.phonemes import PHONEME_VOCAB
    from audiokit.valle.data import phoneme_ids, phonemize
    from audiokit.valle.generate import SamplingOptions, generate_ar

    ph = phonemize([text], "en")[0]
    ids, prompt = torch.tensor(phoneme_ids(ph)), units.encode(voice, sr).codes[0, 0]
    out = {}
    for name, options in (("AR greedy", SamplingOptions(temperature=0.0)), ("AR top-k 50", SamplingOptions(seed=seed)),
                          ("AR top-p 0.8, repetition-aware", SamplingOptions(seed=seed, top_k=None, top_p=0.8,
                                                                            repetition_window=10))):
        limit = options.max_frames(len(PHONEME_VOCAB.encode(ph)), units.frame_rate)
        u = generate_ar(ar, [ids], [prompt], [limit], options, voice_only=True)[0]
        out[name] = u if len(u) else prompt[-1:]
    return out

if __name__ == "__main__":
    main()
