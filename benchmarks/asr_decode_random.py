"""ASR decoding speed against openai-whisper with RANDOM weights at tiny's dimensions (exact token counts; the real-weights
comparison, against faster-whisper too, is benchmarks/asr_speed.py).

    python benchmarks/asr_decode_random.py --threads 2 [--repeats 3] [--tokens 200] [--device cpu|cuda] [--dtype float32|float16|bfloat16]

Builds openai-whisper's model at Whisper tiny's dimensions (4+4 layers, width 384, multilingual vocabulary)
with random weights, saves it as an official checkpoint, loads it into audiokit, and times on 30 s windows:

- greedy decoding of one window, exactly ``--tokens`` tokens (end-of-text suppressed in both, so both do the
  same number of steps), including the encoder;
- beam search (5 beams), same length;
- a batch of 8 different windows, greedy: openai-whisper's ``decode`` on the batch, and one window at a time
  (the way ``whisper.transcribe`` walks a folder of files), against audiokit's batched ``decode``;
- long-form: a 150 s file with ``transcribe`` (greedy, no fallback), the same weights scaled so that
  timestamps occur and both seek through the file.

``--draft-tokens N``: audiokit's greedy decoding checks N drafted tokens per decoder pass (exact: the same
tokens). Every comparison checks that both produce the same tokens. Prints JSON lines and a Markdown table.
Needs the ``reference`` extra.
"""
import argparse
import json
import os
import platform
import tempfile
import warnings

import torch

from _timing import timed_alternating

warnings.filterwarnings("ignore")

TINY = dict(n_mels=80, n_audio_ctx=1500, n_audio_state=384, n_audio_head=6, n_audio_layer=4, n_vocab=51865,
            n_text_ctx=448, n_text_state=384, n_text_head=6, n_text_layer=4)


