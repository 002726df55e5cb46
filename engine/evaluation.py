"""Held-out evaluation: greedy accuracy with the task's verifier (or the accuracy reward)."""

from __future__ import annotations

import torch

from engine.rewards import score

EVAL_BATCH = 256


@torch.no_grad()
def greedy_eval(model, renderer, backend, tokenizer, reward_funcs, task, rows, params, batch_size: int = EVAL_BATCH) -> dict[str, float]:
    """``eval/accuracy`` = share of held-out prompts whose greedy completion is verified correct.

    With a built-in task its verifier decides; otherwise the run's ``accuracy`` reward does
    (rows it cannot judge — None — are left out of the mean). Returns {} when neither exists.
    """
    accuracy_fn = [f for f in reward_funcs if f.name == "accuracy"]
    if task is None and not accuracy_fn:
        return {}
    correct, judged, lengths, truncated = 0.0, 0, 0.0, 0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        rollout = backend.generate([renderer.ids(r["prompt"]) for r in chunk], 1, params)
        ids = [row[: int(n)] for row, n in zip(rollout.completion_ids.tolist(), rollout.lengths.tolist())]
        texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
        lengths += float(rollout.lengths.float().sum())
        truncated += int(rollout.truncated.sum())
        if task is not None:
            for text, row in zip(texts, chunk):
                correct += task.verify(text, row)
            judged += len(chunk)
        else:
            columns = {k: [r.get(k) for r in chunk] for k in chunk[0] if k != "prompt"}
            batch = score(accuracy_fn, torch.ones(1), [r["prompt"] for r in chunk], texts, columns, ids, 0)
            col = batch.per_func[:, 0]
            valid = ~torch.isnan(col)
            correct += float(col[valid].sum())
            judged += int(valid.sum())
    return {
        "eval/accuracy": correct / judged if judged else float("nan"),
        "eval/mean_length": lengths / max(len(rows), 1),
        "eval/clipped_ratio": truncated / max(len(rows), 1),
    }
