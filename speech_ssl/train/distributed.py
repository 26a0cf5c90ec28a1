"""Process-group setup for one or many processes launched by ``torchrun``.

``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; a
plain ``python`` launch is a world of one. The engine is PyTorch's own: DDP (or FSDP2 ``fully_shard``)
over NCCL on GPUs and Gloo on CPU. Collectives time out after ``timeout_minutes`` so that a dead rank
makes the job fail instead of hang.
"""

from __future__ import annotations

import datetime
import os
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from speech_ssl.config import ConfigError
from speech_ssl.device import resolve_device
from speech_ssl.train.config import DistributedConfig


@dataclass
class DistInfo:
    """Where this process stands in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None  # None when not distributed

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as e:
        raise RuntimeError(f"environment variable {name}={raw!r} is not an integer") from e


def pick_device(spec: str, local_rank: int) -> torch.device:
    """``auto`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else CPU; a device this torch cannot use is a
    ConfigError naming the ``device`` key."""
    try:
        dev = resolve_device(spec)
    except ValueError as e:
        raise ConfigError(f"key 'device': {e}") from None
    if dev.type == "cuda" and dev.index is None:
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return dev


def init_distributed(cfg: DistributedConfig, device: str = "auto") -> DistInfo:
    """Read the torchrun environment and start the process group when ``WORLD_SIZE > 1``."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    dev = pick_device(device, local_rank)
    if world <= 1:
        return DistInfo(0, 1, 0, dev, None)
    for var in ("MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise RuntimeError(f"WORLD_SIZE={world} but {var} is not set: launch with torchrun")
    backend = cfg.backend
    if backend == "auto":
        backend = "nccl" if dev.type == "cuda" else "gloo"
    if backend == "nccl" and dev.type != "cuda":
        raise RuntimeError("distributed.backend=nccl needs GPUs; use gloo on CPU")
    os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {}
        if backend == "nccl":
            kwargs["device_id"] = dev
        dist.init_process_group(
            backend=backend,
            rank=rank,
            world_size=world,
            timeout=datetime.timedelta(minutes=cfg.timeout_minutes),
            **kwargs,
        )
    return DistInfo(rank, world, local_rank, dev, backend)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """In-place sum over ranks (no-op in a world of one)."""
    if info.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def host_group(info: DistInfo) -> Any:
    """The process group for small host-side collectives (the trainer's stop / save flags): the default group
    under Gloo, a new Gloo group under NCCL, so that agreeing on a flag never waits for the GPU's queue; None in
    a world of one. Every rank must call it (it is a collective under NCCL)."""
    if not info.distributed:
        return None
    if info.backend == "gloo":
        return dist.group.WORLD
    return dist.new_group(backend="gloo")


def all_reduce_host(values: list[float], info: DistInfo, group: Any) -> list[float]:
    """Sum host numbers over ranks on ``group`` (from :func:`host_group`); the values themselves in a world of one."""
    if not info.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)
    return t.tolist()


def all_gather_object(obj: Any, info: DistInfo) -> list[Any]:
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's global RNG and Python's ``random``."""
    seed = int(seed) % (2**31 - 1)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def batch_seed(base: int, num_updates: int, global_batch: int) -> int:
    """A seed for one micro-batch that depends only on (seed, update, global micro-batch index).

    The global index is ``micro_index * world_size + rank``, so 2 ranks × update_freq 1 and 1 rank ×
    update_freq 2 draw the same masks, negatives and dropout for the same data.
    """
    h = (base * 1_000_003 + num_updates) * 1_000_033 + global_batch
    return (h ^ (h >> 29)) % (2**31 - 1)


def rng_state() -> dict[str, Any]:
    """This process's RNG states as tensors and plain values (loadable with ``weights_only=True``)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    v, internal, gauss = state["python"]
    random.setstate((v, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def transformer_layers(model: nn.Module) -> list[nn.Module]:
    """The repeated blocks of a model: the children of the largest ``nn.ModuleList`` named ``layers``."""
    best: nn.ModuleList | None = None
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and name.split(".")[-1] == "layers":
            if best is None or len(mod) > len(best):
                best = mod
    return list(best) if best is not None else []


def apply_activation_checkpointing(model: nn.Module) -> int:
    """Recompute each Transformer layer in backward (non-reentrant checkpointing); returns #layers."""
    from functools import partial

    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
        CheckpointImpl,
        checkpoint_wrapper,
    )
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
        apply_activation_checkpointing as apply_ac,
    )

    layers = set(id(m) for m in transformer_layers(model))
    if not layers:
        raise RuntimeError("activation_checkpointing: no `layers` ModuleList found in the model")
    apply_ac(
        model,
        checkpoint_wrapper_fn=partial(checkpoint_wrapper, checkpoint_impl=CheckpointImpl.NO_REENTRANT),
        check_fn=lambda m: id(m) in layers,
    )
    return len(layers)


def set_pos_conv_impl(model: nn.Module, impl: str) -> int:
    """``impl`` (conv | fft | auto) for every positional convolution of ``model``; returns how many."""
    from speech_ssl.models.context import PositionalConv, check_pos_conv_impl

    check_pos_conv_impl(impl)
    convs = [m for m in model.modules() if isinstance(m, PositionalConv)]
    for m in convs:
        m.impl = impl
    return len(convs)


def compile_model(model: nn.Module) -> int:
    """``torch.compile`` (dynamic shapes) in place the parts of the model without data-dependent Python: the
    conv feature encoder, the positional conv and each Transformer layer; returns how many modules.

    In place (``nn.Module.compile``), so parameter names, checkpoints and the optimizer are unchanged;
    masking, negatives, the quantizer, LayerDrop and the losses run eagerly between the compiled parts.
    The first batches of each new shape pay the compilation.
    """
    from speech_ssl.models.context import PositionalConv, TransformerLayer
    from speech_ssl.models.feature_encoder import ConvFeatureEncoder

    parts = [m for m in model.modules() if isinstance(m, (ConvFeatureEncoder, PositionalConv, TransformerLayer))]
    if not parts:
        raise RuntimeError("distributed.compile: no conv encoder or Transformer layer found in the model")
    for m in parts:
        m.compile(dynamic=True)
    return len(parts)


def wrap_model(model: nn.Module, cfg: DistributedConfig, info: DistInfo) -> nn.Module:
    """DDP (or FSDP2) around ``model`` when distributed; the model itself otherwise.

    FSDP shards each Transformer layer and then the root, so parameters, gradients and optimizer
    states are split over ranks (needed for the 1B/2B presets on 80 GB GPUs).
    """
    set_pos_conv_impl(model, cfg.pos_conv_impl)
    if cfg.compile:
        compile_model(model)
    if cfg.activation_checkpointing:
        apply_activation_checkpointing(model)
    if cfg.strategy == "fsdp":
        if not info.distributed:
            return model
        from torch.distributed.fsdp import fully_shard

        for layer in transformer_layers(model):
            fully_shard(layer)
        fully_shard(model)
        return model
    if not info.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    # device_ids=None: DDP leaves the inputs where they are. The trainer has moved the batch already, except
    # its lengths, which stay on the host so that the model's padding and mask decisions need no sync (with
    # device_ids DDP would copy them to the GPU and the model would read them back). FSDP2 moves every input
    # tensor to the device, so under FSDP that read back is one sync per forward.
    return DDP(model, device_ids=None, find_unused_parameters=cfg.find_unused_parameters)
