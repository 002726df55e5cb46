"""``GRPOTrainer``, TRL's trainer surface over this engine. It drives the same engine as the dashboard (``engine.training.trainer.Trainer``) and writes the same
run directory, so ``grpo-tui view RUN_DIR`` / ``grpo-tui attach RUN_DIR`` watch a notebook
run. ``trainer.control`` is the run's :class:`engine.run.control.Control`: with ``trainer.start()``
the run goes on in the background and a notebook cell can pause it or adjust it.
"""

from __future__ import annotations

import copy
import difflib
import os
import threading
from pathlib import Path
from typing import Any, Iterable

from engine.api.callbacks import CallbackBridge, default_callbacks
from engine.api.config import GRPOConfig, GRPOConfigError
from engine.api.options import (HubSettings, as_rows, check_reward_processing_classes, check_unsupported, new_state,
                                peft_options)
from engine.api.results import TrainResult, log_metrics, save_metrics
from engine.api.output_dir import (OutputDirError, checkpoint_to_resume, clear_for_new_run, in_api_terms, logged_until,
                                   push_folder, run_dir_of)
from engine.config.schema import REPO_ROOT, RunConfig
from engine.config.trl_mapping import resolved_max_steps
from engine.run.control import Control
from engine.data.prompts import PromptData

# --------------------------------------------------------------------------- GRPOTrainer


class TrainingFailed(RuntimeError):
    """The run stopped with an error, or on a fault (a reward function that keeps failing,
    non-finite updates, out of memory: see ``on_fault``), or was stopped while a fault stood;
    the message is the run's one line, ``traceback_path`` its log (None for a fault: the
    message says it all, and the run is resumable from the checkpoint written at the fault)."""

    def __init__(self, message: str, run_dir: Path, traceback_path: Path | None = None) -> None:
        where = f" (traceback: {traceback_path})" if traceback_path else ""
        super().__init__(f"{message}{where}")
        self.run_dir = run_dir
        self.traceback_path = traceback_path


