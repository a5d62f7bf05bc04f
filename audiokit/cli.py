"""The ``audiokit`` command. It parses arguments and dispatches to library functions; no logic lives here.

Errors that users cause (bad files, bad arguments) print one ``audiokit: error: ...`` line and exit 2,
never a traceback; ``AUDIOKIT_DEBUG=1`` shows the traceback.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import sys
from pathlib import Path

from . import __version__
from .pretrained import DEFAULT_ASR

# Subcommands whose model family has not landed yet: name -> (what it will do, what it needs).
PENDING: dict[str, tuple[str, str]] = {}


class UserError(Exception):
    """A problem with the user's input, reported in one line."""


def _add_data_commands(sub) -> None:
    data = sub.add_parser("data", help="make corpora and manifests, train text tokenizers",
                          description="Corpora, manifests and text tokenizers.")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    p = dsub.add_parser("synth", help="make the synthetic multi-speaker corpus (offline espeak-ng / flite / festival)",
                        description="Make a multi-speaker English corpus with exact transcripts, offline.")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--utterances", type=int, help="number of utterances to make")
    size.add_argument("--hours", type=float, help="about this many hours of audio")
    p.add_argument("--out", required=True, help="output folder (must not hold a corpus already)")
    p.add_argument("--speakers", type=int, default=24, help="espeak-ng speakers (flite/festival voices are added) [24]")
    p.add_argument("--test-speakers", type=int, default=3, help="held-out speakers, in the test split only [3]")
    p.add_argument("--valid-fraction", type=float, default=0.05, help="share of training speakers' utterances for validation [0.05]")
    p.add_argument("--sample-rate", type=int, default=24000, help="output sample rate [24000]")
    p.add_argument("--engines", default=None, help="comma-separated subset of espeak,flite,festival [every one installed]")
    p.add_argument("--max-sentences", type=int, default=2, help="an utterance joins 1..N sentences [2]")
    p.add_argument("--sentences", default=None, help="text file of sentences, one per line, or 'digits' (spoken digit "
                   "strings, 2-8 digits: the digits recipe) [bundled WordNet examples]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None, help="processes [all cores]")
    p.add_argument("--exclude", default=None, metavar="CORPUS",
                   help="a corpus folder made by this command: use none of its held-out voices (espeak variant, "
                        "flite/festival voice) and none of its test sentences, so that its test split stays held out "
                        "when both corpora are trained on")
    p.add_argument("--id-prefix", default="", help="put before every utterance id (corpora trained on together "
                                                  "need ids of their own) ['']")
    p.add_argument("--hold-out", default="", metavar="SPEAKERS",
                   help="comma-separated speaker ids to hold out as well (e.g. flite-rms,festival-ked_diphone: "
                        "held-out voices of every engine) ['']")
    p.set_defaults(func=cmd_data_synth)

    p = dsub.add_parser("transcribe", help="pseudo-label untranscribed audio with an ASR: a training manifest, resumable",
                        description="Transcribe the audio of folders and/or manifests in batches and append a manifest line "
                                    "per utterance (text, language, and the ASR's confidence: avg_logprob, no_speech_prob, "
                                    "compression_ratio) as each batch ends; run it again to resume. Utterances that fail "
                                    "the thresholds go to OUT.rejected.jsonl with the reason.")
    p.add_argument("inputs", nargs="+", help="folders of audio files and/or JSONL manifests")
    p.add_argument("--model", default=DEFAULT_ASR, help="the ASR: an exported folder, Whisper .pt, CTranslate2 or HF folder "
                   "[asr: the default, Whisper tiny.en]")
    p.add_argument("--out", required=True, help="manifest to write (.jsonl; appended to when resuming)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--language", default="en", help="language code, or 'auto' to detect it [en]")
    p.add_argument("--min-avg-logprob", type=float, default=-1.0, help="keep utterances at least this sure [-1.0]")
    p.add_argument("--max-no-speech", type=float, default=0.6, help="and at most this likely silent [0.6]")
    p.add_argument("--max-compression", type=float, default=2.4, help="and not more repetitive than this [2.4]")
    p.set_defaults(func=cmd_data_transcribe)

    p = dsub.add_parser("manifest", help="build a JSONL manifest from a LibriTTS, LJSpeech or LibriSpeech folder",
                        description="Build a manifest from a corpus folder laid out as the public corpus is.")
    p.add_argument("layout", choices=["libritts", "ljspeech", "librispeech"])
    p.add_argument("root", help="corpus folder")
    p.add_argument("--out", required=True, help="manifest to write (.jsonl)")
    p.add_argument("--subsets", nargs="*", default=None, help="sub-folders to include (e.g. train-clean-100)")
    p.set_defaults(func=cmd_data_manifest)

    p = dsub.add_parser("validate", help="check manifests and print their statistics")
    p.add_argument("manifests", nargs="+")
    p.add_argument("--check-audio", action="store_true", help="also open every audio file's header")
    p.set_defaults(func=cmd_data_validate)

    p = dsub.add_parser("bpe", help="train a byte-level BPE tokenizer on a manifest's text")
    p.add_argument("--manifest", required=True, nargs="+")
    p.add_argument("--vocab-size", type=int, default=1000)
    p.add_argument("--out", required=True, help="tokenizer JSON to write")
    p.set_defaults(func=cmd_data_bpe)

    p = dsub.add_parser("phonemize", help="print the espeak-ng phonemes and ids of a text")
    p.add_argument("text")
    p.add_argument("--language", default="en-us")
    p.set_defaults(func=cmd_data_phonemize)

    p = dsub.add_parser("sentences", help="rebuild the bundled sentence list from a WordNet 3.0 database")
    p.add_argument("--wordnet", default="/usr/share/wordnet", help="folder with data.noun etc. [/usr/share/wordnet]")
    p.add_argument("--out", required=True, help="file to write (.txt or .txt.gz)")
    p.set_defaults(func=cmd_data_sentences)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audiokit",
        description="audiokit: codec, VALL-E, Tortoise and Whisper-style ASR over one codec token interface.",
    )
    parser.add_argument("--version", action="version", version=f"audiokit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bars or progress lines (standard error); results still print")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_data_commands(sub)
    _add_codec_commands(sub)
    _add_asr_commands(sub)
    _add_tts_commands(sub)
    for name, (what, needs) in PENDING.items():
        p = sub.add_parser(name, help=f"{what} [not available yet]",
                           description=f"{what[0].upper()}{what[1:]}.\n\nNot available in audiokit {__version__}: "
                                       f"it needs {needs}, which has not landed yet.",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        p.set_defaults(func=_pending(name, needs))
    return parser


def _pending(name: str, needs: str):
    def run(args) -> int:
        raise UserError(f"'audiokit {name}' is not available yet: it needs {needs}, which this version "
                        f"({__version__}) does not include")
    return run


def _add_codec_commands(sub) -> None:
    from .train import FAMILIES, PLANNED

    p = sub.add_parser("train", help="train a model family stage from a YAML config (LightningCLI)",
                       description="Train FAMILY with LightningCLI: every Trainer option works from the YAML config or the "
                                   "command line, e.g. --trainer.max_steps 1000, --trainer.devices 2 --trainer.strategy ddp; "
                                   "--ckpt_path last resumes a killed run. Families: " + ", ".join(FAMILIES)
                                   + (" (planned: " + ", ".join(PLANNED) + ")" if PLANNED else "") + ".")
    p.add_argument("family", help="model family stage, e.g. codec")
    p.add_argument("args", nargs=argparse.REMAINDER, help="LightningCLI arguments: --config FILE, --trainer.*, --model.*, --data.*")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("units", help="speech units for a tokenized corpus: fit them from an ASR encoder, write the stores "
                                     "a units VALL-E trains on",
                       description="Fit a units tokenizer (k-means over the encoder frames of the ASR, which must not be "
                                   "the model that will judge the TTS) and write OUT/tokenizer, OUT/frames (each utterance's "
                                   "units), OUT/runs (units as runs: the AR and the lengths NAR train here) and OUT/stacked "
                                   "(units over the codec's codebooks: the units decoder trains here). Parts already there "
                                   "are kept, so a rerun resumes.")
    p.add_argument("--asr", required=True, help="the ASR whose encoder makes the units (exported folder or checkpoint)")
    p.add_argument("--tokens", required=True, help="the codec's token store (audiokit tokenize; its manifests give the audio)")
    p.add_argument("--out", required=True, help="folder to write")
    p.add_argument("-k", "--k", type=int, default=256, help="number of units [256] (with --phones: the phones heard)")
    p.add_argument("--fit-items", type=int, default=1000,
                   help="training utterances the k-means (or the phones' CTC head) reads [1000]")
    p.add_argument("--phones", action="store_true",
                   help="phone units instead of k-means: a CTC head on the encoder learns the transcripts' phones "
                        "(espeak-ng), and every utterance's phones are force-aligned to its frames (pauses: silence)")
    p.add_argument("--fit-steps", type=int, default=2000, help="with --phones: the CTC head's training steps [2000]")
    p.add_argument("--n-q", type=int, default=None, help="codec codebooks under the units in OUT/stacked [all]")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_units)

    p = sub.add_parser("encode", help="compress an audio file to a codec bitstream (.akc)")
    p.add_argument("input", help="audio file (wav, flac, ogg, mp3)")
    p.add_argument("output", help=".akc file to write")
    p.add_argument("--codec", required=True, help="exported codec folder, training .ckpt, or official DAC/EnCodec checkpoint")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--bandwidth", type=float, help="target kbps [all codebooks]")
    group.add_argument("--n-q", type=int, help="number of codebooks")
    p.add_argument("--device", default="cpu")
    _add_codec_dtype(p)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help="decode a codec bitstream (.akc) back to audio")
    p.add_argument("input", help=".akc file")
    p.add_argument("output", help="audio file to write (.wav, .flac, .ogg)")
    p.add_argument("--codec", default=None, help="the codec that made the file [found from the file's fingerprint: "
                   "a bundled codec, or one used here before]")
    p.add_argument("--device", default="cpu")
    _add_codec_dtype(p)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("tokenize", help="turn manifests' audio into a CodecTokens store (trainer.predict, every device)",
                       description="Encode every utterance into a sharded token store at --out, and write each manifest "
                                   "there with tokens: store:ID references.")
    p.add_argument("--manifest", required=True, nargs="+")
    p.add_argument("--codec", required=True)
    p.add_argument("--out", required=True, help="token store folder")
    p.add_argument("--n-q", type=int, default=None, help="codebooks to keep [all]")
    p.add_argument("--batch-seconds", type=float, default=200.0, help="padded seconds of audio per batch [200]")
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--devices", default="1", help="devices per node, or 'auto' [1]")
    p.set_defaults(func=cmd_tokenize)

    p = sub.add_parser("eval", help="measure codec, ASR or TTS quality on a manifest",
                       description="Evaluate a model on a manifest. codec: mel/STFT distance, SI-SDR, PESQ, STOI, codebook "
                                   "usage, bitrate; one row per bandwidth. asr: WER and CER (jiwer, after text normalization). "
                                   "tts: the zero-shot protocol (prompt = 3 s of another utterance of the same speaker): WER "
                                   "through audiokit's ASR and pocketsphinx, speaker similarity (resemblyzer), real-time factor; "
                                   "ground-truth and codec-resynthesis rows beside the model's; for Tortoise also a random "
                                   "candidate's row beside CLVP's best (what reranking buys).")
    p.add_argument("what", choices=["codec", "asr", "tts"])
    p.add_argument("--manifest", required=True)
    p.add_argument("--codec", help="the codec to evaluate")
    p.add_argument("--model", help="asr: the ASR model (exported folder, .ckpt, or Whisper .pt); tts: the TTS folder")
    p.add_argument("--asr", default=DEFAULT_ASR, help="tts: the ASR that judges WER (and transcribes VALL-E's prompts) "
                   "[asr: the default, Whisper tiny.en]")
    p.add_argument("--seed", type=int, default=0, help="tts: prompt choice and sampling seed [0]")
    p.add_argument("--judge-beam", type=int, default=None,
                   help="tts: the judging ASR decodes with beam search of this width [greedy]")
    p.add_argument("--no-prompt-text", dest="prompt_text", action="store_false",
                   help="tts: use prompts as voice references only [their ASR transcripts make the model continue them]")
    p.add_argument("--nar-decoding", default=None, choices=["expected", "codes"],
                   help="VALL-E: codebooks 2-Q decoded at the expectation of the NAR's probabilities, or as its most "
                        "likely codes [the model's: expected]")
    p.add_argument("--temperature", type=float, default=None,
                   help="asr: one decoding temperature, no fallback [0 with fallback to 1.0]; tts: the AR's sampling "
                        "temperature, 0 = greedy [VALL-E 1.0, Tortoise 0.8]")
    p.add_argument("--top-k", type=int, default=None, help="tts: the AR samples among its k likeliest codes [50]")
    p.add_argument("--top-p", type=float, default=None, help="tts: nucleus sampling [VALL-E none, Tortoise 0.8]")
    _add_repetition_options(p)
    _add_alignment_option(p, None)
    p.add_argument("--vocab", default=None, help="asr: rank file of an official Whisper .pt")
    p.add_argument("--beam-size", type=int, default=None, help="asr: beam search [greedy]")
    p.add_argument("--ctc-weight", type=float, default=None,
                   help="asr: beam search's joint CTC/attention rescoring weight [0.3 for models with a CTC head; 0: off]")
    p.add_argument("--batch-size", type=int, default=8, help="asr: utterances decoded together [8]")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="asr: model precision")
    p.add_argument("--bandwidth", type=float, nargs="*", default=None, help="kbps values [1, 2, 4, ... codebooks]")
    p.add_argument("--max-items", type=int, default=None)
    p.add_argument("--opus", action="store_true",
                   help="codec: also pass the utterances through Opus at each level's bitrate (needs opus-tools) and "
                        "put its rows beside the codec's")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    p.add_argument("--report", default=None, metavar="DIR",
                   help="also write DIR/index.html: the figures as tables and plots (needs matplotlib)")
    p.add_argument("--card", action="store_true",
                   help="record the figures in the evaluated model folder's card (model.json + README.md)")
    _add_tortoise_options(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("convert", help="convert an official DAC, EnCodec or Whisper checkpoint to an audiokit folder")
    p.add_argument("kind", choices=["dac", "encodec", "whisper"])
    p.add_argument("src", help="official checkpoint (.pth for DAC, .th for EnCodec); Whisper: an OpenAI .pt, a CTranslate2 "
                               "(faster-whisper) folder or a Hugging Face transformers folder, detected from what is there")
    p.add_argument("dst", help="folder to write (config.json + model.safetensors [+ vocab.tiktoken])")
    p.add_argument("--vocab", default=None, help="Whisper .pt: its multilingual.tiktoken or gpt2.tiktoken [looked for beside src]")
    p.add_argument("--fp16", action="store_true", help="Whisper: store the weights in float16 (half the size)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("export", help="write inference weights + config of a trained codec, ASR, VALL-E or Tortoise model to a folder",
                       description="Export a training checkpoint for inference. A VALL-E AR checkpoint needs its NAR (--nar) "
                                   "and codec (--codec); --asr bundles an ASR model to transcribe prompts. A Tortoise AR "
                                   "checkpoint needs CLVP (--clvp), the diffusion decoder (--diffusion: the "
                                   "diffusion-ar-latents stage, or a stage-1 one) and the codec (--codec). On speech "
                                   "units, either AR checkpoint takes the lengths NAR (--nar), the units decoder "
                                   "(--decoder) and the units (--units) in place of the NAR / diffusion decoder.")
    p.add_argument("checkpoint", help="training checkpoint (.ckpt): codec, ASR, VALL-E AR or Tortoise AR")
    p.add_argument("dst", help="folder to write, e.g. pretrained/codec-small")
    p.add_argument("--name", default=None, help="the model's name [its run folder: runs/NAME/checkpoints/last.ckpt]")
    p.add_argument("--nar", default=None, help="VALL-E: the NAR checkpoint; on units (VALL-E or Tortoise): the lengths NAR's")
    p.add_argument("--codec", default=None, help="VALL-E, Tortoise: the codec their tokens came from (exported folder)")
    p.add_argument("--asr", default=None, help="VALL-E: an ASR model to bundle for prompt transcripts (optional)")
    p.add_argument("--clvp", default=None, help="Tortoise: the CLVP checkpoint")
    p.add_argument("--diffusion", default=None, help="Tortoise: the diffusion decoder checkpoint")
    p.add_argument("--units", default=None, help="VALL-E or Tortoise on units: the units tokenizer folder (audiokit units' OUT/tokenizer)")
    p.add_argument("--decoder", default=None, help="VALL-E or Tortoise on units: the units-decoder checkpoint")
    _add_alignment_option(p, "monotonic")
    store = p.add_mutually_exclusive_group()
    store.add_argument("--fp16", action="store_true", help="store weights in float16 (half the size)")
    store.add_argument("--int8", action="store_true",
                       help="ASR, VALL-E, Tortoise: store weight matrices in int8 with a scale per row (a quarter of the "
                            "size; dequantized when loaded), everything else in float16")
    p.add_argument("--notes", default=None, help="free text for the model card (e.g. the machine it trained on)")
    p.set_defaults(func=cmd_export)


def _add_tortoise_options(p) -> None:
    g = p.add_argument_group("Tortoise")
    g.add_argument("--preset", default="fast", choices=["ultra_fast", "fast", "standard", "high_quality"],
                   help="candidates / diffusion steps / guidance [fast]")
    g.add_argument("--candidates", type=int, default=None, help="AR samples CLVP ranks [the preset's]")
    g.add_argument("--diffusion-steps", type=int, default=None, help="DDIM steps [the preset's]")
    g.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale, 1 = none [the preset's]")


def _add_repetition_options(p) -> None:
    p.add_argument("--repetition-window", type=int, default=0,
                   help="repetition-aware sampling (VALL-E 2): a drawn code that already fills --repetition-threshold "
                        "of the last N generated ones is drawn again from the whole distribution [0: off]")
    p.add_argument("--repetition-threshold", type=float, default=0.1, help="see --repetition-window [0.1]")


def _add_alignment_option(p, default) -> None:
    p.add_argument("--alignment", default=default, choices=["monotonic", "free"],  # valle.units.ALIGNMENTS (torch-free here)
                   help="on phone units: the AR spells the text's phones in order and chooses the pauses (monotonic), or "
                        "chooses every unit itself (free: it may skip or repeat words) "
                        + ("[monotonic]" if default else "[the model's, from its export]"))


def _set_alignment(tts, alignment, model) -> None:
    """--alignment on tts / eval tts: decode a phone-units model another way than its export says."""
    if alignment is None:
        return
    if not hasattr(getattr(tts, "units", None), "script"):  # codec tokens, or k-means units (no phones to spell)
        raise UserError(f"--alignment applies to VALL-E or Tortoise on phone units; {model} is not on phone units")
    tts.alignment = alignment


def _repetition(args) -> dict:
    return {"repetition_window": args.repetition_window, "repetition_threshold": args.repetition_threshold}


def _add_tts_commands(sub) -> None:
    p = sub.add_parser("tts", help="speak text in the voice of a short prompt or reference clips (VALL-E, Tortoise)",
                       description="Synthesize TEXT in a voice. VALL-E takes one --prompt (1 s or more of speech; longer than "
                                   "the model's maximum is trimmed); its transcript makes the model continue the prompt (the "
                                   "paper's inference): give it with --prompt-text, or let the ASR (--asr, or the one bundled "
                                   "with the model) transcribe it; --prompt-text '' uses the prompt as a voice reference only. "
                                   "Tortoise takes one or more --voice clips (any sample rate) and a --preset. Long text is "
                                   "split into sentences.")
    p.add_argument("--model", required=True, help="exported TTS folder (audiokit export), or a bundled model's name")
    p.add_argument("--text", required=True, help="text to speak")
    p.add_argument("--prompt", default=None, help="VALL-E voice prompt: an audio file, or a .akc bitstream of the model's codec")
    p.add_argument("--voice", nargs="+", default=None, help="Tortoise reference clips of the voice (audio files or .akc)")
    p.add_argument("--prompt-text", default=None, help="the prompt's transcript ['' = none; default: ask the ASR]")
    p.add_argument("--asr", default=None, help="ASR model for the prompt's transcript [the one bundled with the model, else "
                   "asr: the default, Whisper tiny.en]")
    p.add_argument("--out", required=True, help="audio file to write (wav, flac, ogg)")
    p.add_argument("--language", default="en")
    p.add_argument("--seed", type=int, default=None, help="makes the result reproducible")
    p.add_argument("--temperature", type=float, default=None, help="AR sampling temperature; 0 = greedy [VALL-E 1.0, Tortoise 0.8]")
    p.add_argument("--top-k", type=int, default=None, help="[VALL-E 50, Tortoise none]")
    p.add_argument("--top-p", type=float, default=None, help="[VALL-E none, Tortoise 0.8]")
    _add_repetition_options(p)
    p.add_argument("--nar-decoding", default=None, choices=["expected", "codes"],
                   help="VALL-E: codebooks 2-Q decoded at the expectation of the NAR's probabilities, or as its most "
                        "likely codes [the model's: expected]")
    _add_alignment_option(p, None)
    p.add_argument("--device", default="cpu")
    _add_tortoise_options(p)
    p.set_defaults(func=cmd_tts)

    p = sub.add_parser("demo", help="start the Gradio TTS demo (the same as python app.py); needs the 'demo' extra",
                       add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER, help="options of the demo (audiokit demo --help)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("models", help="list the bundled models (pretrained/) with their eval figures, or check their files",
                       description="List the model folders under pretrained/ and the default ASR (Whisper tiny.en, in the "
                                   "user cache), or the folders given, from their model cards; --verify also checks every "
                                   "file's SHA-256 against its card.")
    p.add_argument("folders", nargs="*", help="model folders [every bundled one]")
    p.add_argument("--verify", action="store_true", help="check each file's size and SHA-256 against the card")
    p.add_argument("--refresh", action="store_true",
                   help="rewrite each card from the files as they are now (after copying or moving a folder), keeping its "
                        "training facts, notes and eval tables")
    p.add_argument("--share", action="store_true",
                   help="where a TTS folder carries a copy of a sibling folder's model (its codec, VALL-E's ASR), "
                        "replace the copy by a NAME.link to the sibling: the bundle holds each model once")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("check", help="a few training and inference steps of every family on one device (GPU bring-up)",
                       description="Train every family for a couple of steps at its CI size, export it and run its inference "
                                   "command on --device, in --precision; each family runs on its own, so one failure does not "
                                   "hide the others. Exit status 1 when any family failed; the log has each traceback.")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N [cpu]")
    p.add_argument("--precision", default="bf16-mixed", help="Lightning precision of the training steps [bf16-mixed]")
    p.add_argument("--families", nargs="*", default=None, help="a subset of data codec tokens asr valle tortoise [all]")
    p.add_argument("--steps", type=int, default=2, help="optimizer steps per training stage [2]")
    p.add_argument("--work", default=None, help="folder for the runs [a temporary one, removed afterwards]")
    p.add_argument("--json", default=None, help="write the per-family results here")
    p.set_defaults(func=cmd_check)


def _add_asr_commands(sub) -> None:
    p = sub.add_parser("transcribe", help="transcribe audio files (any length) with a Whisper-style model",
                       description="Transcribe audio files (wav, flac, ogg, mp3) or codec bitstreams (.akc, with --codec) of "
                                   "any length: 30-second windows, seeking on timestamps, several files decoded as one batch. "
                                   "Without --output-dir the transcripts go to standard output.")
    p.add_argument("files", nargs="+", help="audio files or .akc bitstreams")
    p.add_argument("--model", default=DEFAULT_ASR, help="exported ASR folder, training .ckpt, official Whisper .pt, CTranslate2 "
                   "(faster-whisper) or Hugging Face folder [asr: the default, Whisper tiny.en]")
    p.add_argument("--vocab", default=None, help="tokenizer ranks of an official Whisper .pt (multilingual.tiktoken or gpt2.tiktoken)")
    p.add_argument("--codec", default=None, help="the codec that made .akc inputs [found from their fingerprint]")
    p.add_argument("--format", default="txt", choices=["txt", "srt", "vtt", "json", "all"], help="output format [txt]")
    p.add_argument("--output-dir", default=None, help="write FILE-STEM.FORMAT here instead of printing")
    p.add_argument("--language", default="en", help="language code, or 'auto' to detect it [en]")
    p.add_argument("--task", default="transcribe", choices=["transcribe", "translate"])
    p.add_argument("--beam-size", type=int, default=None, help="beam search with this many beams [greedy]")
    p.add_argument("--ctc-weight", type=float, default=None, help="beam search ranks its candidates jointly with the "
                   "model's CTC head at this weight (models trained with ctc_weight) [0.3 where it has one; 0: off]")
    p.add_argument("--patience", type=float, default=None)
    p.add_argument("--length-penalty", type=float, default=None)
    p.add_argument("--best-of", type=int, default=5, help="samples per fallback temperature [5]")
    p.add_argument("--temperature", type=float, default=None, help="one temperature, no fallback [0 with fallback to 1.0]")
    p.add_argument("--without-timestamps", action="store_true", help="text only: no segment times, 30-second steps")
    p.add_argument("--initial-prompt", default=None, help="text that precedes the audio (names, spelling, style)")
    p.add_argument("--no-condition-on-previous-text", dest="condition", action="store_false")
    p.add_argument("--batch-size", type=int, default=8, help="files decoded together [8]")
    p.add_argument("--draft-tokens", type=int, default=0,
                   help="greedy decoding checks this many drafted tokens per pass: the same result in fewer passes, "
                        "faster only where the text repeats (with real weights on speech it is slower) [0: off]")
    p.add_argument("--seed", type=int, default=0, help="seed of the temperature fallback's sampling: the same "
                   "input gives the same transcript on every run; -1 draws fresh randomness [0]")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="model precision; bfloat16 is fast on CPUs with AMX/AVX-512 BF16 and on GPUs [float32]")
    p.set_defaults(func=cmd_transcribe)


# --------------------------------------------------------------------------- handlers
def cmd_transcribe(args) -> int:
    from pathlib import Path

    from .asr.transcribe import FORMATS
    from .asr.transcriber import Transcriber
    from .fileio import atomic_path

    inputs, codec = [], None
    for f in args.files:
        if f.endswith(".akc"):
            if codec is None:
                from .codec.bitstream import codec_for
                from .codec.codec import Codec

                codec = Codec.load(codec_for(f, args.codec), device=args.device)
            from .codec.bitstream import read_akc

            tokens, _ = read_akc(f, expected=codec.info)
            inputs.append(tokens)
        else:
            from .audio import read_audio

            inputs.append(read_audio(f, sample_rate=16000)[0].reshape(-1))  # every file is read before any is written
    import torch

    model = Transcriber.load(args.model, device=args.device, vocab=args.vocab).to(dtype=getattr(torch, args.dtype))
    kw = {} if args.temperature is None else {"temperature": args.temperature}
    results = model.transcribe(inputs, sample_rate=16000, codec=codec, language=None if args.language == "auto" else args.language,
                               task=args.task, beam_size=args.beam_size, patience=args.patience,
                               length_penalty=args.length_penalty, best_of=args.best_of,
                               without_timestamps=args.without_timestamps, initial_prompt=args.initial_prompt,
                               condition_on_previous_text=args.condition, batch_size=args.batch_size,
                               draft_tokens=args.draft_tokens, seed=None if args.seed < 0 else args.seed,
                               ctc_weight=args.ctc_weight, **kw)
    formats = FORMATS if args.format == "all" else (args.format,)
    for f, r in zip(args.files, results):
        if args.output_dir:
            out = Path(args.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            for fmt in formats:
                with atomic_path(out / f"{Path(f).stem}.{fmt}") as tmp:
                    tmp.write_text(r.format(fmt), encoding="utf-8")
            print(f"{f}: {len(r.segments)} segments, {r.duration:.1f} s -> {out}/{Path(f).stem}.{{{','.join(formats)}}}")
        else:
            for fmt in formats:
                if len(args.files) > 1 and fmt == "txt":
                    print(f"# {f}")
                sys.stdout.write(r.format(fmt))
    return 0

def _clip(path: str, codec):
    if str(path).endswith(".akc"):
        from .codec.bitstream import read_akc

        return read_akc(path, expected=codec.info)[0]
    return path


def cmd_tts(args) -> int:
    from .tts import TTS

    tts = TTS.load(args.model, device=args.device, asr=args.asr)
    _set_alignment(tts, args.alignment, args.model)
    sampling = {k: v for k, v in (("temperature", args.temperature), ("top_k", args.top_k), ("top_p", args.top_p)) if v is not None}
    sampling.update(_repetition(args))
    if tts.family == "tortoise":
        clips = args.voice or ([args.prompt] if args.prompt else None)
        if not clips:
            raise UserError("Tortoise needs reference clips of the voice: --voice a.wav [b.wav ...]")
        if args.nar_decoding is not None:
            raise UserError("--nar-decoding is a VALL-E option")
        out = tts.synthesize(args.text, [_clip(c, tts.codec) for c in clips], preset=args.preset,
                             candidates=args.candidates, diffusion_steps=args.diffusion_steps, guidance=args.guidance,
                             language=args.language, seed=args.seed, **sampling)
    else:
        if args.voice and len(args.voice) > 1:
            raise UserError("VALL-E takes one voice prompt (--prompt); several --voice clips are for Tortoise")
        prompt = args.prompt or (args.voice[0] if args.voice else None)
        if not prompt:
            raise UserError("VALL-E needs a voice prompt: --prompt voice.wav")
        if args.candidates is not None or args.diffusion_steps is not None or args.guidance is not None:
            raise UserError("--candidates, --diffusion-steps and --guidance are Tortoise options")
        out = tts.synthesize(args.text, _clip(prompt, tts.codec), prompt_text=args.prompt_text, language=args.language,
                             seed=args.seed, nar_decoding=args.nar_decoding, **sampling)
    for n in out.notices:
        print(f"note: {n}", file=sys.stderr)
    out.save(args.out)
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in out.timings.items())
    print(f"{args.out}: {out.duration:.2f} s at {out.sample_rate} Hz, {len(out.sentences)} sentence(s), "
          f"RTF {out.rtf:.2f}" + (f" ({stages})" if stages else ""))
    return 0


def cmd_demo(args) -> int:
    import importlib.util

    if importlib.util.find_spec("gradio") is None:
        raise UserError("the demo needs Gradio: pip install 'audiokit[demo]'")
    from .demo import main as demo_main

    return demo_main(args.args[1:] if args.args[:1] == ["--"] else args.args)


def cmd_models(args) -> int:
    from .pretrained import (PRETRAINED_DIR, NoDefaultASR, available, check_files, default_asr, read_card,
                             share_components, write_card)

    folders = [Path(f) for f in args.folders] or [PRETRAINED_DIR / n for n in available()]
    labels = {}
    if not args.folders:  # the default ASR lives in the user cache, not in pretrained/
        try:
            folders.append(default_asr(convert=False))
            labels[folders[-1]] = DEFAULT_ASR
        except NoDefaultASR as e:
            print(f"{DEFAULT_ASR:<12} asr       {e}")
    if not folders:
        print(f"no bundled models in {PRETRAINED_DIR}")
        return 0
    if args.share:
        for line in share_components(folders):
            print(f"shared: {line}")
    for folder in folders:
        card = write_card(folder) if args.refresh else read_card(folder)
        if args.verify:
            check_files(folder, card, hashes=True)
        ev = card.get("eval", {})
        figures = []
        if "codec" in ev:
            best = ev["codec"]["rows"][-1]
            figures.append(f"{best['kbps']:.1f} kbps: mel {best['mel_distance']:.2f}"
                           + (f", PESQ {best['pesq']:.2f}, STOI {best['stoi']:.2f}" if best.get("pesq") is not None else ""))
        if "asr" in ev:
            figures.append(f"WER {100 * ev['asr']['wer']:.1f} %")
        if "tts" in ev:
            rows = [r for r in ev["tts"]["rows"] if r["system"] not in ("ground truth", "codec resynthesis")
                    and "random" not in r["system"]]
            if rows and rows[0].get("wer_asr") is not None:
                figures.append(f"WER {100 * rows[0]['wer_asr']:.1f} %")
            if rows and rows[0].get("similarity") is not None:
                figures.append(f"similarity {rows[0]['similarity']:.3f}")
        size = sum(f["bytes"] for f in card["files"].values()) / 1e6
        print(f"{labels.get(folder, folder.name):<12} {card['family']:<9} {card['name']:<22} {card['parameters'] / 1e6:6.2f} M  {size:6.1f} MB  "
              f"{card['sample_rate']} Hz  {'; '.join(figures) or 'not evaluated'}" + ("  [files verified]" if args.verify else ""))
    return 0


def cmd_check(args) -> int:
    from .devcheck import CheckFailed, main as check

    try:
        return check(args.device, args.precision, args.work, args.json, args.families, args.steps)
    except CheckFailed as e:
        raise UserError(str(e)) from None


def cmd_train(args) -> int:
    from .train import FAMILIES, PLANNED, run

    if args.family in PLANNED:
        raise UserError(f"'audiokit train {args.family}' is not available yet: it needs {PLANNED[args.family]}, "
                        f"which this version ({__version__}) does not include")
    if args.family not in FAMILIES:
        raise UserError(f"unknown model family {args.family!r}; available: {', '.join(FAMILIES)}")
    run(args.family, args.args)
    return 0


def cmd_units(args) -> int:
    from .codec.units import UnitsError, write_unit_stores

    if not os.path.exists(args.asr):
        raise UserError(f"{args.asr}: no such ASR model")
    if args.k < 2:
        raise UserError(f"-k must be at least 2, got {args.k}")
    try:
        write_unit_stores(args.asr, args.tokens, args.out, k=args.k, fit_items=args.fit_items, n_q=args.n_q,
                          seed=args.seed, phones=args.phones, fit_steps=args.fit_steps)
    except UnitsError as e:
        raise UserError(str(e)) from None
    return 0


def _add_codec_dtype(p) -> None:
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="precision of the codec's encoder/decoder [float32]; bfloat16 is faster where the hardware has it "
                        "(codes can differ from float32's on near-ties)")


