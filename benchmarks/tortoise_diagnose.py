"""Which stage of a Tortoise loses the words? The AR, CLVP and the diffusion decoder judged apart.

    python benchmarks/tortoise_diagnose.py --model exp/synth-digits/tortoise-export \\
        --manifest data/digits/test.jsonl --items 40

For held-out utterances (as ``audiokit eval tts`` picks them: the manifest's order, the voice a 3 s crop of
another utterance of the same speaker), each row decodes the same items a different way and the judge reads them:

- ``recording`` and ``codec resynthesis`` (the floor every row stands on);
- ``diffusion on truth's codebook 1``: the AR is teacher-forced on the recording's own codebook-1 codes and the
  decoder turns its latents into codec latents (a stage-1 decoder in the export reads the codes themselves):
  what the decoder makes of a perfect AR;
- ``AR, one sample``: one AR candidate (no reranking) through the same decoder; length ratio = its frames /
  the recording's;
- ``AR, CLVP's pick of N``: the preset's candidates, the best by CLVP (what ``synthesize`` does);
- with ``--renoise``: one denoising step from the recording's own latent noised to each level — how much of the
  truth the decoder needs to keep the words (and, if it reads the text, the same with another string's text:
  does it use the text?).

Besides WER, each row has the WER with each string's capped at 100 % and the strings said exactly: a few
hallucinated sentences dominate the plain WER of babble.

The judge is Whisper tiny.en unless ``--judge``. Prints JSON lines and a Markdown table (WER in total and per
speaker).
"""
import argparse
import json
import random
import warnings

import torch

from _timing import print_table

warnings.filterwarnings("ignore")


