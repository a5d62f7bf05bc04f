"""Phone units: each frame labelled with the phone a CTC aligner puts there (and silence in pauses).

Why (issue 22, benchmarks/RESULTS.md session 29): k-means units of a small ASR's encoder keep too little of general
speech for a decoder to say it — the judge read the 12 h corpus's held-out sentences, rebuilt from their own 256
k-means units by the best decoder we trained, at 85-91 % capped WER (the recordings: 25 %). Phones with their
durations are what FastSpeech-style systems decode from; they need an aligner. Ours is the ASR's frozen encoder
with a small CTC head trained on the corpus's own transcripts (espeak-ng phonemes, stress dropped):

* :meth:`PhoneTokenizer.align` (training stores: the transcript is known): Viterbi forced alignment of the
  transcript's phones; a frame in a blank state keeps the phone before it (CTC marks each phone where it starts),
  and a pause of ``min_pause`` frames or more, ``silence_db`` below the clip's loudest frame, is silence (unit 0).
* :meth:`PhoneTokenizer.encode` (a voice prompt: no transcript): the head's best path, the same rules.

A :class:`PhoneTokenizer` is a :class:`~audiokit.codec.units.UnitTokenizer` (the same folder format with
``"kind": "phones"``, the same token contract: one codebook of ``k = phones + 1`` codes at 50 frames/s), so
``audiokit units --phones``, the stores and the units TTS families take it unchanged.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from torch import nn

from .units import SAMPLE_RATE, UnitsError, UnitTokenizer, asr_encoder

HOP = 320  # samples a frame at 16 kHz (the bundled codec's and the units' 50 frames/s)
SILENCE = 0
# two-character phones espeak-ng writes for English (diphthongs, affricates); length and palatal marks and a
# nasalizing tilde join the phone before them; stress, word boundaries and punctuation are dropped
_DIGRAPHS = ("aɪ", "aʊ", "eɪ", "oʊ", "ɔɪ", "əʊ", "tʃ", "dʒ", "ɪə", "eə", "ʊə", "ɛə", "iə")
_JOIN = "ːʲ\u0303"
_SKIP = set("ˈˌ .,;:!?'\"-()…¡¿«»")


def split_phones(ipa: str) -> list[str]:
    """espeak-ng's IPA (``"həlˈoʊ wˈɜːld"``) → phones (``["h", "ə", "l", "oʊ", "w", "ɜː", "l", "d"]``)."""
    out, i = [], 0
    while i < len(ipa):
        if ipa[i] in _SKIP:
            i += 1
            continue
        p = ipa[i : i + 2] if ipa[i : i + 2] in _DIGRAPHS else ipa[i]
        i += len(p)
        while i < len(ipa) and ipa[i] in _JOIN:
            p, i = p + ipa[i], i + 1
        out.append(p)
    return out


class PhoneHead(nn.Module):
    """Encoder frames ``[B, T, D]`` → log-probabilities ``[B, T, 1 + phones]`` (0 the CTC blank): a projection,
    residual convolutions over ±2 frames each, a norm and the output layer."""

    def __init__(self, d_in: int, n_out: int, width: int = 256, n_layer: int = 3):
        super().__init__()
        self.inp = nn.Linear(d_in, width)
        self.convs = nn.ModuleList(nn.Conv1d(width, width, 5, padding=2) for _ in range(n_layer))
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x).transpose(1, 2)
        for conv in self.convs:
            h = h + nn.functional.gelu(conv(h))
        return self.out(self.norm(h.transpose(1, 2))).log_softmax(-1)


def spoken(units: torch.Tensor) -> list[int]:
    """The phones a row of phone units ``[T]`` (frames or runs) says: pauses dropped, repeats merged."""
    return torch.unique_consecutive(units[units != SILENCE]).tolist()