def cmd_encode(args) -> int:
    import torch

    from .audio import read_audio
    from .codec.bitstream import write_akc
    from .codec.codec import Codec

    codec = Codec.load(args.codec, device=args.device).to(dtype=getattr(torch, args.dtype))
    wav, sr = read_audio(args.input)
    tokens = codec.encode(wav, sr, bandwidth=args.bandwidth, n_q=args.n_q)
    num_samples = int(round(wav.shape[-1] * codec.sample_rate / sr))
    write_akc(args.output, tokens, num_samples)
    size = os.path.getsize(args.output)
    seconds = wav.shape[-1] / sr
    print(f"{args.output}: {tokens.n_q} codebooks, {tokens.n_frames} frames, {tokens.bitrate / 1000:.2f} kbps nominal, "
          f"{size} bytes ({size * 8 / seconds / 1000:.2f} kbps on disk)")
    return 0


def cmd_decode(args) -> int:
    import torch

    from .audio import write_audio
    from .codec.bitstream import codec_for, read_akc
    from .codec.codec import Codec

    codec = Codec.load(codec_for(args.input, args.codec), device=args.device).to(dtype=getattr(torch, args.dtype))
    tokens, num_samples = read_akc(args.input, expected=codec.info)
    audio = codec.decode(tokens)[0, :num_samples]
    write_audio(args.output, audio, codec.sample_rate)
    print(f"{args.output}: {num_samples / codec.sample_rate:.2f} s at {codec.sample_rate} Hz")
    return 0