def held_out(manifest: str, sr: int, items: int, seed: int, min_voice_seconds: float):
    """The items ``eval tts`` would pick (the manifest's order; the voice a 3 s crop of another utterance of the
    same speaker): texts, speakers, recordings and voice clips at ``sr``."""
    from audiokit.data.manifest import entry_audio, read_manifest
    from audiokit.tts_eval import pick_prompts

    entries = [e for e in read_manifest(manifest) if e.get("text")]
    pairs = [(e, q) for e, q in zip(entries, pick_prompts(entries, entries, seed, min_voice_seconds))
             if q is not None][:items]
    rng = random.Random(seed)
    refs, speakers, real, voices = [], [], [], []
    for e, q in pairs:
        wav, _ = entry_audio(e, sr)
        pwav, _ = entry_audio(q, sr)
        n = int(3.0 * sr)
        if pwav.shape[-1] > n:
            s = rng.randrange(pwav.shape[-1] - n + 1)
            pwav = pwav[s: s + n]
        refs.append(e["text"])
        speakers.append(e.get("speaker", ""))
        real.append(wav)
        voices.append(pwav)
    return refs, speakers, real, voices


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="an exported Tortoise folder")
    p.add_argument("--codes-decoder", default=None, metavar="CKPT",
                   help="also: a stage-1 decoder checkpoint (conditioned on codebook-1 embeddings, not AR latents), "
                        "run on truth's codebook 1: does conditioning on AR latents cost words?")
    p.add_argument("--manifest", required=True)
    p.add_argument("--judge", default="asr")
    p.add_argument("--items", type=int, default=40)
    p.add_argument("--preset", default="fast")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--renoise", type=float, nargs="*", default=[], metavar="LEVEL",
                   help="also: one denoising step from the recording's own latent noised to each level in [0, 1] "
                        "(and, for a decoder that reads the text, with another string's text)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from audiokit.asr.metrics import wer_cer
    from audiokit.asr.transcriber import Transcriber
    from audiokit.tortoise.generate import ar_latents, sample_candidates
    from audiokit.tortoise.tts import TortoiseTTS, resolve_preset
    from audiokit.valle.generate import SamplingOptions

    tts = TortoiseTTS.load(args.model)
    judge = Transcriber.load(args.judge)
    sr = tts.sample_rate
    refs, speakers, real, voices = held_out(args.manifest, sr, args.items, args.seed, tts.min_voice_seconds)
    names = list(dict.fromkeys(speakers))
    rows = []

    def row(system: str, wavs: list[torch.Tensor], **extra):
        hyps = [h.text for h in judge.transcribe(wavs, sr, temperature=0.0)]
        per = {s: wer_cer([r for r, t in zip(refs, speakers) if t == s],
                          [h for h, t in zip(hyps, speakers) if t == s])["wer"] for s in names}
        scores = wer_cer(refs, hyps)
        r = {"system": system, "items": len(refs), "wer": scores["wer"], "by_speaker": per, **extra,
             "wer_capped": scores["wer_capped"], "exact": scores["exact"],
             "examples": [{"ref": a, "hyp": b} for a, b in list(zip(refs, hyps))[:4]]}
        rows.append(r)
        print(json.dumps(r), flush=True)

    row("recording", real)
    truth = [tts.codec.encode(w, sr) for w in real]
    row("codec resynthesis", [tts.codec.decode(t)[0, : w.shape[-1]] for t, w in zip(truth, real)])

    preset = resolve_preset(args.preset)
    gen = torch.Generator().manual_seed(args.seed)
    options = SamplingOptions(temperature=0.8, top_p=0.8, seed=args.seed)
    teacher, one, ratio_num, ratio_den = [], [], 0, 0
    on_codes = tts.diffusion_meta.get("conditioning", "ar-latents") == "codes"  # a stage-1 decoder in the export

    def cond(voice_ar, ids, codes):
        return [tts.diffusion.cond_from_codes(codes)] if on_codes else ar_latents(tts.ar, voice_ar, ids, [codes])

    per_item = []  # (ids, AR voice latent, decoder voice latent, truth's codebook 1)
    with torch.inference_mode():
        for text, t, v in zip(refs, truth, voices):
            ids = tts._sentences(text)[0][1]
            voice_ar, voice_diff = tts.voice_latents(tts.prepare_voice(v, sr))
            first = t.codes[0, 0, : int(t.lengths[0])].cpu()
            per_item.append((ids, voice_ar, voice_diff, first))
            teacher.append(tts.diffuse(cond(voice_ar, ids, first), voice_diff, preset.diffusion_steps,
                                       preset.guidance, gen, text=ids, given=[first])[0])
            max_frames = int(max(2.0, tts.seconds_per_token * len(ids)) * tts.codec.frame_rate)
            cand = sample_candidates(tts.ar, voice_ar, ids, 1, max_frames, options)[0]
            ratio_num, ratio_den = ratio_num + len(cand), ratio_den + len(first)
            cand = cand if len(cand) else first[:1]
            one.append(tts.diffuse(cond(voice_ar, ids, cand), voice_diff, preset.diffusion_steps, preset.guidance, gen,
                                   text=ids, given=[cand])[0])
    row("diffusion on truth's codebook 1" + (" (its codes)" if on_codes else " (AR latents)"),
        [tts._join([z], 0.0) for z in teacher])
    net, process = tts.diffusion, tts.process
    for level in args.renoise:  # one step from truth's latent noised to the level: what is left for the decoder
        for wrong in ((False, True) if net.text_vocab else (False,)):
            zs = []
            with torch.inference_mode():
                for i, (t, (ids, voice_ar, voice_diff, first)) in enumerate(zip(truth, per_item)):
                    x0 = net.normalize(net.target(tts.codec.model, t.codes[:, :, : int(t.lengths[0])]))
                    tt = process.time_at(level)
                    x_t = process.noisy(x0, tt, torch.randn(x0.shape, generator=gen))
                    text = per_item[(i + 1) % len(per_item)][0] if wrong else ids  # another string's text
                    out = net(x_t, process.net_time(tt), cond(voice_ar, ids, first)[0][None], voice_diff[None],
                              text=text[None] if net.text_vocab else None)
                    zs.append(net.compose(tts.codec.model, net.denormalize(process.x0_from(x_t, tt, out)), first[None])[0].T)
            row(f"truth noised to level {level}, one step" + (", another string's text" if wrong else ""),
                [tts._join([z], 0.0) for z in zs])
    if args.codes_decoder:
        from audiokit.tortoise.lightning import read_checkpoint
        from audiokit.tortoise.diffusion import DiffusionDecoder
        from audiokit.tts import TTSLoadError, load_state

        meta, state = read_checkpoint(args.codes_decoder, ("diffusion",), TTSLoadError)
        stage1, kept = load_state(DiffusionDecoder(**meta["config"]), state, args.codes_decoder).eval(), tts.diffusion
        tts.diffusion = stage1
        with torch.inference_mode():
            z1 = [tts.diffuse([stage1.cond_from_codes(first)], tts.voice_latents(tts.prepare_voice(v, sr))[1],
                              preset.diffusion_steps, preset.guidance, gen, text=ids, given=[first])[0]
                  for v, (ids, _, _, first) in zip(voices, per_item)]
        tts.diffusion = kept
        row("stage-1 decoder on truth's codebook 1", [tts._join([z], 0.0) for z in z1])
    row("AR, one sample", [tts._join([z], 0.0) for z in one], length_ratio=round(ratio_num / ratio_den, 3))
    picked = [tts.synthesize(text, voice=v, sample_rate=sr, preset=args.preset, seed=args.seed).audio
              for text, v in zip(refs, voices)]
    row(f"AR, CLVP's pick of {preset.candidates}", picked)

    print()
    print_table(["system", "WER", "WER, each ≤ 100 %", "exact", *names],
                [[r["system"], f"{100 * r['wer']:.1f} %", f"{100 * r['wer_capped']:.1f} %", r["exact"],
                  *(f"{100 * r['by_speaker'][s]:.0f} %" for s in names)] for r in rows])


if __name__ == "__main__":
    main()