def speechlike(seconds, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * 16000)) / 16000
    f0 = 110 + 20 * seed + 30 * torch.sin(2 * torch.pi * 0.5 * t)
    x = sum(torch.sin(2 * torch.pi * k * torch.cumsum(f0, 0) / 16000) / k for k in range(1, 8))
    env = 0.5 + 0.5 * torch.sin(2 * torch.pi * (2 + seed % 3) * t)
    return (0.1 * x * env + 0.01 * torch.randn(len(t), generator=g)).float()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"], help="audiokit's dtype")
    ap.add_argument("--ref-dtype", default=None, choices=["float32", "float16", "bfloat16"],
                    help="openai-whisper's dtype [the same; on CPU openai-whisper itself only runs float32]")
    ap.add_argument("--draft-tokens", type=int, default=0,
                    help="audiokit's greedy decoding checks this many drafted tokens per pass (exact; 0 = off)")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: greedy,beam,batch,longform")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import whisper
    from whisper.model import ModelDimensions, Whisper

    from audiokit.asr.decoding import DecodingOptions, decode
    from audiokit.asr.features import log_mel_spectrogram, pad_or_trim
    from audiokit.asr.transcribe import transcribe
    from audiokit.asr.transcriber import Transcriber

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    skip = set(filter(None, args.skip.split(",")))
    torch.manual_seed(0)
    ref = Whisper(ModelDimensions(**TINY)).eval()
    with torch.no_grad():
        for p in ref.parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.05)
    d = tempfile.mkdtemp()
    torch.save({"dims": TINY, "model_state_dict": ref.state_dict()}, f"{d}/tiny.pt")
    assets = os.path.join(os.path.dirname(whisper.__file__), "assets", "multilingual.tiktoken")
    ours = Transcriber.load(f"{d}/tiny.pt", vocab=assets, device=device).to(dtype=dtype)
    ref = ref.to(device)
    ref_dtype = getattr(torch, args.ref_dtype or args.dtype)
    fp16 = ref_dtype == torch.float16
    if ref_dtype == torch.bfloat16:
        ref = ref.to(ref_dtype)  # openai-whisper only knows fp16/fp32; bf16 is cast by hand
    tok = ours.tokenizer
    eot = tok.eot
    suppress = f"-1,{eot}"
    mels = torch.stack([log_mel_spectrogram(pad_or_trim(speechlike(30, s))) for s in range(8)]).to(device)
    mel_dtype = ref_dtype
    rows = []

    def compare(name, ref_fn, our_fn, same):
        (t_ref, r), (t_ours, o) = timed_alternating([ref_fn, our_fn], args.repeats, sync)
        row = {"case": name, "openai_whisper_s": round(t_ref, 3), "audiokit_s": round(t_ours, 3),
               "speedup": round(t_ref / t_ours, 2), "same_tokens": same(r, o),
               "ref_dtype": str(ref_dtype).replace("torch.", ""), "dtype": args.dtype}
        print(json.dumps(row), flush=True)
        rows.append(row)

    with torch.no_grad():
        if "greedy" not in skip:
            ro = whisper.DecodingOptions(language="en", without_timestamps=True, sample_len=args.tokens, fp16=fp16,
                                         suppress_tokens=suppress, temperature=0.0)
            oo = DecodingOptions(language="en", without_timestamps=True, sample_len=args.tokens, suppress_tokens=suppress,
                                 draft_tokens=args.draft_tokens)
            compare(f"greedy, 1 x 30 s, {args.tokens} tokens", lambda: whisper.decode(ref, mels[0].to(mel_dtype), ro),
                    lambda: decode(ours.model, tok, mels[:1].to(dtype), oo)[0],
                    lambda r, o: r.tokens == o.tokens and len(o.tokens) == args.tokens)
        if "beam" not in skip:
            ro = whisper.DecodingOptions(language="en", without_timestamps=True, sample_len=args.tokens, fp16=fp16,
                                         suppress_tokens=suppress, beam_size=5, temperature=0.0)
            oo = DecodingOptions(language="en", without_timestamps=True, sample_len=args.tokens, suppress_tokens=suppress,
                                 beam_size=5)
            compare(f"beam 5, 1 x 30 s, {args.tokens} tokens", lambda: whisper.decode(ref, mels[0].to(mel_dtype), ro),
                    lambda: decode(ours.model, tok, mels[:1].to(dtype), oo)[0],
                    lambda r, o: r.tokens == o.tokens)
        if "batch" not in skip:
            ro = whisper.DecodingOptions(language="en", without_timestamps=True, sample_len=args.tokens, fp16=fp16,
                                         suppress_tokens=suppress, temperature=0.0)
            oo = DecodingOptions(language="en", without_timestamps=True, sample_len=args.tokens, suppress_tokens=suppress,
                                 draft_tokens=args.draft_tokens)
            ours_batch = lambda: decode(ours.model, tok, mels.to(dtype), oo)  # noqa: E731
            compare(f"greedy, batch of 8 x 30 s (whisper: one at a time), {args.tokens} tokens each",
                    lambda: [whisper.decode(ref, m.to(mel_dtype), ro) for m in mels], ours_batch,
                    lambda r, o: [x.tokens for x in r] == [x.tokens for x in o])
            compare(f"greedy, batch of 8 x 30 s (whisper: batched decode), {args.tokens} tokens each",
                    lambda: whisper.decode(ref, mels.to(mel_dtype), ro), ours_batch,
                    lambda r, o: [x.tokens for x in r] == [x.tokens for x in o])
        if "longform" not in skip:
            with torch.no_grad():  # make timestamps likely, so both seek through the file
                for m in (ref, ours.model):
                    m.decoder.token_embedding.weight[tok.timestamp_begin:] *= 1.35
                    m.decoder.token_embedding.weight[eot] *= 3.0
            audio = torch.cat([speechlike(50, 1), torch.zeros(16000 * 10), speechlike(90, 2)])
            compare("long-form transcribe, 150 s file",
                    lambda: whisper.transcribe(ref, audio, temperature=0.0, language="en", fp16=fp16, verbose=None),
                    lambda: transcribe(ours.model, tok, [audio], DecodingOptions(language="en", draft_tokens=args.draft_tokens), temperatures=(0.0,),
                                       silence_threshold_db=None)[0],
                    # openai-whisper's last window may put segments past the end of the file; audiokit clips them
                    lambda r, o: [s["tokens"] for s in r["segments"] if s["text"].strip() and s["end"] > s["start"]
                                  and s["start"] < 150.0] == [s.tokens for s in o.segments])

    machine = (torch.cuda.get_device_name(0) if device.type == "cuda"
               else f"{platform.processor() or platform.machine()}, {args.threads} threads")
    print(f"\nWhisper tiny dimensions, random weights, audiokit {args.dtype} / openai-whisper {ref_dtype}, {machine}, torch {torch.__version__}, "
          f"median of {args.repeats}\n")
    print("| case | openai-whisper (s) | audiokit (s) | speed-up | same tokens |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['openai_whisper_s']} | {r['audiokit_s']} | {r['speedup']}x | {r['same_tokens']} |")


if __name__ == "__main__":
    main()