def cmd_tokenize(args) -> int:
    from .codec.codec import Codec
    from .codec.tokenize import tokenize

    codec = Codec.load(args.codec)
    devices = args.devices if args.devices == "auto" else int(args.devices)
    store = tokenize(args.manifest, codec, args.out, n_q=args.n_q, batch_seconds=args.batch_seconds,
                     trainer_kwargs={"accelerator": args.accelerator, "devices": devices})
    print(f"{args.out}: {len(store)} utterances, {store.n_q} codebooks, {codec.info.describe()}")
    return 0


def cmd_eval(args) -> int:
    if args.what == "tts":
        return _eval_tts(args)
    if args.what == "asr":
        return _eval_asr(args)
    if not args.codec:
        raise UserError("audiokit eval codec needs --codec")
    from .codec.codec import Codec
    from .codec.evaluate import evaluate_codec, format_table

    codec = Codec.load(args.codec)
    rows = evaluate_codec(codec, args.manifest, args.bandwidth, args.max_items)
    print(format_table(rows))
    record = {"codec": codec.info.to_dict(), "manifest": args.manifest, "rows": rows}
    card = {"manifest": args.manifest, "utterances": rows[0].get("utterances"), "rows": rows}
    if args.opus:
        from .codec.evaluate import evaluate_opus
        from .codec.opus import OpusToolsMissing

        try:
            record["opus"] = card["opus"] = evaluate_opus(args.manifest, codec.sample_rate, [r["kbps"] for r in rows],
                                                          args.max_items)
        except OpusToolsMissing as e:
            raise UserError(str(e)) from None
        print("\n" + format_table(record["opus"]))
    if importlib.util.find_spec("pesq") is None or importlib.util.find_spec("pystoi") is None:
        print("(PESQ and STOI need the 'eval' extra: pip install 'audiokit[eval]')")
    _eval_output(args, args.codec, "codec", record, card)
    return 0