class GRPOTrainer:
    """TRL's ``GRPOTrainer`` surface over this engine.

    ``model``: a hub id or local folder (str / PathLike) or a causal-LM model object.
    ``reward_funcs``: a callable with TRL's signature ``fn(prompts, completions, **kwargs)``,
    a built-in name ("accuracy", "format", …), "module:function", "path.py:function",
    "model:<hub id or path>" (a reward model) — or a list mixing them.
    ``args``: a :class:`GRPOConfig` (or a RunConfig); None = the defaults.
    ``train_dataset`` / ``eval_dataset``: a ``datasets.Dataset``, a list of dicts with a
    ``prompt`` (text or chat messages) and any other columns, or a list of prompt strings.
    Without ``eval_dataset`` nothing is evaluated (as in TRL).
    ``ref_model``: the frozen reference for the KL penalty when ``beta > 0`` (default: a copy
    of the starting policy). ``processing_class`` / ``tokenizer``: the tokenizer (default:
    loaded from the model's folder or hub id). ``on_fault``: what a fault that repeats
    (``PAUSE_AFTER_FAILURES`` times in a row: a reward function failing, non-finite updates;
    or out of memory) does: "fail" (default: checkpoint, then ``train()`` raises
    :class:`TrainingFailed` naming the cause) or "pause" (wait for ``control.resume()``, which
    reloads reward plugins from their files, as the dashboard does).

    As TRL's: ``peft_config`` (a LoRA config), ``callbacks`` (transformers ``TrainerCallback``s:
    which hooks are called is in :mod:`engine.api.callbacks`), ``reward_processing_classes``;
    ``optimizers`` and ``quantization_config`` are refused unless unset (see
    :mod:`engine.api.options`). ``train_dataset`` may be an ``IterableDataset`` when
    ``max_steps`` is set. Agentic GRPO as TRL 1.16 (see :mod:`engine.agents`): ``tools`` (typed,
    documented functions, sync or async), ``environment_factory`` (a class or factory, one
    instance per rollout, or ``{name: factory}`` chosen by an ``environment`` column; its
    ``get_reward()`` may be the only reward) and ``rollout_func(prompts, trainer)``, with
    ``args.max_tool_calling_iterations``.

    Attributes: ``run_dir``, ``control``, ``model``, ``processing_class``, ``args``, ``summary``,
    ``state`` (transformers' ``TrainerState``), ``accelerator``, ``callback_handler``.
    """

    def __init__(
        self,
        model: Any,
        reward_funcs: Any = None,
        args: RunConfig | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        ref_model: Any = None,
        processing_class: Any = None,
        tokenizer: Any = None,
        *,
        reward_processing_classes: Any = None,
        callbacks: list | None = None,
        optimizers: tuple = (None, None),
        quantization_config: Any = None,
        peft_config: Any = None,
        tools: list | None = None,
        rollout_func: Any = None,
        environment_factory: Any = None,
        control: Control | None = None,
        on_fault: str = "fail",
    ) -> None:
        from engine.training.faults import check_fault_policy

        check_fault_policy(on_fault)
        if args is None:
            args = GRPOConfig()
        if isinstance(args, GRPOConfig):
            cfg = args.to_run_config()
        elif isinstance(args, RunConfig):
            cfg = copy.deepcopy(args)
        else:
            raise TypeError(f"args: expected a GRPOConfig (or a RunConfig), got {type(args).__name__}")
        check_unsupported(optimizers, quantization_config)
        if peft_config is not None:
            cfg.peft = peft_options(peft_config)
        if processing_class is not None and tokenizer is not None and processing_class is not tokenizer:
            raise TypeError("give the tokenizer once: processing_class= or tokenizer=, not both")
        tokenizer = processing_class if processing_class is not None else tokenizer

        specs = _reward_specs(reward_funcs, allow_none=environment_factory is not None)
        _check_rewards(cfg, specs)
        check_reward_processing_classes(reward_processing_classes, specs)
        cfg.reward_funcs = [_display_spec(s) for s in specs]

        column = cfg.dataset.prompt_column
        train_rows = _rows(as_rows(train_dataset, "train_dataset", cfg), "train_dataset", column)
        eval_rows = _rows(as_rows(eval_dataset, "eval_dataset", None), "eval_dataset", column) \
            if eval_dataset is not None else []
        data = PromptData.from_rows(train_rows, eval_rows)
        cfg.max_steps = resolved_max_steps(cfg, len(train_rows))  # max_steps -1: TRL's epochs, from the dataset size

        self.model, cfg.model_name_or_path = _load_policy(model, cfg)
        if tokenizer is None:
            tokenizer = _load_tokenizer(self.model, model)
        self.processing_class = tokenizer
        self.args = cfg
        self.num_generations = cfg.num_generations  # what a rollout_func reads, as on TRL's trainer
        self.train_dataset, self.eval_dataset = train_dataset, eval_dataset
        self.reward_funcs = specs
        self.control = control or Control()
        self._given_ref = _load_reference(ref_model, cfg)
        self._engine_kwargs = dict(evaluate=bool(eval_rows), model=self.model, tokenizer=tokenizer, reward_funcs=specs,
                                   data=data, ref_model=self._given_ref, on_fault=on_fault, tools=tools,
                                   environment_factory=environment_factory,
                                   rollout_func=_as_trainer_call(rollout_func, self))
        self._trainer = self._engine()
        self.run_dir: Path = self._trainer.run_dir
        self.summary: dict[str, Any] = {}
        self._thread: threading.Thread | None = None
        self.hub = HubSettings.of(args)
        self._overwrite = bool(getattr(args, "overwrite_output_dir", False))
        self.state = new_state(cfg)
        given = [cb() if isinstance(cb, type) else cb for cb in callbacks or []]  # classes too, as transformers
        self.callback_handler = CallbackBridge(
            [*default_callbacks(args), *given], args, self.state, cfg.logging_steps,
            {"model": self.model, "processing_class": tokenizer, "optimizer": None, "lr_scheduler": None,
             "train_dataloader": None, "eval_dataloader": None})
        self._accelerator = None

    def _engine(self, resume_from: Path | None = None, run_dir: Path | None = None):
        from engine.training.trainer import Trainer  # torch: loaded when a trainer is made, not on import

        trainer = Trainer(self.args, control=self.control, run_dir=run_dir, **self._engine_kwargs)
        trainer.resume_from = resume_from
        return trainer

    # TrainerCallback handling, as transformers' Trainer names it
    def add_callback(self, callback: Any) -> None:
        self.callback_handler.callbacks.append(callback() if isinstance(callback, type) else callback)

    def pop_callback(self, callback: Any) -> Any:
        for cb in self.callback_handler.callbacks:
            if cb is callback or (isinstance(callback, type) and isinstance(cb, callback)):
                self.callback_handler.callbacks.remove(cb)
                return cb
        return None

    def remove_callback(self, callback: Any) -> None:
        self.pop_callback(callback)

    @property
    def accelerator(self):
        """accelerate's ``Accelerator`` of the run (the engine's own once it runs on several
        processes): ``is_main_process``, ``process_index``, ``num_processes``, ``device``, ``print``..."""
        dist = getattr(self._trainer, "dist", None)
        if dist is not None and dist.accelerator is not None:
            return dist.accelerator
        if self._accelerator is None:
            from accelerate import Accelerator

            self._accelerator = Accelerator(cpu=str(getattr(self._trainer, "device", "") or "") == "cpu")
        return self._accelerator

    def is_world_process_zero(self) -> bool:
        return self.state.is_world_process_zero

    def save_model(self, output_dir: str | os.PathLike | None = None, _internal_call: bool = False) -> Path:
        """Write the model (the LoRA adapter alone with peft, as TRL) and its tokenizer to
        ``output_dir`` (default: ``args.output_dir``) in save_pretrained format."""
        target = Path(output_dir) if output_dir is not None else self.run_dir
        if self.state.is_world_process_zero:
            target.mkdir(parents=True, exist_ok=True)
            model = self._trainer.model if self._trainer.model is not None else self.model
            model.save_pretrained(target, safe_serialization=True)
            if self.processing_class is not None:
                self.processing_class.save_pretrained(target)
        return target

    def push_to_hub(self, commit_message: str | None = "End of training", blocking: bool = True,
                    token: str | None = None, revision: str | None = None, **kwargs: Any) -> str:
        """Upload the trained model (``output_dir/final``, else the model as it is now) to
        ``args.hub_model_id`` (default: ``output_dir``'s name); the commit's URL. Raises
        :class:`HubError` with one line when offline or the hub refuses."""
        folder = self.run_dir / "final"
        if not (folder / "config.json").exists() and not (folder / "adapter_config.json").exists():
            folder = self.save_model(self.run_dir / "final")
        return push_folder(folder, self.hub.repo_id or self.run_dir.resolve().name, token=token or self.hub.token,
                           private=self.hub.private, revision=revision or self.hub.revision,
                           commit_message=commit_message or "End of training")

    # TRL spells it both ways
    @property
    def tokenizer(self):
        return self.processing_class

    @property
    def ref_model(self):
        """The reference model in use (after training starts), else the one given."""
        used = getattr(self._trainer, "ref_model", None)
        return used if used is not None else self._given_ref

    def start(self, resume_from_checkpoint: bool | str | os.PathLike | None = None) -> threading.Thread:
        """Train in a background thread and return it at once; steer with ``self.control``.
        ``resume_from_checkpoint``: as :meth:`train`."""
        if self._thread is not None:
            raise RuntimeError(f"this trainer has already run (output_dir {self.run_dir}); make a new GRPOTrainer")
        try:
            if resume_from_checkpoint not in (None, False):
                checkpoint = checkpoint_to_resume(self.run_dir, resume_from_checkpoint)
                self._trainer = self._engine(resume_from=checkpoint, run_dir=run_dir_of(checkpoint))
                self.run_dir = self._trainer.run_dir
                self.state.log_history[:] = logged_until(self.run_dir, checkpoint)
            else:
                clear_for_new_run(self.run_dir, self._overwrite)
        except OutputDirError as exc:
            raise TrainingFailed(str(exc), self.run_dir) from None
        self._unsubscribe = self.callback_handler.attach(self.control)
        self._thread = self._trainer.start()
        return self._thread

    def train(self, resume_from_checkpoint: bool | str | os.PathLike | None = None, **kwargs: Any) -> TrainResult:
        """Train to the end and return the summary (steps, wall time, eval accuracy, final model
        path), which also reads as transformers' ``TrainOutput`` (``.metrics``, ``.global_step``).

        ``resume_from_checkpoint``: True continues the run in ``output_dir`` from its newest
        checkpoint, a path from that checkpoint (or that run directory's newest); the run goes
        on in the checkpoint's run directory with these arguments (``max_steps`` may grow).
        Interrupting (Ctrl-C, the notebook's stop button) asks the run to stop at the next
        step boundary; the final model is still saved. A failed run raises TrainingFailed, and
        so does a fault (``on_fault="fail"``) or a stop while a fault stood. With
        ``push_to_hub=True`` the final model is uploaded at the end (see :meth:`push_to_hub`).
        """
        if kwargs:
            raise TypeError(f"train() got unexpected keyword arguments: {', '.join(kwargs)} "
                            "(it takes resume_from_checkpoint)")
        thread = self.start(resume_from_checkpoint)
        try:
            while thread.is_alive():
                thread.join(0.2)
        except KeyboardInterrupt:
            self.control.stop()
            thread.join()
        summary = self._result()
        if self.hub.push and not summary.get("error"):
            summary["hub_commit"] = self.push_to_hub()
        return TrainResult(summary, self.state.log_history)

    # transformers' helpers that TRL and open-r1 scripts call after train()
    def log_metrics(self, split: str, metrics: dict[str, Any]) -> None:
        log_metrics(split, metrics, self.state.is_world_process_zero)

    def save_metrics(self, split: str, metrics: dict[str, Any], combined: bool = True) -> None:
        save_metrics(self.run_dir, split, metrics, combined, self.state.is_world_process_zero)

    def save_state(self) -> None:
        """``<output_dir>/trainer_state.json``: ``trainer.state`` (log history included)."""
        if self.state.is_world_process_zero:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.state.save_to_json(str(self.run_dir / "trainer_state.json"))

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """After :meth:`start`: wait for the run to end and return its summary (as ``train``)."""
        if self._thread is None:
            raise RuntimeError("nothing to wait for: call start() first")
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the run is still going after {timeout} s")
        return self._result()

    def _result(self) -> dict[str, Any]:
        unsubscribe = getattr(self, "_unsubscribe", None)
        if unsubscribe is not None:
            unsubscribe()
        self.summary = dict(self._trainer.summary)
        if self.callback_handler.error and not self.summary.get("error"):
            self.summary["error"] = self.callback_handler.error
            raise TrainingFailed(f"stopped at step {self.summary.get('steps', 0)}: {self.callback_handler.error}",
                                 self.run_dir)
        error = self.summary.get("error")
        fault = self.summary.get("fault")
        if fault and not error:  # paused by a fault, then stopped: the run did not get where it was going
            raise TrainingFailed(f"stopped after a fault: {fault}", self.run_dir)
        if error:
            log = self.run_dir / "error.log"
            raise TrainingFailed(in_api_terms(error, self.run_dir), self.run_dir,
                                 log if log.exists() and not fault else None)
        return self.summary


