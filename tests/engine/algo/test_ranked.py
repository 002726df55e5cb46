"""Ranked groups: advantages from ranks, ranking accuracy, the data format, a rollout of given responses."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import TINY_MODEL
from engine.algo.ranked import rank_advantages, rank_scores, ranked_advantages, ranking_accuracy, sequence_logps
from engine.data.ranked import RankedDataError, load_ranked_file, normalize_ranked_rows, ranked_rollout


# ----------------------------------------------------------------- scores and advantages


def test_rank_scores_by_hand():
    assert rank_scores(torch.tensor([1, 2, 3, 4])).tolist() == pytest.approx([1, 2 / 3, 1 / 3, 0])
    assert rank_scores(torch.tensor([2, 1, 1])).tolist() == pytest.approx([0.5, 1, 1])  # ties share
    assert rank_scores(torch.tensor([1])).tolist() == [0.0]


def test_rank_advantages_four_distinct_ranks():
    # s = [1, 2/3, 1/3, 0]; mean 1/2; Bessel std = sqrt((1/4 + 1/36 + 1/36 + 1/4) / 3) = sqrt(5/27)
    std = math.sqrt(5 / 27) + 1e-4
    expected = [0.5 / std, (1 / 6) / std, -(1 / 6) / std, -0.5 / std]
    got = rank_advantages(torch.tensor([1, 2, 3, 4]))
    assert got.tolist() == pytest.approx(expected, abs=1e-6)
    assert got.tolist() == pytest.approx([1.16163, 0.38721, -0.38721, -1.16163], abs=1e-5)


def test_rank_advantages_ties_share_and_order_follows_ranks():
    # ranks [1, 1, 3], G = 3: s = [1, 1, 0]; mean 2/3; std = sqrt((1/9 + 1/9 + 4/9) / 2) = sqrt(1/3)
    std = math.sqrt(1 / 3) + 1e-4
    got = rank_advantages(torch.tensor([1, 1, 3]))
    assert got.tolist() == pytest.approx([(1 / 3) / std, (1 / 3) / std, -(2 / 3) / std], abs=1e-6)
    shuffled = rank_advantages(torch.tensor([3, 1, 1]))
    assert shuffled.tolist() == pytest.approx([got[2].item(), got[0].item(), got[1].item()], abs=1e-6)


def test_rank_advantages_degenerate_groups_and_unscaled():
    assert rank_advantages(torch.tensor([2, 2, 2])).tolist() == [0.0, 0.0, 0.0]
    assert rank_advantages(torch.tensor([1])).tolist() == [0.0]
    # "none": A = s - mean(s) = [1, 0] - 0.5
    assert rank_advantages(torch.tensor([1, 2]), "none").tolist() == pytest.approx([0.5, -0.5])


def test_ranked_advantages_concatenates_groups_of_any_size():
    got = ranked_advantages([[1, 2], [1, 2, 3, 4]])
    assert got.shape == (6,)
    assert got[:2].tolist() == pytest.approx(rank_advantages(torch.tensor([1, 2])).tolist())
    assert got[2:].tolist() == pytest.approx(rank_advantages(torch.tensor([1, 2, 3, 4])).tolist())


def test_ranking_accuracy_by_hand():
    # pairs (rank1, rank2) ok, (rank1, rank3) ok, (rank2, rank3): -3 < -2, wrong -> 2/3
    assert ranking_accuracy(torch.tensor([-1.0, -3.0, -2.0]), torch.tensor([1, 2, 3])) == pytest.approx(2 / 3)
    # tied ranks are not a pair: only (0, 2) and (1, 2) count, both agree
    assert ranking_accuracy(torch.tensor([-1.0, -2.0, -3.0]), torch.tensor([1, 1, 2])) == 1.0
    # equal log-probs do not agree
    assert ranking_accuracy(torch.tensor([-1.0, -1.0]), torch.tensor([1, 2])) == 0.0
    assert ranking_accuracy(torch.tensor([-1.0, -5.0]), torch.tensor([2, 1])) == 0.0
    assert math.isnan(ranking_accuracy(torch.tensor([-1.0, -2.0]), torch.tensor([1, 1])))
    with pytest.raises(ValueError):
        ranking_accuracy(torch.tensor([-1.0]), torch.tensor([1, 2]))


def test_sequence_logps_sums_masked_tokens():
    logps = torch.tensor([[-1.0, -2.0, -9.0], [-0.5, -0.5, -0.5]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert sequence_logps(logps, mask).tolist() == [-3.0, -1.5]


# ----------------------------------------------------------------- data


def test_normalize_rows_flattens_groups_and_keeps_columns():
    rows = normalize_ranked_rows([
        {"prompt": "2+2=", "id": 7, "group": [{"response": "4", "rank": 1}, {"response": "5", "rank": 2.0}]},
    ])
    assert rows == [{"prompt": "2+2=", "responses": ["4", "5"], "ranks": [1, 2], "id": 7}]


@pytest.mark.parametrize(
    "row, message",
    [
        ({"group": []}, "no 'prompt'"),
        ({"prompt": "p"}, "'group' must be a list"),
        ({"prompt": "p", "group": [{"response": "a", "rank": 1}]}, "at least 2 responses"),
        ({"prompt": "p", "group": [{"response": "a", "rank": 0}, {"response": "b", "rank": 1}]}, "rank must be"),
        ({"prompt": "p", "group": [{"response": "a", "rank": 1.5}, {"response": "b", "rank": 1}]}, "rank must be"),
        ({"prompt": "p", "group": [{"response": 3, "rank": 1}, {"response": "b", "rank": 2}]}, "response must be text"),
        ({"prompt": "p", "group": [{"text": "a", "rank": 1}, {"response": "b", "rank": 2}]}, "group[0]"),
    ],
)
def test_normalize_rows_names_the_problem(row, message):
    with pytest.raises(RankedDataError, match=message.replace("[", r"\[").replace("]", r"\]")):
        normalize_ranked_rows([row])


def test_load_ranked_file(tmp_path):
    path = tmp_path / "ranked.jsonl"
    row = {"prompt": "1+1=", "group": [{"response": "2", "rank": 1}, {"response": "3", "rank": 2}]}
    path.write_text(json.dumps(row) + "\n\n" + json.dumps(row) + "\n")
    assert len(load_ranked_file(path)) == 2
    path.write_text(json.dumps(row) + "\n{oops\n")
    with pytest.raises(RankedDataError, match="line 2"):
        load_ranked_file(path)


# ----------------------------------------------------------------- rollout of given responses


def test_ranked_rollout_and_policy_ranking_accuracy():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.training.logprobs import completion_logps

    tok = AutoTokenizer.from_pretrained(TINY_MODEL)
    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL).eval()
    rows = normalize_ranked_rows([
        {"prompt": "12+34=", "group": [{"response": "46", "rank": 1}, {"response": "47", "rank": 2},
                                       {"response": "999", "rank": 3}]},
        {"prompt": "50+25=", "group": [{"response": "75", "rank": 1}, {"response": "7", "rank": 2}]},
    ])
    prompt_ids = [tok(r["prompt"])["input_ids"] for r in rows]
    rollout, sizes = ranked_rollout(rows, prompt_ids, tok, tok.eos_token_id, tok.pad_token_id, max_completion_length=3)
    assert sizes == [3, 2]
    eos = tok.eos_token_id
    first = tok("46", add_special_tokens=False)["input_ids"] + [eos]
    assert rollout.completion_ids[0, :3].tolist() == first
    assert rollout.completion_mask.sum(1).tolist() == [3, 3, 3, 3, 2]
    assert rollout.truncated.tolist() == [False, False, True, False, False]  # "999"+eos cut at 3
    assert rollout.prompt_ids.shape[0] == 5

    with torch.no_grad():
        logps, _ = completion_logps(model, rollout, slice(None), 1, 1.0)
    seq = sequence_logps(logps, rollout.completion_mask)
    # by hand for the first row: one forward over prompt + response
    ids = torch.tensor([prompt_ids[0] + first])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt_ids[0]) - 1 : -1]
    hand = torch.log_softmax(logits, -1).gather(1, torch.tensor(first).unsqueeze(1)).sum()
    assert float(seq[0]) == pytest.approx(float(hand), abs=1e-4)

    acc = ranking_accuracy(seq[:3], torch.tensor(rows[0]["ranks"]))
    assert 0.0 <= acc <= 1.0