def _eval_output(args, folder: str, kind: str, record: dict, card: dict) -> None:
    """Write ``record`` to ``--json``; with ``--card``, put ``card`` in the evaluated folder's model card."""
    if args.json:
        from .fileio import atomic_path

        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(record, indent=1))
    if args.report:
        from .report import write_report

        page = write_report(kind, record, args.report)
        print(f"report: {page}")
        card = {**card, "report": str(page.resolve())}  # the card links the page
    if args.card:
        from .pretrained import add_eval, resolve

        target = resolve(folder)
        if not target.is_dir():
            raise UserError(f"--card records figures in an exported model folder's card; {folder} is a file")
        add_eval(target, kind, {**card, **({"max_items": args.max_items} if args.max_items else {})})
        print(f"recorded in {target}/model.json and README.md")


def _eval_asr(args) -> int:
    if not args.model:
        raise UserError("audiokit eval asr needs --model")
    from .asr.metrics import evaluate_asr
    from .asr.transcriber import Transcriber

    import torch

    t = Transcriber.load(args.model, device=args.device, vocab=args.vocab).to(dtype=getattr(torch, args.dtype))
    kw = {k: v for k, v in (("beam_size", args.beam_size), ("temperature", args.temperature),
                            ("ctc_weight", args.ctc_weight)) if v is not None}
    summary, rows = evaluate_asr(t, args.manifest, max_items=args.max_items, batch_size=args.batch_size, **kw)
    print(f"{args.manifest}: WER {100 * summary['wer']:.2f} %  CER {100 * summary['cer']:.2f} %  "
          f"({summary['utterances']} utterances, {summary['words']} words; {summary['backend']})")
    _eval_output(args, args.model, "asr", {"model": args.model, "manifest": args.manifest, **summary, "rows": rows},
                 {"manifest": args.manifest, **summary, **kw})
    return 0