# --------------------------------------------------------------------------- helpers


def _as_trainer_call(rollout_func: Any, trainer: "GRPOTrainer"):
    """TRL calls ``rollout_func(prompts, trainer)`` with the GRPOTrainer itself: so does this one."""
    if rollout_func is None:
        return None
    if not callable(rollout_func):
        raise TypeError(f"rollout_func: expected a callable, got {type(rollout_func).__name__}")

    def call(prompts, _view):
        return rollout_func(prompts, trainer)
    return call


def _reward_specs(reward_funcs: Any, allow_none: bool = False) -> list:
    if reward_funcs is None:  # an environment's get_reward may be the only reward (as TRL)
        if allow_none:
            return []
        raise TypeError("reward_funcs: give at least one reward function (or an environment_factory whose "
                        "environment has get_reward)")
    items = list(reward_funcs) if isinstance(reward_funcs, (list, tuple)) else [reward_funcs]
    if not items and not allow_none:
        raise TypeError("reward_funcs: give at least one reward function")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            out.append(item.strip())
        elif callable(item):
            out.append(item)
        else:
            raise TypeError(
                f"reward_funcs[{i}]: expected a callable or a name/spec string, got {type(item).__name__}"
            )
    return out


def _reward_label(spec: Any) -> str:
    """The name a reward function's metrics will carry (as engine.rewards.scoring names it)."""
    from engine.rewards.scoring import is_reward_model_spec, reward_model_name

    if callable(spec):
        return getattr(spec, "__name__", type(spec).__name__)
    if is_reward_model_spec(spec):
        return reward_model_name(spec)
    return spec.rpartition(":")[2]


