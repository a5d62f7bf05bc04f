import pytest

from audiokit.text import (
    PHONEME_VOCAB,
    BPETokenizer,
    Phonemizer,
    TextError,
    int_to_words,
    normalize_for_wer,
    normalize_text,
    ordinal_to_words,
    year_to_words,
)


@pytest.mark.parametrize("n, words", [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (40, "forty"), (42, "forty-two"), (100, "one hundred"),
    (101, "one hundred one"), (999, "nine hundred ninety-nine"), (1000, "one thousand"),
    (1234567, "one million two hundred thirty-four thousand five hundred sixty-seven"), (-5, "minus five"),
    (2_000_000_000_000, "two trillion"),
])
def test_int_to_words(n, words):
    assert int_to_words(n) == words


@pytest.mark.parametrize("n, words", [(1, "first"), (2, "second"), (3, "third"), (12, "twelfth"), (20, "twentieth"),
                                      (21, "twenty-first"), (101, "one hundred first"), (40, "fortieth")])
def test_ordinals(n, words):
    assert ordinal_to_words(n) == words


@pytest.mark.parametrize("n, words", [(1999, "nineteen ninety-nine"), (2005, "two thousand five"), (1900, "nineteen hundred"),
                                      (1905, "nineteen oh five"), (2024, "twenty twenty-four")])
def test_years(n, words):
    assert year_to_words(n) == words


@pytest.mark.parametrize("text, expected", [
    ("Dr. Smith paid $5.50 on the 3rd of May, 1999.",
     "Doctor Smith paid five dollars fifty cents on the third of May, nineteen ninety-nine."),
    ("It rose 12.5% to 1,234 units.", "It rose twelve point five percent to one thousand two hundred thirty-four units."),
    ("No. 7 vs.  the   21st team", "Number seven versus the twenty-first team"),
    ("He said \u201chi\u201d \u2014 twice", 'He said "hi" - twice'),
    ("Tom & Jerry cost \u00a31", "Tom and Jerry cost one pound"),
    # codes are read digit by digit (Whisper writes spoken digit strings as "522-419"); ranges stay numbers
    ("Call 555-1234 or 1-800-555-0199.", "Call five five five one two three four or one eight zero zero five five five zero one nine nine."),
    ("522-419, then 3-3-7", "five two two four one nine, then three three seven"),
    ("code 0471, 0.5 kg, pages 10-20", "code zero four seven one, zero point five kg, pages ten-twenty"),
    ("1-4-7-10-13 rises; 212-555-0147 does not", "one-four-seven-ten-thirteen rises; two one two five five five zero one four seven does not"),
    # clock times
    ("at 3:00 or 7:05, not 11:45", "at three o'clock or seven oh five, not eleven forty-five"),
])
def test_normalize_text(text, expected):
    assert normalize_text(text) == expected


def test_normalize_for_wer():
    assert normalize_for_wer("Hello, World! It's 2 o'clock - isn't it?") == "hello world it's two o'clock isn't it"
    assert normalize_for_wer("  ") == ""


# ----------------------------------------------------------------------------- phonemes
@pytest.fixture(scope="module")
def phonemizer():
    return Phonemizer("en-us")


def test_phonemizer_known_strings(phonemizer):
    out = phonemizer(["Hello, world!", "The quick brown fox?"])
    assert out == ["həlˈoʊ, wˈɜːld!", "ðə kwˈɪk bɹˈaʊn fˈɑːks?"]


def test_phonemizer_normalizes_numbers_first(phonemizer):
    assert phonemizer("I have 2 cats.") == phonemizer("I have two cats.")


def test_phonemizer_refusals(phonemizer):
    with pytest.raises(TextError, match="text 0 is empty"):
        phonemizer(["   "])
    with pytest.raises(TextError, match="limit"):
        Phonemizer("en-us", max_chars=10)(["this sentence is too long"])
    with pytest.raises(TextError, match="not supported.*en-us"):
        Phonemizer("en")
    with pytest.raises(TextError, match="'xx' is not supported"):
        Phonemizer("xx")


def test_phoneme_vocab_is_fixed_and_round_trips(phonemizer):
    v = PHONEME_VOCAB
    # The vocabulary is part of every trained model: changing it silently would break checkpoints.
    assert len(v) == 162
    assert (v.pad_id, v.unk_id, v.bos_id, v.eos_id) == (0, 1, 2, 3)
    assert v.encode(" ") == [4]
    phonemes = phonemizer("Punctuation: kept, as prosody; marks!")[0]
    assert not v.unknown(phonemes)
    ids = v.encode(phonemes, add_bos_eos=True)
    assert ids[0] == v.bos_id and ids[-1] == v.eos_id
    assert v.decode(ids) == phonemes
    assert v.encode("a\u4e2db") == [v.encode("a")[0], v.unk_id, v.encode("b")[0]]


def test_other_languages_phonemize():
    assert Phonemizer("fr-fr")(["Bonjour"])[0] == "bɔ̃ʒˈuʁ"


# ----------------------------------------------------------------------------- BPE
def test_bpe_train_save_load(tmp_path):
    texts = ["the cat sat on the mat"] * 30 + ["a dog ran in the park", "hello world"] * 10
    tok = BPETokenizer.train(texts, vocab_size=300)
    assert tok.vocab_size <= 300
    assert tok.token_to_id("<pad>") == 0 and tok.token_to_id("<eos>") == 2
    assert tok.tokens("the cat") == ["the", "Ġcat"]  # frequent words merge into single tokens
    path = tok.save(tmp_path / "bpe.json")
    again = BPETokenizer.load(path)
    for s in ["the cat sat", "Unseen wörds, with ünïcode & digits 123!"]:
        assert again.encode(s) == tok.encode(s)
        assert again.decode(again.encode(s)) == s  # byte level: exact round trip, no unknowns
    assert again.encode_batch(["the cat", "hello"]) == [tok.encode("the cat"), tok.encode("hello")]


def test_bpe_errors(tmp_path):
    with pytest.raises(ValueError, match="no text"):
        BPETokenizer.train(["", ""])
    with pytest.raises(FileNotFoundError):
        BPETokenizer.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a valid tokenizer"):
        BPETokenizer.load(tmp_path / "bad.json")