def _eval_tts(args) -> int:
    if not args.model:
        raise UserError("audiokit eval tts needs --model")
    from .tts import TTS
    from .tts_eval import evaluate_tts, format_speaker_table, format_table

    from .asr.transcriber import Transcriber

    if args.judge_beam is not None and args.judge_beam < 1:
        raise UserError(f"--judge-beam must be at least 1, got {args.judge_beam}")
    judge = Transcriber.load(args.asr, device=args.device)  # "asr": the default, Whisper tiny.en
    tts = TTS.load(args.model, device=args.device, asr=judge)
    _set_alignment(tts, args.alignment, args.model)
    options = {"preset": args.preset, **{k: v for k, v in (("candidates", args.candidates), ("diffusion_steps", args.diffusion_steps),
                                                           ("guidance", args.guidance)) if v is not None}}
    sampling = {k: v for k, v in (("temperature", args.temperature), ("top_k", args.top_k), ("top_p", args.top_p))
                if v is not None}
    if args.repetition_window:
        sampling.update(_repetition(args))
    rows, items = evaluate_tts(tts, args.manifest, asr=judge, max_items=args.max_items, seed=args.seed, **sampling,
                               transcribe_prompts=args.prompt_text, options=options if tts.family == "tortoise" else None,
                               nar_decoding=args.nar_decoding if tts.family == "valle" else None,
                               judge_beam=args.judge_beam)
    print(format_table(rows, judge.name or "ASR"))
    per_voice = format_speaker_table(rows)
    if per_voice:
        print("\nper held-out voice:\n" + per_voice)
    judge_name = f"{judge.name} ({'the default ASR' if args.asr == DEFAULT_ASR else args.asr})"
    _eval_output(args, args.model, "tts", {"model": args.model, "manifest": args.manifest, "rows": rows, "items": items},
                 {"manifest": args.manifest, "rows": rows, "judge": judge_name, "seed": args.seed, **sampling,
                  **({"alignment": args.alignment} if args.alignment else {}),
                  **({"judge_beam": args.judge_beam} if args.judge_beam else {}),
                  **({"options": options} if tts.family == "tortoise" else
                     {"nar_decoding": args.nar_decoding or tts.nar_decoding})})
    return 0