def ctc_align(log_probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor | None:
    """CTC forced alignment (Viterbi): ``log_probs`` ``[T, 1 + V]`` (blank 0) and ``labels`` ``[L]`` (≥ 1) → the
    label of each frame's state on the best path ``[T]`` (0 where it is a blank), or None when ``T`` frames
    cannot hold the labels (each label one frame, a blank between repeats)."""
    T, L = log_probs.shape[0], len(labels)
    if L == 0 or T < L + int((labels[1:] == labels[:-1]).sum()):
        return None
    ext = torch.zeros(2 * L + 1, dtype=torch.long, device="cpu")
    ext[1::2] = labels.cpu()
    S = len(ext)
    can_skip = torch.zeros(S, dtype=torch.bool, device="cpu")  # from s − 2: a label after a different label
    can_skip[3::2] = ext[3::2] != ext[1:-2:2]
    emit = log_probs.float().cpu()[:, ext]
    low = torch.full((2,), -1e30, device="cpu")
    score = torch.full((S,), -1e30, device="cpu")
    score[:2] = emit[0, :2]
    back = torch.zeros(T, S, dtype=torch.uint8, device="cpu")
    for t in range(1, T):
        cand = torch.stack([score, torch.cat([low[:1], score[:-1]]),
                            torch.where(can_skip, torch.cat([low, score[:-2]]), low[0])])
        best, arg = cand.max(0)
        back[t] = arg.to(torch.uint8)
        score = best + emit[t]
    s = S - 1 if score[S - 1] >= score[S - 2] else S - 2  # end on the last label or the blank after it
    path = torch.empty(T, dtype=torch.long, device="cpu")
    for t in range(T - 1, -1, -1):
        path[t] = ext[s]
        s -= int(back[t, s])
    return path


def frame_phones(path: torch.Tensor, wav: torch.Tensor, n_frames: int, min_pause: int = 5,
                 silence_db: float = 45.0) -> torch.Tensor:
    """States (a label ≥ 1 or a blank 0 per frame) → one unit a frame ``[n_frames]``: a blank keeps the phone
    before it (leading blanks the first phone), and frames in a pause — ``min_pause`` or more in a row whose
    energy is ``silence_db`` below the clip's loudest frame — are :data:`SILENCE`."""
    u = path.clone().cpu()
    heard = (u > 0).nonzero().flatten()
    if len(heard):
        # each frame takes the last label at or before it (the first label for frames before any)
        last = torch.where(u > 0, torch.arange(len(u), device="cpu"), torch.zeros_like(u))
        last = torch.cummax(last, 0).values
        u = torch.where(torch.arange(len(u), device="cpu") < heard[0], u[heard[0]], u[last])
    u = torch.cat([u, u[-1:].expand(max(0, n_frames - len(u)))])[:n_frames]
    wav = nn.functional.pad(wav.float().cpu(), (0, max(0, n_frames * HOP - wav.shape[-1])))[: n_frames * HOP]
    energy = wav.reshape(n_frames, HOP).pow(2).mean(1).add(1e-10).log10().mul(10)
    quiet, counts = torch.unique_consecutive(energy < energy.max() - silence_db, return_counts=True)
    starts = counts.cumsum(0) - counts
    for q, s, c in zip(quiet.tolist(), starts.tolist(), counts.tolist()):
        if q and c >= min_pause:
            u[s : s + c] = SILENCE
    return u


class _PhoneModel(nn.Module):
    """The ASR's encoder and the CTC head, as one module."""

    def __init__(self, dims: dict, n_phones: int, width: int = 256, n_layer: int = 3):
        super().__init__()
        from ..asr.model import AudioEncoder

        self.dims = dims
        self.encoder = AudioEncoder(dims["n_mels"], dims["n_audio_ctx"], dims["n_audio_state"], dims["n_audio_head"],
                                    dims["n_audio_layer"])
        self.head = PhoneHead(dims["n_audio_state"], n_phones + 1, width, n_layer)


class PhoneTokenizer(UnitTokenizer):
    """Audio (+ its transcript, when known) → phone units. Build with :meth:`fit` from an ASR and a transcribed
    corpus, or ``UnitTokenizer.load`` a saved folder."""

    def __init__(self, model: _PhoneModel, phones: Sequence[str], name: str = "", language: str = "en",
                 min_pause: int = 5, silence_db: float = 45.0):
        self.phones, self.language = list(phones), language
        self.min_pause, self.silence_db = min_pause, silence_db
        self.index = {p: i + 1 for i, p in enumerate(self.phones)}
        super().__init__(model, name)

    @property
    def k(self) -> int:
        return len(self.phones) + 1

    def _config(self) -> dict:
        return {"kind": "phones", "phones": self.phones, "language": self.language, "min_pause": self.min_pause,
                "silence_db": self.silence_db, "head": {"width": self.model.head.inp.out_features,
                                                        "n_layer": len(self.model.head.convs)}}

    @classmethod
    def _new_model(cls, config: dict) -> nn.Module:
        return _PhoneModel(config["dims"], len(config["phones"]), **config.get("head", {}))

    @classmethod
    def _from_model(cls, model: nn.Module, config: dict) -> PhoneTokenizer:
        return cls(model, config["phones"], config.get("name", ""), config.get("language", "en"),
                   config.get("min_pause", 5), config.get("silence_db", 45.0))

    # ------------------------------------------------------------------ units
    def labels(self, text: str) -> torch.Tensor:
        """A transcript → its phone ids ``[L]`` (≥ 1; phones outside the table are dropped)."""
        from ..valle.data import phonemize

        return self.script(phonemize([text], self.language)[0])

    def script(self, ipa: str) -> torch.Tensor:
        """espeak-ng's IPA of a text → the phone ids ``[L]`` its speech spells (phones outside the table dropped):
        what an AR over these units must say, in order (:class:`~audiokit.nn.sampling.Spelling`)."""
        return torch.tensor([self.index[p] for p in split_phones(ipa) if p in self.index], dtype=torch.long, device="cpu")

    @torch.inference_mode()
    def log_probs(self, wav: torch.Tensor, sample_rate: int, features: torch.Tensor | None = None) -> torch.Tensor:
        f = self.features(wav, sample_rate) if features is None else features.to(self.device).float()
        return self.model.head(f[None])[0].cpu()

    def _frame_units(self, wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
        lp = self.log_probs(wav, sample_rate)
        return self._units(lp.argmax(-1), wav, sample_rate)

    def _units(self, path: torch.Tensor, wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
        from ..audio.dsp import resample

        wav = torch.as_tensor(wav, device="cpu").float()
        if sample_rate != SAMPLE_RATE:
            wav = resample(wav, sample_rate, SAMPLE_RATE)
        n = -(-wav.shape[-1] // HOP)
        return frame_phones(path, wav, n, self.min_pause, self.silence_db)

    def align(self, wav: torch.Tensor, sample_rate: int, text: str, features: torch.Tensor | None = None) -> torch.Tensor:
        """A clip and its transcript → its phone units ``[ceil(samples / 320)]``, force-aligned (the best path
        when the clip is too short to hold the transcript's phones)."""
        if torch.as_tensor(wav, device="cpu").numel() == 0:
            raise UnitsError("cannot align an empty clip")
        lp = self.log_probs(wav, sample_rate, features)
        path = ctc_align(lp, self.labels(text))
        return self._units(lp.argmax(-1) if path is None else path, wav, sample_rate)

    # ------------------------------------------------------------------ building
    @classmethod
    def fit(cls, asr, items: Sequence[tuple[torch.Tensor, int, str]], steps: int = 2000, batch_size: int = 16,
            lr: float = 2e-3, min_count: int = 20, language: str = "en", seed: int = 0, name: str = "",
            log=print) -> PhoneTokenizer:
        """Train the CTC head on ``asr``'s frozen encoder over ``items`` (``(audio, sample_rate, transcript)``):
        the phone table is every phone heard ``min_count`` times or more in the transcripts."""
        from ..valle.data import phonemize

        dims, encoder = asr_encoder(asr)
        items = list(items)
        seqs = [split_phones(p) for p in phonemize([t for _, _, t in items], language)]
        counts: dict[str, int] = {}
        for seq in seqs:
            for p in seq:
                counts[p] = counts.get(p, 0) + 1
        phones = sorted(p for p, c in counts.items() if c >= min_count)
        if not phones:
            raise UnitsError(f"no phone is heard {min_count} times in {len(items)} transcripts: too little to fit on")
        torch.manual_seed(seed)
        model = _PhoneModel(dims, len(phones))
        model.encoder.load_state_dict(encoder)
        tok = cls(model, phones, name, language)
        index = tok.index
        data = []
        for (wav, sr, _), seq in zip(items, seqs):
            y = torch.tensor([index[p] for p in seq if p in index], dtype=torch.long, device="cpu")
            if len(y):
                data.append((tok.features(wav, sr).cpu().clone(), y))  # a copy outside inference mode
        tok.train_head(data, steps, batch_size, lr, seed, log)
        return cls(model, phones, name, language)

    def train_head(self, data: list[tuple[torch.Tensor, torch.Tensor]], steps: int, batch_size: int = 16,
                   lr: float = 2e-3, seed: int = 0, log=print) -> list[float]:
        """CTC training of the head on ``(encoder frames [T, D], phone ids [L])`` pairs; returns the losses."""
        from ..progress import Progress

        head = self.model.head.train().requires_grad_(True)
        opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.05)
        ctc = nn.CTCLoss(blank=0, zero_infinity=True)
        rng, losses = random.Random(seed), []
        bar = Progress(steps, "units: CTC phone head", unit="steps")
        for _ in range(steps):
            batch = rng.sample(data, min(batch_size, len(data)))
            x = nn.utils.rnn.pad_sequence([f.float() for f, _ in batch], batch_first=True).to(self.device)
            lp = head(x).transpose(0, 1)
            loss = ctc(lp, torch.cat([y for _, y in batch]).to(self.device),
                       torch.tensor([len(f) for f, _ in batch], device="cpu"),
                       torch.tensor([len(y) for _, y in batch], device="cpu"))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(head.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.update(1)
        bar.close()
        head.eval().requires_grad_(False)
        log(f"units: CTC phone head, loss {sum(losses[:20]) / min(20, len(losses)):.3f} → "
            f"{sum(losses[-20:]) / min(20, len(losses)):.3f} over {steps} steps")
        return losses
