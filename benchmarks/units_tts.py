"""Text → speech through units (VALL-E's AR, or Tortoise's, on runs), judged on held-out digit strings in held-out voices.

    python benchmarks/units_tts.py --units exp/synth-digits/units-256 --manifest data/digits/test.jsonl \\
        --regressor exp/synth-digits/units-regressor-3k.pt \\
        --ar exp/synth-digits/valle-ar-runs-kinds/checkpoints/last.ckpt \\
        --lengths exp/synth-digits/valle-nar-runs/checkpoints/last.ckpt --runs-store exp/synth-digits/unit-runs

The toolkit's own chain is :class:`audiokit.valle.units.UnitsValleTTS` (recipes/digits/run.sh stages 19-23); this
script keeps the pieces apart, to judge each one (and decoders or ARs the export does not take).

The pipeline (stores from ``audiokit units``): the AR (``--ar``, VALL-E, prompted by the
voice clip's runs as a voice only; and/or ``--tortoise-ar``) writes the text's units as runs (one code per run),
``--lengths`` (a VALL-E NAR over the runs grid) writes each run's length in frames (without it: each unit's mean
run length in ``--runs-store``), the runs expand to frames, and a decoder turns the units into the codec's latent
or codes: ``--regressor`` (the units regressor ``tortoise_conditioning_probe.py --mode units`` saved) and/or
``--nar`` (a VALL-E NAR over the units + codec grid); the codec decodes. Rows judged (Whisper tiny.en, greedy;
the recordings first): the recordings' own units through each decoder (its ceiling), their runs with predicted
lengths (the lengths' cost), and each AR's runs, greedy and top-k 50 (end to end). With phone units it also prints
each AR's phone error: the edit distance of its runs (pauses and repeats merged) to the transcript's phones (the
recording's forced alignment), beside the CTC head's best path on the recording — no judge needed (``--judge none``).
"""
import argparse
import json
import time
import warnings

import torch
from tortoise_diagnose import held_out

warnings.filterwarnings("ignore")


def prompt_frames(seconds: float, frame_rate: float) -> int:
    return max(1, round(seconds * frame_rate))