def cmd_convert(args) -> int:
    from .pretrained import write_card

    if args.kind == "whisper":
        from .asr.layouts import LAYOUT_WORDS, convert_whisper

        t, layout = convert_whisper(args.src, args.dst, fp16=args.fp16, vocab=args.vocab)
        what = LAYOUT_WORDS[layout]
        d = t.model.dims
        print(f"{args.dst}: Whisper {d.n_audio_layer}+{d.n_text_layer} layers, width {d.n_audio_state}, "
              f"{d.n_vocab} tokens, {'multilingual' if t.tokenizer.multilingual else 'English-only'} (from {what})")
        return 0
    from .codec.codec import Codec
    from .codec.convert import ConversionError, convert_dac, convert_encodec

    try:
        model = convert_dac(args.src) if args.kind == "dac" else convert_encodec(args.src)
    except ConversionError as e:
        raise UserError(str(e)) from None
    codec = Codec(model, name=args.kind)
    codec.export(args.dst, card={"source": f"converted from the official {args.kind} checkpoint {os.path.basename(args.src)}"})
    write_card(args.dst)
    print(f"{args.dst}: {codec.info.describe()}")
    return 0


def _name_from_run(path: str) -> str:
    """An export's default name: the run folder a checkpoint sits in (``runs/codec-speech16/checkpoints/last.ckpt``
    → ``codec-speech16``), else the file's stem."""
    p = Path(path).resolve()
    folder = p.parent
    if folder.name in ("checkpoints", "ckpt", "ck"):
        folder = folder.parent
    generic = p.stem == "last" or p.stem.startswith("epoch=") or p.suffix == ".safetensors"
    return folder.name if generic and folder.name else p.stem


