"""vLLM on GPUs of its own (``vllm_mode: server``): the server, and the trainer's backend for it.

On the generation machine (or GPUs)::

    grpo-tui vllm-serve Qwen/Qwen2.5-1.5B-Instruct --tensor-parallel-size 2 --port 8000

and in the preset ``use_vllm: true``, ``vllm_mode: server``, ``vllm_server_host: <that host>``.

The protocol is small JSON over HTTP, one request per step part:

- ``GET  /health``                 200 once the engine is loaded
- ``GET  /info``                   ``{"model", "world_size"}`` (the engine's GPU workers)
- ``POST /init_weight_group``      ``{"host", "port", "world_size"}``: the workers join an NCCL
  group with the trainer (rank 0, hosting its rendezvous at host:port) for weight pushes
- ``POST /update_weights``         ``{"params": [[name, dtype, shape], ...]}``: the workers receive
  those tensors by NCCL broadcast from the trainer, in order, and load them; the reply comes
  when all are loaded
- ``POST /generate``               ``{"prompts": [[ids]], "n", sampling options, "seed"}`` →
  ``{"completions": [{"prompt", "token_ids", "logprobs", "finish_reason"}, ...]}`` (n per prompt, in order)

Weights travel GPU to GPU by NCCL, never through HTTP.
"""

from __future__ import annotations

import dataclasses
import json
import math
import socket
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import torch

from engine.rollout.backend import Rollout, SamplingParams, rollout_from_lists
from engine.parallel.sharding import full_weights
from engine.rollout.vllm_colocated import _tokens_and_logps, completion_row, merged_weights, vllm_sampling_params


# --------------------------------------------------------------------------- inside the server's GPU workers


class WeightReceiver:
    """Mixed into each vLLM GPU worker (``worker_extension_cls``): joins the trainer's NCCL
    group and loads the tensors the trainer broadcasts."""

    def init_weight_group(self, host: str, port: int, world_size: int) -> None:
        from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator
        from vllm.distributed.parallel_state import get_world_group
        from vllm.distributed.utils import StatelessProcessGroup

        rank = 1 + get_world_group().rank  # the trainer is rank 0
        group = StatelessProcessGroup.create(host=host, port=port, rank=rank, world_size=world_size)
        self._grpo_weights = PyNcclCommunicator(group, device=self.device)

    def receive_weights(self, params: list) -> None:
        for name, dtype, shape in params:
            tensor = torch.empty(shape, dtype=getattr(torch, dtype), device=self.device)
            self._grpo_weights.broadcast(tensor, src=0, stream=torch.cuda.current_stream())
            self.model_runner.model.load_weights(weights=[(name, tensor)])
        torch.cuda.synchronize()


# --------------------------------------------------------------------------- the server