def _display_spec(spec: Any) -> str:
    """What config.yaml records: the spec, or ``module:function`` for an importable function."""
    if isinstance(spec, str):
        return spec
    module, name = getattr(spec, "__module__", None), getattr(spec, "__qualname__", "")
    if module and module != "__main__" and name.isidentifier():
        return f"{module}:{name}"
    return _reward_label(spec)


def _resolve_local(target: str) -> str:
    """A relative path that exists in the current folder or the repository, made absolute."""
    for base in (Path.cwd(), REPO_ROOT):
        p = (base / Path(target).expanduser())
        if p.exists():
            return str(p.resolve())
    return target


def _check_rewards(cfg: RunConfig, specs: list) -> None:
    """Every problem with the reward functions and their weights and options, at once."""
    from engine.rewards.scoring import check_reward_kwargs, check_reward_spec, is_reward_model_spec

    problems: list[str] = []
    for i, spec in enumerate(specs):
        if isinstance(spec, str):
            if is_reward_model_spec(spec):
                target = spec.split(":", 1)[1].strip()
                specs[i] = spec = f"model:{_resolve_local(target)}" if target else spec
            message = check_reward_spec(spec)
            if message:
                problems.append(f"reward_funcs[{i}]: {message}")
    if cfg.reward_weights is not None and len(cfg.reward_weights) != len(specs):
        problems.append(
            f"reward_weights: has {len(cfg.reward_weights)} weights but reward_funcs has {len(specs)} functions"
        )
    labels = [_reward_label(s) for s in specs]
    options = dict(cfg.reward_kwargs or {})
    for name in list(options):
        if name not in labels:
            close = difflib.get_close_matches(name, labels, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"reward_kwargs.{name}: no reward function named {name!r}{hint}")
            del options[name]
    string_specs = [s for s in specs if isinstance(s, str)]
    problems.extend(check_reward_kwargs(options, max_completion_length=cfg.max_completion_length, reward_funcs=string_specs))
    if problems:
        raise GRPOConfigError(problems, source="GRPOTrainer")