def cmd_export(args) -> int:
    import torch

    from .codec.codec import Codec
    from .pretrained import training_summary, write_card

    if not os.path.exists(args.checkpoint):
        raise UserError(f"{args.checkpoint}: no such checkpoint (export takes a training .ckpt of any family, or a "
                        "codec's model.safetensors / official .pth / .th)")
    args.name = args.name or _name_from_run(args.checkpoint)
    from .progress import Progress

    bar = Progress(3, "export", unit="steps")  # read the checkpoints, write the weights, write the card
    kind = _checkpoint_kind(args.checkpoint)
    dtype = torch.float16 if args.fp16 else torch.int8 if args.int8 else torch.float32
    if args.int8 and kind not in ("asr", "valle-ar", "tortoise-ar"):
        raise UserError(f"{args.checkpoint}: --int8 is for ASR, VALL-E and Tortoise exports; a codec stays float32 or "
                        "float16 (its tokens, and the fingerprint TTS models check, come from its exact weights)")
    if kind == "valle-nar":
        raise UserError(f"{args.checkpoint} is a VALL-E NAR checkpoint: export from the AR one, with --nar {args.checkpoint}")
    if kind == "units-decoder":
        raise UserError(f"{args.checkpoint} is a units-decoder checkpoint: export from the AR one (VALL-E or Tortoise), "
                        f"with --decoder {args.checkpoint} and --units")
    if kind in ("tortoise-clvp", "tortoise-diffusion", "tortoise-diffusion-ar-latents"):
        raise UserError(f"{args.checkpoint} is a Tortoise {kind[9:]} checkpoint: export from the AR one, with --clvp and "
                        "--diffusion (or, on units, --clvp, --nar, --decoder and --units)")
    if (args.units or args.decoder) and not (args.units and args.decoder):
        raise UserError("a TTS on units needs both its units folder (--units) and its decoder (--decoder)")
    if kind == "valle-ar":
        if not args.nar or not args.codec:
            raise UserError("exporting VALL-E needs the NAR checkpoint (--nar) and the codec (--codec) as well")
        if args.units:
            from .valle.units import UnitsValleTTS

            tts = UnitsValleTTS.from_checkpoints(args.checkpoint, args.nar, args.codec, args.units, args.decoder,
                                                 asr=args.asr, name=args.name, alignment=args.alignment)
            parts = {"ar": args.checkpoint, "nar": args.nar, "decoder": args.decoder}
            what = f"VALL-E on units (runs AR + lengths NAR + units decoder), {tts.units.info.describe()} → "
        else:
            from .valle.tts import ValleTTS

            tts = ValleTTS.from_checkpoints(args.checkpoint, args.nar, args.codec, asr=args.asr, name=args.name)
            parts = {"ar": args.checkpoint, "nar": args.nar}
            what = "VALL-E AR + NAR, "
        model = tts
        summary = f"{what}{tts.codec.info.describe()}" + (", with its ASR" if tts.own_asr is not None else "")
    elif kind == "tortoise-ar" and args.units:
        if not (args.clvp and args.nar and args.codec) or args.diffusion:
            raise UserError("exporting Tortoise on units needs the CLVP (--clvp), lengths NAR (--nar) and units decoder "
                            "(--decoder) checkpoints, the units (--units) and the codec (--codec); no --diffusion")
        from .tortoise.units import UnitsTortoiseTTS

        model = UnitsTortoiseTTS.from_checkpoints(args.checkpoint, args.clvp, args.nar, args.decoder, args.codec,
                                                  args.units, name=args.name, alignment=args.alignment)
        parts = {"ar": args.checkpoint, "clvp": args.clvp, "nar": args.nar, "decoder": args.decoder}
        summary = (f"Tortoise on units (AR runs + CLVP + lengths NAR + units decoder), {model.units.info.describe()} → "
                   f"{model.codec.info.describe()}")
    elif kind == "tortoise-ar":
        if not (args.clvp and args.diffusion and args.codec):
            raise UserError("exporting Tortoise needs the CLVP (--clvp) and diffusion (--diffusion) checkpoints and the codec (--codec)")
        from .tortoise.tts import TortoiseTTS

        tts = TortoiseTTS.from_checkpoints(args.checkpoint, args.clvp, args.diffusion, args.codec, name=args.name)
        parts = {"ar": args.checkpoint, "clvp": args.clvp, "diffusion": args.diffusion}
        model = tts
        summary = f"Tortoise AR + CLVP + diffusion ({tts.diffusion_meta['conditioning']}), {tts.codec.info.describe()}"
    elif kind == "asr":
        from .asr.transcriber import Transcriber

        t = Transcriber.load(args.checkpoint, name=args.name)
        parts = {"": args.checkpoint}
        model, summary = t, "ASR model"
    else:
        codec = Codec.load(args.checkpoint, name=args.name)
        parts = {"": args.checkpoint} if args.checkpoint.endswith(".ckpt") else {}
        model, summary = codec, None  # described from the exported weights below (float16 ones have their own fingerprint)
    training = {part: training_summary(path) for part, path in parts.items()}  # read before anything is written
    bar.update(1, note="read")
    source = " + ".join(map(os.path.basename, parts.values())) or os.path.basename(args.checkpoint)
    model.export(args.dst, dtype=dtype, card={"source": f"exported from {source}"})
    bar.update(1, note="weights written")
    card = write_card(args.dst, training=training.get("", training), notes=args.notes)
    bar.update(1, note="card written")
    bar.close()
    if summary is None:
        from .tokens import CodecInfo

        summary = CodecInfo.from_dict(card["codec"]).describe()
    print(f"{args.dst}: {summary}; {card['parameters'] / 1e6:.2f} M parameters in {card['dtype']}, "
          f"{sum(f['bytes'] for f in card['files'].values()) / 1e6:.1f} MB; card in {args.dst}/model.json + README.md")
    return 0


