"""What ``GRPOTrainer`` does with an ``output_dir`` that already holds a run, where
``train(resume_from_checkpoint=...)`` continues from, and ``push_to_hub``: the decisions
transformers' Trainer makes about its output folder, in the API's own words.

A run directory holding a run is never trained into by accident (two runs' logs would mix):
``overwrite_output_dir=True`` clears the earlier run's files first, as transformers' option
means "start over in this folder"; ``train(resume_from_checkpoint=True)`` continues the run
from its newest checkpoint; anything else is one message saying those two choices.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from engine.run.checkpoints import COMPLETE, STATE, checkpoint_step, latest_checkpoint
from engine.run.lock import RunLock, RunLocked

RUN_FILES = ("config.yaml", "metrics.jsonl", "samples.jsonl", "events.jsonl", "progress.json", "heartbeat.json",
             "error.log", "checkpoints", "final", "final.tmp", "tensorboard", "completions", "trainer_state.json",
             "train_results.json", "eval_results.json", "all_results.json")
"""What a run writes in its directory: what overwrite_output_dir removes (nothing else there)."""


class OutputDirError(ValueError):
    """``output_dir`` cannot be used as asked; the message says what to do instead."""


def holds_run(run_dir: Path) -> bool:
    return (run_dir / "metrics.jsonl").exists() or (run_dir / "config.yaml").exists()


def clear_for_new_run(run_dir: Path, overwrite: bool) -> None:
    """Make ``run_dir`` ready for a new run: refused while it holds one, unless ``overwrite``."""
    if not holds_run(run_dir):
        return
    if not overwrite:
        raise OutputDirError(
            f"output_dir {run_dir} already holds a run: pass train(resume_from_checkpoint=True) to continue it, "
            "GRPOConfig(overwrite_output_dir=True) to start over in it, or choose another output_dir")
    lock = RunLock(run_dir)
    try:
        lock.acquire()
    except RunLocked as exc:
        raise OutputDirError(f"output_dir {run_dir} is in use by a run that is training ({exc}); "
                             "overwrite_output_dir does not stop it") from None
    try:
        for name in RUN_FILES:
            path = run_dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
        for path in run_dir.glob("error-rank*.log"):
            path.unlink()
    finally:
        lock.release()


def checkpoint_to_resume(run_dir: Path, resume_from_checkpoint: bool | str | os.PathLike) -> Path:
    """The checkpoint ``train(resume_from_checkpoint=...)`` continues from: the newest of
    ``output_dir`` for True, else the folder given (a checkpoint, or a run directory whose
    newest checkpoint is taken)."""
    if resume_from_checkpoint is True:
        found = latest_checkpoint(run_dir)
        if found is None:
            raise OutputDirError(f"resume_from_checkpoint=True: no checkpoint in output_dir {run_dir} "
                                 "(a run checkpoints every save_steps and when it is stopped)")
        return found
    path = Path(resume_from_checkpoint).expanduser()
    if (path / STATE).exists() and (path / COMPLETE).exists():
        return path
    found = latest_checkpoint(path) if path.is_dir() else None
    if found is None:
        raise OutputDirError(f"resume_from_checkpoint={str(resume_from_checkpoint)!r}: not a complete checkpoint "
                             "folder, nor a run directory holding one")
    return found


def logged_until(run_dir: Path, checkpoint: Path) -> list[dict]:
    """``state.log_history`` as it stood at ``checkpoint``: the steps it holds, from the run's
    metrics (as transformers restores it from the checkpoint's trainer state)."""
    from engine.run.jsonl import read_jsonl

    last = checkpoint_step(checkpoint)
    return [{k: v for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            for r in read_jsonl(run_dir / "metrics.jsonl") if isinstance(r.get("step"), int) and 0 < r["step"] <= last]


def in_api_terms(message: str, run_dir: Path) -> str:
    """The engine's one-line messages name the command-line options that fix them; in a
    script the same advice is the API's (``output_dir``, ``train(resume_from_checkpoint=True)``)."""
    return (message
            .replace("choose another --output", "choose another output_dir, or pass "
                     "GRPOConfig(overwrite_output_dir=True) to start over in it")
            .replace(f"run `grpo-tui resume {run_dir}`", "call train(resume_from_checkpoint=True) on a new GRPOTrainer "
                     "with the same output_dir"))


def run_dir_of(checkpoint: Path) -> Path:
    """The run directory a checkpoint belongs to (``<run dir>/checkpoints/step-N``)."""
    return checkpoint.parent.parent


class HubError(RuntimeError):
    """``push_to_hub`` could not upload; the message says why and where the model is."""


def push_folder(folder: Path, repo_id: str, *, token: str | None, private: bool | None, revision: str | None,
                commit_message: str) -> str:
    """Upload ``folder`` to the hub model repository ``repo_id`` (made when missing); the
    commit's URL. Offline (``HF_HUB_OFFLINE=1``) or unreachable: :class:`HubError`."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message,
                                 revision=revision, repo_type="model")
    except OfflineModeIsEnabled:
        raise HubError(f"push_to_hub: HF_HUB_OFFLINE is set, so nothing was uploaded; the model is in {folder} "
                       "(unset HF_HUB_OFFLINE and call push_to_hub() again)") from None
    except (HfHubHTTPError, OSError, ValueError) as exc:
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise HubError(f"push_to_hub to {repo_id} failed ({line}); the model is in {folder}") from None
    return str(getattr(info, "commit_url", info))