def _rows(dataset: Any, what: str, column: str = "prompt") -> list[dict]:
    """Rows with a ``prompt`` from a datasets.Dataset, a list of dicts or a list of strings
    (the prompt read from ``column``, ``dataset.prompt_column`` in the config)."""
    if dataset is None:
        raise TypeError(f"{what}: give the prompts (a datasets.Dataset, a list of dicts with 'prompt', or a list of strings)")
    kind = type(dataset).__name__
    if kind == "DatasetDict" or (isinstance(dataset, dict) and dataset and all(hasattr(v, "column_names") for v in dataset.values())):
        raise TypeError(f"{what}: a DatasetDict has several splits; pass one, e.g. dataset['train']")
    if hasattr(dataset, "column_names") and hasattr(dataset, "to_list"):
        rows = dataset.to_list()
    elif hasattr(dataset, "to_dict") and hasattr(dataset, "columns"):  # a pandas DataFrame
        rows = dataset.to_dict("records")
    elif isinstance(dataset, Iterable) and not isinstance(dataset, (str, bytes, dict)):
        rows = list(dataset)
    else:
        raise TypeError(f"{what}: expected a datasets.Dataset, a list of dicts or a list of strings, got {kind}")
    if not rows:
        raise ValueError(f"{what}: no rows")
    out = []
    for i, row in enumerate(rows):
        if isinstance(row, str):
            out.append({"prompt": row})
        elif isinstance(row, dict):
            if column not in row:
                raise ValueError(f"{what}[{i}]: no {column!r} column (columns: {', '.join(map(str, row)) or 'none'})")
            row = dict(row)
            if column != "prompt":
                row["prompt"] = row.pop(column)
            out.append(row)
        else:
            raise TypeError(f"{what}[{i}]: expected a dict with 'prompt' or a string, got {type(row).__name__}")
    return out