def _checkpoint_kind(path: str) -> str | None:
    """"asr", "valle-ar", "valle-nar", "tortoise-STAGE" for those training checkpoints; None otherwise (the codec loader then
    reports what is wrong with the file)."""
    from .fileio import RefusedPickle, load_torch_file

    if not path.endswith(".ckpt") or not os.path.isfile(path):
        return None
    try:
        ckpt = load_torch_file(path, UserError, mmap=True)
    except RefusedPickle:  # pickled code: refused here, with its one line
        raise
    except UserError:
        return None
    if not isinstance(ckpt, dict):
        return None
    if "asr_tokenizer" in ckpt:
        return "asr"
    if isinstance(ckpt.get("valle"), dict):
        return f"valle-{ckpt['valle'].get('stage')}"
    if isinstance(ckpt.get("tortoise"), dict):
        return f"tortoise-{ckpt['tortoise'].get('stage')}"
    if isinstance(ckpt.get("units_decoder"), dict):
        return "units-decoder"
    return None


def cmd_data_synth(args) -> int:
    from .data.synth import SynthConfig, synthesize_corpus

    engines = tuple(e.strip() for e in args.engines.split(",")) if args.engines else None
    cfg = SynthConfig(out=args.out, utterances=args.utterances, hours=args.hours, espeak_speakers=args.speakers,
                      test_speakers=args.test_speakers, valid_fraction=args.valid_fraction, sample_rate=args.sample_rate,
                      engines=engines, max_sentences=args.max_sentences, seed=args.seed, workers=args.workers,
                      sentences=args.sentences, exclude=args.exclude, id_prefix=args.id_prefix,
                      hold_out=tuple(x.strip() for x in args.hold_out.split(",") if x.strip()))
    summary = synthesize_corpus(cfg)
    hours = sum(summary["hours"].values())
    print(f"{args.out}: {sum(summary['utterances'].values())} utterances, {hours:.3f} h, {summary['speakers']} speakers "
          f"(test speakers held out: {len(summary['test_speakers'])}); {summary['audio_seconds_per_second']} s of audio "
          f"per second on {summary['workers']} workers")
    for split in ("train", "valid", "test"):
        print(f"  {os.path.join(args.out, split + '.jsonl')}: {summary['utterances'][split]} utterances, {summary['hours'][split]:.3f} h")
    return 0


def cmd_data_transcribe(args) -> int:
    from .asr.transcriber import Transcriber
    from .data.pseudolabel import Thresholds, label

    asr = Transcriber.load(args.model, device=args.device)
    thresholds = Thresholds(min_avg_logprob=args.min_avg_logprob, max_no_speech_prob=args.max_no_speech,
                            max_compression_ratio=args.max_compression)

    from .progress import Progress

    bar: list[Progress] = []

    def progress(done, total):  # per batch; those already labelled (a resumed run) count as done at once
        if not bar:
            bar.append(Progress(total, "data transcribe", unit="utterances"))
        bar[0].update(done - bar[0].done)

    c = label(args.inputs, asr, args.out, batch_size=args.batch_size, thresholds=thresholds,
              language=None if args.language == "auto" else args.language, progress=progress)
    if bar:
        bar[0].close()
    print(f"{args.out}: {c['kept']} kept, {c['rejected']} rejected (see the .rejected.jsonl beside it), "
          f"{c['skipped']} already there, of {c['total']} utterances")
    return 0


def cmd_data_manifest(args) -> int:
    from .data.builders import BUILDERS
    from .data.manifest import manifest_stats, write_manifest

    builder = BUILDERS[args.layout]
    entries = builder(args.root) if args.layout == "ljspeech" else builder(args.root, args.subsets)
    if not entries:
        raise UserError(f"no {args.layout} utterances found under {args.root}")
    write_manifest(args.out, entries)
    s = manifest_stats(entries)
    print(f"{args.out}: {s['utterances']} utterances, {s['hours']:.2f} h, {s['speakers']} speakers")
    return 0


def cmd_data_validate(args) -> int:
    from .audio import audio_info
    from .data.manifest import manifest_stats, read_manifest

    for path in args.manifests:
        entries = read_manifest(path)
        if args.check_audio:
            for e in entries:
                audio_info(e["audio"])
        print(json.dumps({"manifest": path, **manifest_stats(entries)}))
    return 0


def cmd_data_bpe(args) -> int:
    from .data.manifest import read_manifest
    from .text import BPETokenizer

    texts = [e["text"] for m in args.manifest for e in read_manifest(m) if e.get("text")]
    if not texts:
        raise UserError("the manifests hold no text to train on")
    tok = BPETokenizer.train(texts, vocab_size=args.vocab_size)
    tok.save(args.out)
    print(f"{args.out}: BPE with {tok.vocab_size} tokens from {len(texts)} texts")
    return 0


def cmd_data_phonemize(args) -> int:
    from .text import PHONEME_VOCAB, Phonemizer

    phonemes = Phonemizer(args.language)([args.text])[0]
    print(phonemes)
    print(" ".join(map(str, PHONEME_VOCAB.encode(phonemes))))
    return 0


def cmd_data_sentences(args) -> int:
    from .data.synth import wordnet_sentences, write_sentences

    sentences = wordnet_sentences(args.wordnet)
    write_sentences(sentences, args.out)
    print(f"{args.out}: {len(sentences)} sentences")
    return 0


# --------------------------------------------------------------------------- entry point
_USER_ERRORS = (("audiokit.audio", "AudioError"), ("audiokit.data.engines", "EngineError"),
                ("audiokit.data.manifest", "ManifestError"), ("audiokit.text.phonemes", "TextError"),
                ("audiokit.codec.codec", "CodecLoadError"), ("audiokit.tokens", "TokenError"),
                ("audiokit.asr.convert", "CheckpointError"), ("audiokit.asr.tokenizer", "TokenizerError"),
                ("audiokit.tts", "PromptError"), ("audiokit.tts", "TTSLoadError"))


def _user_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that are the user's input, not a bug: one line, no traceback. Taken only from modules
    already imported (an exception of a module never imported cannot have been raised), so an error exit
    does not import every model family to build the list."""
    mine = tuple(getattr(sys.modules[m], n) for m, n in _USER_ERRORS if m in sys.modules)
    return (UserError, *mine, FileNotFoundError, FileExistsError, ValueError, ImportError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["demo"]:  # the demo parses its own options (argparse's REMAINDER cannot start with --help)
        argv = ["demo", "--", *argv[1:]]
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    from .progress import set_quiet

    set_quiet(args.quiet)
    logging.getLogger("lightning").propagate = False  # Lightning prints its own lines; through the root too, they came twice
    try:
        return args.func(args)
    except _user_errors() as e:
        if os.environ.get("AUDIOKIT_DEBUG"):
            raise
        print(f"audiokit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("audiokit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `audiokit models | head`: the reader has gone; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
