"""FSDP2 on CPU processes (gloo), for the tests: on ``PYTHONPATH`` it is imported by every
Python process at start-up.

accelerate sets up FSDP only on accelerators; given an FSDP config on CPU it falls back to
DDP. FSDP2 itself runs on CPU over gloo, so in the processes ``accelerate launch`` starts
with an FSDP config this lets accelerate's own preparation shard the model as it does on
GPUs, and the trainer's sharded path runs for real.
"""

import os

if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
    from accelerate import state as _state

    _init = _state.AcceleratorState.__init__

    def _init_sharding_on_cpu(self, *args, **kwargs):
        _init(self, *args, **kwargs)
        plugin = kwargs.get("fsdp_plugin")
        if plugin is not None and self.distributed_type == _state.DistributedType.MULTI_CPU:
            self.distributed_type = _state.DistributedType.FSDP
            self.fsdp_plugin = plugin

    _state.AcceleratorState.__init__ = _init_sharding_on_cpu