def _load_policy(model: Any, cfg: RunConfig) -> tuple[Any, str]:
    """The policy model object and the name recorded for it in config.yaml."""
    if isinstance(model, (str, os.PathLike)):
        from transformers import AutoModelForCausalLM

        from engine.training.model_loading import pick_device, resolve_dtype

        target = _resolve_local(str(model))
        dtype = resolve_dtype(cfg.torch_dtype, pick_device())
        policy = AutoModelForCausalLM.from_pretrained(target, dtype=dtype)
        name = target
    elif hasattr(model, "generate") and hasattr(model, "parameters"):
        policy = model
        name = getattr(model, "name_or_path", "") or type(model).__name__
    else:
        raise TypeError(f"model: expected a hub id, a folder or a causal-LM model object, got {type(model).__name__}")
    if cfg.peft is not None and not hasattr(policy, "peft_config"):
        from engine.training.model_loading import with_lora

        policy = with_lora(policy, cfg.peft)
    if cfg.gradient_checkpointing:
        policy.gradient_checkpointing_enable()
        policy.config.use_cache = False
    policy.train()
    return policy, str(name)


def _load_tokenizer(policy: Any, given: Any):
    from engine.training.model_loading import load_tokenizer

    source = _resolve_local(str(given)) if isinstance(given, (str, os.PathLike)) else getattr(policy, "name_or_path", "")
    if not source:
        raise TypeError("processing_class: the model object has no name_or_path to load a tokenizer from; pass tokenizer=...")
    return load_tokenizer(source)


def _load_reference(ref_model: Any, cfg: RunConfig):
    if ref_model is None:
        return None
    if isinstance(ref_model, (str, os.PathLike)):
        from transformers import AutoModelForCausalLM

        from engine.training.model_loading import pick_device, resolve_dtype

        return AutoModelForCausalLM.from_pretrained(
            _resolve_local(str(ref_model)), dtype=resolve_dtype(cfg.torch_dtype, pick_device())
        )
    if not hasattr(ref_model, "parameters"):
        raise TypeError(f"ref_model: expected a model object, a hub id or a folder, got {type(ref_model).__name__}")
    return ref_model


__all__ = ["GRPOTrainer", "TrainingFailed"]