def regressor_decoder(path: str, codec, n_units: int):
    """The units → codec-latent regressor ``tortoise_conditioning_probe.py --mode units`` saved (the conditional
    mean of the latent), as a decoder: (text ids, frame units, prompt, voice codes) → audio."""
    from tortoise_conditioning_probe import Regressor

    from audiokit.tortoise.lightning import batch_voice

    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = Regressor("units", codec.model.latent_dim, 1, 1, codec.info.codebook_size, codec.info.n_codebooks,
                      n_units=n_units)
    model.load_state_dict(saved["model"])
    model.eval()

    def decode(ids, u, prompt, voice):
        T = len(u)
        batch = {"voice": voice[None], "voice_frames": torch.tensor([voice.shape[1]]), "voice_clips": 1}
        out = model(u[None], u[None], None, None, batch_voice(model.voice, batch, "cpu"), torch.ones(1, T, dtype=torch.bool))
        return codec.decode_latents((out * saved["std"] + saved["mean"]).transpose(1, 2), torch.tensor([T]))[0]

    return decode


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--units", required=True, help="the UnitTokenizer folder the stores were made with")
    p.add_argument("--codec", default="pretrained/codec")
    p.add_argument("--manifest", required=True, help="held-out utterances with audio and text")
    p.add_argument("--nar", default=None, help="VALL-E NAR checkpoint over the units + codec grid (the decoder)")
    p.add_argument("--decoder", default=None, help="or/also: a units-decoder checkpoint (audiokit train units-decoder)")
    p.add_argument("--regressor", default=None,
                   help="or/also: a units regressor file (tortoise_conditioning_probe.py --mode units --regressor)")
    p.add_argument("--ar", default=None, help="VALL-E AR checkpoint over the runs grid")
    p.add_argument("--tortoise-ar", default=None,
                   help="also: a Tortoise AR checkpoint over the runs grid (its conditioning encoder reads the voice's runs)")
    p.add_argument("--clvp", default=None, help="with --tortoise-ar: a CLVP checkpoint over the runs; adds CLVP's pick of "
                   "--candidates top-k samples and a random one of them (the first drawn)")
    p.add_argument("--candidates", type=int, default=16)
    p.add_argument("--lengths", default=None, help="VALL-E NAR checkpoint over the runs grid (run lengths)")
    p.add_argument("--lengths-rule", default="mean", choices=["mean", "mode"],
                   help="a run's length from --lengths' distribution: its expectation (rounded) or its most likely")
    p.add_argument("--runs-store", default=None, help="the runs store (mean run length per unit, without --lengths)")
    p.add_argument("--pace", action="store_true",
                   help="rescale the AR rows' lengths to the training corpus's frames per phoneme (--runs-store)")
    p.add_argument("--prompt-seconds", type=float, default=1.5, help="the NAR's training prompt length")
    p.add_argument("--runs-prompt-seconds", type=float, default=0.85, help="the runs models' (in runs / 50)")
    p.add_argument("--items", type=int, default=40)
    p.add_argument("--judge", default="asr", help="the judge's model (`none`: lengths only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the JSON result here too")
    args = p.parse_args()
    torch.manual_seed(args.seed)

    from audiokit.asr.metrics import edit_distance, wer_cer
    from audiokit.asr.transcriber import Transcriber
    from audiokit.codec.codec import Codec
    from audiokit.codec.units import UnitTokenizer, deduplicate, expand
    from audiokit.tokens import CodecTokens, TokenStore
    from audiokit.valle.data import phoneme_ids, phonemize
    from audiokit.valle.generate import SamplingOptions, generate_ar, generate_nar
    from audiokit.valle.lightning import ValleARModule, ValleNARModule

    codec, units = Codec.load(args.codec), UnitTokenizer.load(args.units)
    sr, rate, K = codec.sample_rate, units.frame_rate, units.k
    decoders = {}
    if args.nar:
        nar = ValleNARModule.load_from_checkpoint(args.nar, map_location="cpu").model.eval()
        decoders["NAR"] = lambda ids, u, prompt, vc: codec.decode(
            CodecTokens(generate_nar(nar, [ids], [prompt[: nar.dims.n_codebooks]], [u])[0][1:][None], codec.info))[0]
    if args.regressor:
        decoders["regressor"] = regressor_decoder(args.regressor, codec, units.k)
    if args.decoder:
        from audiokit.valle.units import read_decoder_checkpoint

        dec = read_decoder_checkpoint(args.decoder)[0]
        decoders["decoder"] = lambda ids, u, prompt, vc: codec.decode_latents(
            dec.latents(u[None], torch.ones(1, len(u), dtype=torch.bool), vc[None]), torch.tensor([len(u)]))[0]
    if not decoders:
        raise SystemExit("give --nar, --regressor or --decoder")
    n_q = nar.dims.n_codebooks - 1 if args.nar else 6
    if args.pace and not args.runs_store:
        raise SystemExit("--pace needs --runs-store (the corpus's frames per phoneme)")
    ar = ValleARModule.load_from_checkpoint(args.ar, map_location="cpu").model.eval() if args.ar else None
    tortoise, bpe = None, None
    if args.tortoise_ar:
        from audiokit.text.bpe import BPETokenizer
        from audiokit.tortoise.lightning import TortoiseARModule

        module = TortoiseARModule.load_from_checkpoint(args.tortoise_ar, map_location="cpu")
        tortoise, bpe = module.model.eval(), BPETokenizer.from_json(module.tokenizer_json)
    clvp = None
    if args.clvp:
        from audiokit.tortoise.lightning import CLVPModule

        clvp = CLVPModule.load_from_checkpoint(args.clvp, map_location="cpu").model.eval()
    lengths_nar = (ValleNARModule.load_from_checkpoint(args.lengths, map_location="cpu").model.eval()
                   if args.lengths else None)
    mean_len = None
    if lengths_nar is None and args.runs_store:
        store, tot, cnt = TokenStore(args.runs_store), torch.zeros(K), torch.zeros(K)
        for key in store.ids()[:2000]:
            g = store[key].codes[0]
            tot.index_add_(0, g[0], g[1].float())
            cnt.index_add_(0, g[0], torch.ones(g.shape[1]))
        mean_len = (tot / cnt.clamp(min=1)).round().clamp(min=1).long()

    pace = None
    if args.pace:
        from audiokit.data.manifest import read_manifest

        store = TokenStore(args.runs_store)
        entries = [e for e in read_manifest(f"{args.runs_store}/train.jsonl") if e["id"] in store][:500]
        n_ph = sum(len(phoneme_ids(ph)) - 2 for ph in phonemize([e["text"] for e in entries], "en"))
        pace = sum(int(store[e["id"]].codes[0, 1].sum()) for e in entries) / n_ph
        print(f"pace: {pace:.2f} frames per phoneme (500 training utterances)", flush=True)

    def paced(lengths, ids):
        if pace is None:
            return lengths
        target = pace * (len(ids) - 2)
        edges = (lengths.float().cumsum(0) * target / lengths.sum()).round().long()
        return torch.diff(edges, prepend=torch.zeros(1, dtype=torch.long)).clamp(min=1)

    refs, _, real, voices = held_out(args.manifest, sr, args.items, args.seed, 1.0)
    P, Pr = prompt_frames(args.prompt_seconds, rate), prompt_frames(args.runs_prompt_seconds, rate)
    systems = {"recordings": []}
    with_lengths = lengths_nar is not None or mean_len is not None
    t0, stats = time.time(), {}

    def run_lengths(text_ids, voice_runs, values):
        if lengths_nar is None:
            return mean_len[values]
        probs = []
        mode = generate_nar(lengths_nar, [text_ids], [voice_runs], [values], probs=probs)[0][1]
        if args.lengths_rule == "mode":
            return mode
        return (probs[0][0] @ torch.arange(probs[0].shape[-1], dtype=torch.float)).round().long()

    errors: dict[str, list[int]] = {}

    def phone_error(name, runs, truth):
        """Phone units: the edit distance of a model's runs (pauses and repeats merged) to the transcript's phones."""
        said = torch.unique_consecutive(runs.cpu())
        said = said[said != 0].tolist()
        e = errors.setdefault(name, [0, 0])
        e[0] += edit_distance(truth, said)
        e[1] += len(truth)

    with torch.no_grad():
        for text, wav, voice in zip(refs, real, voices):
            ids = torch.tensor(phoneme_ids(phonemize([text], "en")[0]))
            vu = units.encode(voice, sr).codes[0, 0]
            vfull = codec.encode(voice, sr).codes[0]
            vc = vfull[:n_q, : len(vu)]
            prompt = torch.cat([vu[None, : vc.shape[1]], vc])[:, :P]
            vv, vl = deduplicate(vu, K - 1)
            voice_runs = torch.stack([vv, vl])[:, :Pr]
            frames = {"recordings' units → decoder": units.encode(wav, sr).codes[0, 0]}
            if hasattr(units, "align"):  # phone units: the recording's phones force-aligned to it, as the stores hold them
                frames = {"recordings' phones, aligned to the transcript → decoder": units.align(wav, sr, text),
                          "recordings' phones, the best path (no transcript) → decoder": frames["recordings' units → decoder"]}
            truth = None
            if hasattr(units, "align"):  # the transcript's phones, as the aligned runs spell them (no pauses)
                truth = torch.unique_consecutive(frames["recordings' phones, aligned to the transcript → decoder"])
                truth = truth[truth != 0].tolist()
                phone_error("the recording's best path", frames["recordings' phones, the best path (no transcript) → decoder"], truth)
            if with_lengths:
                values, _ = deduplicate(next(iter(frames.values())), K - 1)
                stats.setdefault("recordings", []).append(len(values))
                frames["recordings' runs, predicted lengths → decoder"] = expand(values, run_lengths(ids, voice_runs, values))
            if ar is not None and with_lengths:
                limit = 4 * len(ids) + 20
                for name, opt in (("greedy", SamplingOptions(temperature=0.0)), ("top-k 50", SamplingOptions(seed=args.seed))):
                    v = generate_ar(ar, [ids], [voice_runs[0]], [limit], opt, voice_only=True)[0]
                    v = v if len(v) else voice_runs[0, -1:]
                    frames[f"AR runs ({name}) → lengths → decoder"] = expand(v, paced(run_lengths(ids, voice_runs, v), ids))
                    stats.setdefault(name, []).append(len(v))
                    if truth is not None:
                        phone_error(f"AR ({name})", v, truth)
            if tortoise is not None and with_lengths:
                from audiokit.tortoise.data import text_ids
                from audiokit.tortoise.generate import sample_candidates

                voice = tortoise.conditioning(voice_runs[None], torch.tensor([voice_runs.shape[1]]))
                tids = torch.tensor(text_ids(bpe, text))
                for name, opt in (("greedy", SamplingOptions(temperature=0.0)), ("top-k 50", SamplingOptions(seed=args.seed))):
                    v = sample_candidates(tortoise, voice, tids, 1, 4 * len(ids) + 20, opt)[0]
                    v = v if len(v) else voice_runs[0, -1:]
                    frames[f"Tortoise AR runs ({name}) → lengths → decoder"] = expand(v, run_lengths(ids, voice_runs, v))
                    stats.setdefault(f"Tortoise {name}", []).append(len(v))
                    if truth is not None:
                        phone_error(f"Tortoise AR ({name})", v, truth)
                if clvp is not None:
                    from audiokit.tortoise.model import framed

                    cands = sample_candidates(tortoise, voice, tids, args.candidates, 4 * len(ids) + 20,
                                              SamplingOptions(seed=args.seed))
                    cands = [c if len(c) else voice_runs[0, -1:] for c in cands]
                    t, tv = framed([tids] * len(cands), None, None)
                    sp, sv = framed(cands, None, None)
                    best = int(clvp.score(t, tv, sp, sv).argmax())
                    for name, v in ((f"CLVP's pick of {args.candidates}", cands[best]), ("a random candidate", cands[0])):
                        frames[f"Tortoise AR runs ({name}) → lengths → decoder"] = expand(v, run_lengths(ids, voice_runs, v))
                        if truth is not None:
                            phone_error(f"Tortoise AR ({name})", v, truth)
            systems["recordings"].append(wav)
            for name, u in frames.items():
                stats.setdefault(f"frames: {name}", []).append(len(u))
                for dname, decode in decoders.items():
                    systems.setdefault(f"{name} [{dname}]", []).append(decode(ids, u, prompt, vfull).reshape(-1))
    result = {"items": len(refs), "seconds": round(time.time() - t0), "means": {k: round(sum(v) / len(v), 1) for k, v in stats.items()},
              "phone_error": {k: round(e / max(n, 1), 4) for k, (e, n) in errors.items()}}
    for name, rate in result["phone_error"].items():
        print(f"{name}: phone error {rate:.1%} against the transcript's phones", flush=True)
    judge = Transcriber.load(args.judge) if args.judge != "none" else None
    for name, wavs in systems.items() if judge else ():
        hyps = [h.text for h in judge.transcribe(wavs, sr, temperature=0.0)]
        s = wer_cer(refs, hyps)
        result[name] = {"wer": round(s["wer"], 4), "wer_capped": round(s["wer_capped"], 4), "exact": s["exact"],
                        "examples": list(zip(refs, hyps))}
        print(f"{name}: WER {s['wer']:.1%} (capped {s['wer_capped']:.1%}), {s['exact']}/{len(refs)} exact", flush=True)
    print(json.dumps(result["means"]))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
