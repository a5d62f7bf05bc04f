"""Drafting helpers of exact greedy decoding (audiokit.nn.speculative) and KVCache.truncate."""
import pytest
import torch

from audiokit.nn.speculative import accepted, block_causal_mask, make_drafts, ngram_draft
from audiokit.nn.transformer import KVCache, ResidualAttentionBlock


def test_ngram_draft_takes_the_latest_occurrence_of_the_longest_suffix():
    assert ngram_draft([1, 2, 3, 1, 2], k=3) == [3, 1, 2]  # suffix [1, 2] seen at 0
    assert ngram_draft([7, 1, 2, 9, 4, 1, 2, 8, 1, 2], k=2) == [8, 1]  # the latest of two occurrences
    assert ngram_draft([5, 6, 7, 8, 6, 7], k=4, max_n=3) == [8, 6, 7]  # [6, 7] beats the shorter [7]
    assert ngram_draft([1, 2, 3], k=2) == []
    assert ngram_draft([4], k=2) == []


def test_make_drafts_modes_and_padding():
    hist = [[1, 2, 3, 1, 2], [9, 8, 7]]
    left = [[4, 4, 4, 4], [6, 5]]
    assert make_drafts(hist, left, 4, "ngram").tolist() == [[3, 1, 2, 2], [7, 7, 7, 7]]
    assert make_drafts(hist, left, 4, "jacobi").tolist() == [[4, 4, 4, 4], [6, 5, 5, 5]]
    assert make_drafts(hist, left, 4, "ngram+jacobi").tolist() == [[3, 1, 2, 2], [6, 5, 5, 5]]
    with pytest.raises(ValueError, match="draft mode"):
        make_drafts(hist, left, 4, "beam")


def test_accepted_counts_the_leading_matches():
    drafts = torch.tensor([[1, 2, 3], [1, 9, 3], [0, 2, 3]])
    preds = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]])
    assert accepted(drafts, preds).tolist() == [3, 1, 0]


def test_block_causal_mask():
    valid = torch.tensor([[False, True, True]])
    m = block_causal_mask(valid, 2)
    assert m.shape == (1, 1, 2, 5)
    assert m[0, 0].tolist() == [[False, True, True, True, False], [False, True, True, True, True]]


def test_kv_cache_truncate_forgets_rejected_positions():
    torch.manual_seed(0)
    block = ResidualAttentionBlock(16, 2).eval()
    x = torch.randn(1, 6, 16)
    wrong = torch.randn(1, 3, 16)
    a, b = KVCache(), KVCache()
    with torch.no_grad():
        block(x[:, :4], causal=True, cache=a.layer(0))
        block(wrong, causal=True, cache=a.layer(0))  # three drafted positions, then rejected
        a.truncate(4)
        got = block(x[:, 4:], causal=True, cache=a.layer(0))
        block(x[:, :4], causal=True, cache=b.layer(0))
        ref = block(x[:, 4:], causal=True, cache=b.layer(0))
    assert a.length == 6
    torch.testing.assert_close(got, ref)
    with pytest.raises(ValueError, match="truncate"):
        a.truncate(7)