def serve(model: str, host: str = "0.0.0.0", port: int = 8000, tensor_parallel_size: int = 1,
          gpu_memory_utilization: float = 0.9, max_model_len: int | None = None, dtype: str = "auto") -> None:
    """Load ``model`` into a vLLM engine and answer the protocol above until interrupted."""
    from vllm import LLM

    llm = LLM(model=model, tensor_parallel_size=tensor_parallel_size, gpu_memory_utilization=gpu_memory_utilization,
              max_model_len=max_model_len, dtype=dtype, enable_prefix_caching=True,
              logprobs_mode="processed_logprobs", worker_extension_cls=f"{__name__}.WeightReceiver")
    engine_lock = threading.Lock()  # one generate / weight load at a time

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet: one line per request is noise here
            pass

        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/health":
                self._reply(200, {"ok": True})
            elif self.path == "/info":
                self._reply(200, {"model": model, "world_size": tensor_parallel_size})
            else:
                self._reply(404, {"error": f"no such endpoint {self.path}"})

        def do_POST(self) -> None:  # noqa: N802
            try:
                payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path == "/init_weight_group":
                    llm.collective_rpc("init_weight_group",
                                       args=(payload["host"], int(payload["port"]), int(payload["world_size"])))
                    self._reply(200, {"ok": True})
                elif self.path == "/update_weights":
                    with engine_lock:
                        llm.collective_rpc("receive_weights", args=(payload["params"],))
                        llm.reset_prefix_cache()
                    self._reply(200, {"ok": True})
                elif self.path == "/generate":
                    with engine_lock:
                        self._reply(200, {"completions": _generate(llm, payload)})
                else:
                    self._reply(404, {"error": f"no such endpoint {self.path}"})
            except Exception as exc:  # noqa: BLE001 - the client shows it; the server keeps serving
                self._reply(500, {"error": f"{type(exc).__name__}: {exc}"})

    server = ThreadingHTTPServer((host, port), Handler)
    print(f"grpo-tui vllm-serve: {model} on {tensor_parallel_size} GPU(s), listening on {host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _generate(llm, payload: dict) -> list[dict]:
    params = SamplingParams(**payload["params"])
    sampling = vllm_sampling_params(params, int(payload["n"]), payload["eos_ids"], payload.get("seed"))
    outputs = llm.generate([{"prompt_token_ids": p} for p in payload["prompts"]], sampling_params=sampling,
                           use_tqdm=False)
    completions = []
    for out in outputs:
        for c in out.outputs:
            tokens, logps = _tokens_and_logps(c)
            completions.append({"prompt": list(out.prompt_token_ids), "token_ids": tokens,
                                "logprobs": [None if math.isnan(x) else x for x in logps],
                                "finish_reason": c.finish_reason})
    return completions


# --------------------------------------------------------------------------- the trainer's side


class VllmServerRollout:
    """The rollout backend interface on a ``grpo-tui vllm-serve`` server. Rank 0 talks to the
    server for every rank: prompts are gathered, generated in one request, and handed back;
    weights are pushed from rank 0 (all ranks hold the same weights)."""

    separate_engine = True

    def __init__(self, model: torch.nn.Module, pad_id: int, eos_ids: list[int], *, cfg, dist) -> None:
        self.model = model
        self.pad_id = pad_id
        self.eos_ids = list(eos_ids)
        self.dist = dist
        self.base_url = (cfg.vllm_server_base_url or f"http://{cfg.vllm_server_host}:{cfg.vllm_server_port}").rstrip("/")
        self.comm = None
        if dist.is_main:
            self._wait_until_up(cfg.vllm_server_timeout)
            self._join_weight_group(cfg.vllm_group_port)
        self.sync_weights(model)  # the server may hold other weights (a previous run, a checkpoint)

    def _request(self, path: str, body: dict | None = None, timeout: float = 600.0) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise RuntimeError(f"vLLM server {self.base_url}{path}: {exc.code} {detail}") from None

    def _wait_until_up(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._request("/health", timeout=5.0)
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise ConnectionError(
                        f"no vLLM server answered at {self.base_url} within {timeout:.0f} s: start one with "
                        f"`grpo-tui vllm-serve MODEL --port PORT` on the generation GPUs") from None
                time.sleep(1.0)

    def _join_weight_group(self, port: int) -> None:
        from vllm.distributed.device_communicators.pynccl import PyNcclCommunicator
        from vllm.distributed.utils import StatelessProcessGroup

        workers = int(self._request("/info")["world_size"])
        host = _address_towards(self.base_url)
        joined = threading.Thread(target=self._request, args=("/init_weight_group",
                                                              {"host": host, "port": port, "world_size": workers + 1}))
        joined.start()  # the workers join while this process hosts the rendezvous
        group = StatelessProcessGroup.create(host=host, port=port, rank=0, world_size=workers + 1)
        self.comm = PyNcclCommunicator(group, device=torch.cuda.current_device())
        joined.join()

    def sync_weights(self, model: torch.nn.Module) -> None:
        self.model = model
        with full_weights(model):  # sharded (FSDP): every rank takes part in gathering; rank 0 sends
            if self.dist.is_main:
                self._send_weights(model)

    def _send_weights(self, model: torch.nn.Module) -> None:
        with merged_weights(model) as weights:  # a LoRA adapter stays merged until every tensor is sent
            meta = [[name, str(t.dtype).removeprefix("torch."), list(t.shape)] for name, t in weights]
            result: dict[str, Any] = {}
            posted = threading.Thread(target=lambda: result.update(self._request("/update_weights", {"params": meta})))
            posted.start()
            for _, tensor in weights:
                self.comm.broadcast(tensor.contiguous(), src=0, stream=torch.cuda.current_stream())
            torch.cuda.synchronize()
            posted.join()

    @torch.no_grad()
    def generate(self, prompt_ids: list[list[int]], num_generations: int, params: SamplingParams,
                 generator: torch.Generator | None = None) -> Rollout:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device)) \
            if generator is not None else None
        every_rank = self.dist.gather_object([list(p) for p in prompt_ids])
        completions = None
        if self.dist.is_main:
            prompts = [p for part in every_rank for p in part]
            completions = self._request("/generate", {
                "prompts": prompts, "n": num_generations, "params": dataclasses.asdict(params), "eos_ids": self.eos_ids,
                "seed": seed})["completions"]
        completions = self.dist.broadcast(completions)
        n_local = len(prompt_ids) * num_generations
        mine = completions[self.dist.rank * n_local : (self.dist.rank + 1) * n_local]
        finished = [completion_row(list(c["token_ids"]), [math.nan if x is None else x for x in c["logprobs"]],
                                   c["finish_reason"], self.eos_ids, params.max_new_tokens) for c in mine]
        tokens, logps, truncated = (list(column) for column in zip(*finished))
        device = next(self.model.parameters()).device
        return rollout_from_lists([c["prompt"] for c in mine], tokens, truncated, self.pad_id, device, logps)


def _address_towards(base_url: str) -> str:
    """This machine's address as the server sees it (the interface that routes to it)."""
    from urllib.parse import urlparse

    host = urlparse(base_url).hostname or "127.0.0.1"
    if host in ("0.0.0.0", "localhost"):
        return "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((host, 9))  # no packet is sent: this only picks the route
        return s.getsockname()[0]
