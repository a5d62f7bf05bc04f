"""Phone units (audiokit.codec.phones): splitting espeak-ng's IPA, CTC forced alignment against brute force, frames
from an alignment (blanks, pauses), a CTC head that learns, and the tokenizer's folder, stores and bad input."""
import itertools
import json

import pytest
import torch
from test_units import _tone, asr  # noqa: F401  (the module-scoped random ASR fixture)

from audiokit.codec.phones import SILENCE, PhoneTokenizer, ctc_align, frame_phones, split_phones
from audiokit.codec.units import UnitsError, UnitTokenizer


def test_split_phones_keeps_diphthongs_length_and_drops_stress_and_punctuation():
    assert split_phones("həlˈoʊ wˈɜːld!") == ["h", "ə", "l", "oʊ", "w", "ɜː", "l", "d"]
    assert split_phones("tʃˈɜːtʃ, dʒˈʌdʒ.") == ["tʃ", "ɜː", "tʃ", "dʒ", "ʌ", "dʒ"]
    assert split_phones(" ,. ") == []


def _paths(T, labels):
    """Every CTC state sequence of T frames that reads ``labels`` (brute force: frame labels, collapsed)."""
    V = max(labels) + 1
    for seq in itertools.product(range(V), repeat=T):
        collapsed = [k for k, _ in itertools.groupby(seq)]
        if [c for c in collapsed if c] == list(labels):
            yield torch.tensor(seq)


@pytest.mark.parametrize("labels", [[1, 2], [2, 2], [1, 2, 1]])
def test_ctc_align_finds_the_best_path_brute_force_finds(labels):
    g = torch.Generator().manual_seed(len(labels) + labels[-1])
    for trial in range(4):
        lp = torch.randn(6, 3, generator=g).log_softmax(-1)
        best = max(_paths(6, labels), key=lambda p: float(lp[torch.arange(6), p].sum()))
        path = ctc_align(lp, torch.tensor(labels))
        assert float(lp[torch.arange(6), path].sum()) == pytest.approx(float(lp[torch.arange(6), best].sum()), abs=1e-5)
        assert [k for k, _ in itertools.groupby(path.tolist()) if k] == labels  # it reads the transcript


def test_ctc_align_refuses_what_the_frames_cannot_hold():
    lp = torch.zeros(3, 3).log_softmax(-1)
    assert ctc_align(lp, torch.tensor([1, 1])) is not None  # 1, blank, 1
    assert ctc_align(lp, torch.tensor([1, 1, 2])) is None  # needs 4 frames
    assert ctc_align(lp, torch.tensor([], dtype=torch.long)) is None


def test_frame_phones_fills_blanks_and_marks_pauses():
    loud = torch.ones(320) * 0.5
    wav = torch.cat([loud] * 4 + [torch.zeros(320 * 6)] + [loud] * 2 + [torch.zeros(320 * 2)] + [loud] * 2)
    path = torch.tensor([0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 7])
    u = frame_phones(path, wav, 17)
    #          leading blank → first phone; a 6-frame pause → silence; a 2-frame gap stays the phone; padded to 17
    assert u.tolist() == [3, 3, 3, 3] + [SILENCE] * 6 + [5, 5, 5, 5, 5, 7, 7]
    assert frame_phones(torch.zeros(4, dtype=torch.long), loud.repeat(4), 4).tolist() == [0, 0, 0, 0]


def test_the_ctc_head_learns_phones_from_frames(asr):  # noqa: F811
    """Frames of three 'phones' (noisy prototypes): after training, the best path reads held-out sequences."""
    tok = PhoneTokenizer.fit(asr, [(_tone(300 + 200 * i, 0.5, seed=i), 16000, "a b") for i in range(3)], steps=1,
                             min_count=1)
    D = asr.model.dims.n_audio_state
    g = torch.Generator().manual_seed(0)
    proto = torch.randn(len(tok.phones) + 1, D, generator=g) * 2

    def utterance(n):
        y = torch.randint(1, len(tok.phones) + 1, (n,), generator=g)
        y[1:][y[1:] == y[:-1]] = 1 + y[1:][y[1:] == y[:-1]] % len(tok.phones)  # no repeats: every change is heard
        frames = torch.cat([proto[torch.tensor([int(v)] * 3 + [0])] for v in y])
        return frames + 0.3 * torch.randn(frames.shape, generator=g), y

    data = [utterance(6) for _ in range(64)]
    losses = tok.train_head(data, steps=100, batch_size=16, log=lambda *_: None)
    assert sum(losses[-10:]) < 0.2 * sum(losses[:10])
    f, y = utterance(8)
    best = torch.unique_consecutive(tok.model.head(f[None])[0].argmax(-1))
    assert best[best > 0].tolist() == y.tolist()
    path = ctc_align(tok.model.head(f[None])[0], y).reshape(-1, 4)  # the forced alignment: each phone on its frames
    assert all(set(group.tolist()) - {0} == {int(v)} for group, v in zip(path, y))


def test_phone_tokenizer_folder_aligns_encodes_and_refuses_other_kinds(asr, tmp_path):  # noqa: F811
    items = [(_tone(200 + 300 * i, 1.0, seed=i), 16000, t) for i, t in enumerate(["one two", "three four", "two one"])]
    tok = PhoneTokenizer.fit(asr, items, steps=5, min_count=1, name="test-phones")
    assert tok.k == len(tok.phones) + 1 and set(tok.phones) >= {"w", "ʌ", "n", "t", "uː"}
    tok.save(tmp_path / "p")
    back = UnitTokenizer.load(tmp_path / "p")  # the units loader reads either kind
    assert isinstance(back, PhoneTokenizer) and back.info.same_codec(tok.info) and back.name == "test-phones"
    wav = _tone(500, 1.3, seed=9)
    codes = back.encode(wav, 16000).codes
    assert codes.shape == (1, 1, 65) and torch.equal(codes, tok.encode(wav, 16000).codes)
    a = back.align(wav, 16000, "one two")
    heard = [k for k, _ in itertools.groupby(a.tolist()) if k != SILENCE]
    assert len(a) == 65 and heard == back.labels("one two").tolist()  # every phone of the transcript, in order
    assert torch.equal(back.align(wav[:640], 16000, "one two three four"),  # too short to hold them: best path
                       back.encode(wav[:640], 16000).codes[0, 0])
    with pytest.raises(UnitsError, match="empty"):
        back.align(torch.zeros(0), 16000, "one")
    cfg = json.loads((tmp_path / "p/config.json").read_text())
    (tmp_path / "p/config.json").write_text(json.dumps({**cfg, "kind": "vq"}))
    with pytest.raises(UnitsError, match="unknown kind 'vq'"):
        UnitTokenizer.load(tmp_path / "p")
    with pytest.raises(UnitsError, match="no phone is heard"):
        PhoneTokenizer.fit(asr, items, steps=1, min_count=100)
