"""The default decoding loop's key/value cache, allocated once: each node keeps its slot.

The default loop (:meth:`~engine.rollout.backend.TransformersRollout.generate`) decodes
*nodes*: distinct prefixes, shared by the rows of a group while their samples agree. Grown by
concatenation and gathered by parent node every token, its cache was copied twice a token; on
a CPU, for 64 rows of a 26M-parameter Llama with 100-token contexts, those copies took more
time than the arithmetic (cat and index: 54% of generation). Here:

* each layer's keys and values live in buffers ``[rows, kv_heads, capacity, head_dim]``
  allocated once; the nodes of a step occupy slots ``0 … count−1`` (node i in slot i), and a
  token's keys and values are written in place at column ``length``;
* between steps, :func:`placement` puts the next step's nodes into slots so that a node whose
  parent goes on keeps the parent's slot: only the extra children of a split and the nodes that
  move down into slots freed by ended rows copy a prefix (:meth:`NodeCache.regroup`);
* attention reads each slot's first ``length`` columns as they lie in the buffer.

The arithmetic is the concatenating cache's: the same keys, values and queries, attended over
in the same order. A node may sit at another row of the batch's matrix products, so log-probs
can differ in the last bits (at most 3e-6 on the cases compared; the sampled tokens were the
same); the tests compare tokens and log-probs with the model's own forward.
"""

from __future__ import annotations

import torch

from engine.rollout.llama_forward import KVCache


def placement(parent: list[int]) -> tuple[list[int], list[tuple[int, int]]]:
    """Where the next step's nodes go: ``parent[j]`` is the slot of node j's parent (nodes
    sorted by parent, as :func:`torch.unique` returns them). Returns ``order``, the node to put
    in each slot ``0 … len(parent)−1``, and the ``(from, to)`` slot copies that make it so.

    A parent's first child keeps the parent's slot when that slot is still in range; the other
    children, and first children of parents beyond the range, fill the free slots in order.
    Every copy reads a slot no copy writes, so they can run at once.

    Node 0 and 1 split slot 0; slot 1's node ended; slot 2's goes on: node 1 takes slot 1 (a
    copy of slot 0), node 2 stays in slot 2. Then slot 0 ends and slots 1 and 3 go on: node 1
    (slot 3's child) moves down into slot 0.

    >>> placement([0, 0, 2])
    ([0, 1, 2], [(0, 1)])
    >>> placement([1, 3])
    ([1, 0], [(3, 0)])
    """
    count = len(parent)
    order: list[int | None] = [None] * count
    moving: list[int] = []
    for j, p in enumerate(parent):
        if p < count and (j == 0 or parent[j - 1] != p):
            order[p] = j  # a first child stays where its parent was
        else:
            moving.append(j)
    free = [s for s in range(count) if order[s] is None]
    for j, s in zip(moving, free, strict=True):
        order[s] = j
    return order, [(parent[j], s) for j, s in zip(moving, free, strict=True)]


class NodeCache:
    """Keys and values of up to ``rows`` nodes, ``capacity`` positions each (see the module docstring).

    Built from the prefill's cache (one node per prompt); :class:`~engine.rollout.llama_forward.LeanDecoder`
    calls :meth:`write` for each layer and :meth:`grow` after the last."""

    def __init__(self, prompt_cache: KVCache, rows: int, capacity: int) -> None:
        first = prompt_cache[0][0]
        nodes, kv_heads, width, head_dim = first.shape
        self.layers: KVCache = []
        for k, v in prompt_cache:
            keys = k.new_empty((rows, kv_heads, capacity, head_dim))
            values = v.new_empty((rows, kv_heads, capacity, head_dim))
            keys[:nodes, :, :width].copy_(k)
            values[:nodes, :, :width].copy_(v)
            self.layers.append((keys, values))
        self.count, self.length, self.capacity = nodes, width, capacity

    def regroup(self, parent: torch.Tensor) -> torch.Tensor:
        """Make room for the next step's nodes, node j a child of the node in slot ``parent[j]``
        (sorted): returns the permutation ``order`` that lists the node to put in each slot, after
        copying the prefixes that must move."""
        order, copies = placement(parent.tolist())
        if copies:
            src = torch.tensor([a for a, _ in copies], device=parent.device)
            dst = torch.tensor([b for _, b in copies], device=parent.device)
            for keys, values in self.layers:
                keys[dst, :, : self.length] = keys[src, :, : self.length]
                values[dst, :, : self.length] = values[src, :, : self.length]
        self.count = len(order)
        return torch.tensor(order, device=parent.device)

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new tokens' keys and values [count, kv_heads, new, head_dim] of ``layer`` after
        the ``length`` cached ones; the layer's keys and values so far, as views of the buffers."""
        keys, values = self.layers[layer]
        end = self.length + k.size(2)
        if end > self.capacity:
            raise ValueError(f"the cache holds {self.capacity} positions, {end} asked for")
        keys[: self.count, :, self.length : end] = k
        values[: self.count, :, self.length : end] = v
        return keys[: self.count, :, :end], values[: self.count, :, :end]

    def grow(self, new: int) -> None:
        """Count the ``new`` positions every layer has written."""
        self.length += new
