"""One small interface over the CPU, CUDA GPUs and XLA devices (TPUs through torch_xla).

Everything device-specific the training loops need lives here: where tensors go, the autocast
context, how an optimizer step is taken (torch_xla all-reduces gradients inside
`xm.optimizer_step`), when the lazy graph is cut (`mark_step`), the process group (rank, world
size, barrier, all-reduce), whether a fused optimizer exists, and the peak FLOP/s for MFU.
CUDA and XLA imports stay inside their classes, so the CPU path never touches them.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist

from bertvault.errors import TrainingError

log = logging.getLogger(__name__)

# Dense bf16/fp16 peaks (FLOP/s) by device-name fragment, most specific first.
# H100/H200 SXM: 989 TF; H100 PCIe: 756 TF; A100: 312 TF (see the performance reference).
GPU_PEAK_FLOPS = (
    ("H200", 989e12), ("GH200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("H800", 989e12),
    ("A100", 312e12), ("A800", 312e12), ("L40S", 362e12), ("A10G", 125e12), ("L4", 121e12),
    ("RTX 4090", 165e12), ("V100", 125e12), ("T4", 65e12),
)
TPU_PEAK_FLOPS = {"v2": 46e12, "v3": 123e12, "v4": 275e12, "v5e": 197e12, "v5litepod": 197e12,
                  "v5p": 459e12, "v6e": 918e12}


class Device:
    """The CPU, alone or as one gloo rank under torchrun."""

    kind = "cpu"
    backend = "gloo"

    def __init__(self) -> None:
        self.rank = int(os.environ.get("RANK", "0"))
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = torch.device("cpu")

    # --- process group ---------------------------------------------------------------------------
    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def init_process_group(self) -> None:
        if self.distributed and not dist.is_initialized():
            dist.init_process_group(self.backend, rank=self.rank, world_size=self.world_size)

    def shutdown(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def all_gather_object(self, obj):
        if not self.distributed:
            return [obj]
        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast_object(self, obj):
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """DDP across ranks; buffers (position ids) are constants, so they are not re-broadcast."""
        if not self.distributed:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        parameters = inspect.signature(DistributedDataParallel).parameters
        no_buffer_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in parameters else {
            "broadcast_buffers": False}  # the name before torch 2.13
        return DistributedDataParallel(module, device_ids=ids, **no_buffer_sync)

    def no_sync(self, module: torch.nn.Module) -> contextlib.AbstractContextManager:
        """Skips the gradient all-reduce on the inner micro-batches of an accumulated step."""
        return module.no_sync() if hasattr(module, "no_sync") else contextlib.nullcontext()

    # --- compute ---------------------------------------------------------------------------------
    def resolve_precision(self, precision: str) -> str:
        if precision == "auto":
            return "fp32"
        if precision == "fp16":
            raise TrainingError("--precision fp16 needs a CUDA GPU; on the CPU use fp32 or bf16")
        return precision

    def autocast(self, precision: str) -> contextlib.AbstractContextManager:
        if precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def fused_optimizer(self) -> bool:
        return True  # torch >= 2.4 has fused AdamW kernels for the CPU

    def grad_scaler(self, precision: str):
        return None

    def optimizer_step(self, optimizer: torch.optim.Optimizer, scaler=None) -> None:
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()

    def mark_step(self) -> None:
        """Cuts the lazy graph on XLA; nothing to do elsewhere."""

    def synchronize(self) -> None:
        """Waits for queued kernels, so that timings mean something."""

    def peak_flops(self, precision: str) -> float | None:
        return None

    def name(self) -> str:
        return "cpu"

    def seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def rng_state(self) -> dict[str, torch.Tensor]:
        return {"cpu": torch.get_rng_state()}

    def set_rng_state(self, state: dict[str, torch.Tensor]) -> None:
        torch.set_rng_state(state["cpu"])


class CudaDevice(Device):
    kind = "cuda"
    backend = "nccl"

    def __init__(self) -> None:
        super().__init__()
        if not torch.cuda.is_available():
            raise TrainingError("--device cuda: no CUDA GPU is visible (torch.cuda.is_available() is False)")
        torch.cuda.set_device(self.local_rank % torch.cuda.device_count())
        self.device = torch.device("cuda", torch.cuda.current_device())
        # TF32 for the fp32 matmuls that autocast leaves (and for --precision fp32).
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    def resolve_precision(self, precision: str) -> str:
        if precision == "auto":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise TrainingError(f"--precision bf16: {self.name()} has no bf16; use fp16")
        return precision

    def autocast(self, precision: str) -> contextlib.AbstractContextManager:
        if precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if precision == "bf16" else torch.float16
            return torch.autocast("cuda", dtype=dtype)
        return contextlib.nullcontext()

    def grad_scaler(self, precision: str):
        return torch.amp.GradScaler("cuda") if precision == "fp16" else None

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)

    def name(self) -> str:
        return torch.cuda.get_device_name(self.device)

    def peak_flops(self, precision: str) -> float | None:
        name = self.name()
        peak = next((flops for fragment, flops in GPU_PEAK_FLOPS if fragment in name), None)
        if peak is None:
            return None
        return peak if precision in ("bf16", "fp16") else peak / 2  # TF32 runs at half the bf16 rate

    def seed(self, seed: int) -> None:
        torch.manual_seed(seed)
        torch.cuda.manual_seed_all(seed)

    def rng_state(self) -> dict[str, torch.Tensor]:
        return {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(self.device)}

    def set_rng_state(self, state: dict[str, torch.Tensor]) -> None:
        torch.set_rng_state(state["cpu"])
        if "cuda" in state:
            torch.cuda.set_rng_state(state["cuda"], self.device)


class XlaDevice(Device):
    """A TPU core (or, for tests, an XLA CPU device with PJRT_DEVICE=CPU) through torch_xla.

    Gradients are all-reduced by `xm.optimizer_step`, not by DDP, so `wrap` and `no_sync` are
    no-ops; the process group is torch_xla's own (one process per device under `xmp.spawn`).
    """

    kind = "xla"

    def __init__(self) -> None:
        try:
            import torch_xla
            import torch_xla.core.xla_model as xm
            import torch_xla.runtime as xr
        except ImportError as exc:
            raise TrainingError(
                f"--device tpu needs torch_xla, which is not importable here ({exc}); it pins its own torch, "
                "so install it in a separate environment (see scripts/test-tpu.sh)"
            ) from None
        os.environ.setdefault("PJRT_DEVICE", "TPU")
        self._xm = xm
        self._xr = xr
        self.device = torch_xla.device()
        self.rank = xr.global_ordinal()
        self.world_size = xr.world_size()
        self.local_rank = xr.local_ordinal()

    def init_process_group(self) -> None:
        """torch_xla's runtime is the process group; nothing to initialise."""

    def shutdown(self) -> None:
        """Nothing to tear down."""

    def barrier(self) -> None:
        if self.distributed:
            self._xm.rendezvous("bertvault-barrier")

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            return self._xm.all_reduce(self._xm.REDUCE_SUM, tensor)
        return tensor

    def all_gather_object(self, obj):
        if not self.distributed:
            return [obj]
        import pickle

        # Python objects travel as byte tensors; XLA collectives need equal shapes, so pad first.
        # The bytes are this job's own, sent between its ranks (as torch.distributed's
        # all_gather_object does with pickle too); nothing read from a file or a peer outside the job.
        data = torch.tensor(list(pickle.dumps(obj)), dtype=torch.uint8)
        sizes = self._xm.all_gather(torch.tensor([data.numel()], device=self.device)).cpu().tolist()
        padded = torch.zeros(max(sizes), dtype=torch.uint8)
        padded[: data.numel()] = data
        gathered = self._xm.all_gather(padded.to(self.device)).cpu().view(self.world_size, -1)
        return [pickle.loads(bytes(row[:n].tolist())) for row, n in zip(gathered, sizes, strict=True)]

    def broadcast_object(self, obj):
        return self.all_gather_object(obj)[0]

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        return module

    def no_sync(self, module: torch.nn.Module) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def resolve_precision(self, precision: str) -> str:
        if precision in ("auto", "bf16"):
            return "bf16"
        if precision == "fp16":
            raise TrainingError("--precision fp16 is not supported on TPU; use bf16 (the default) or fp32")
        return precision

    def autocast(self, precision: str) -> contextlib.AbstractContextManager:
        if precision == "bf16":
            return torch.autocast("xla", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def fused_optimizer(self) -> bool:
        return False

    def optimizer_step(self, optimizer: torch.optim.Optimizer, scaler=None) -> None:
        self._xm.optimizer_step(optimizer)  # all-reduces the gradients across replicas, then steps

    def mark_step(self) -> None:
        import torch_xla

        sync = getattr(torch_xla, "sync", None)  # torch_xla >= 2.6; mark_step before
        sync() if sync is not None else self._xm.mark_step()

    def synchronize(self) -> None:
        self._xm.wait_device_ops()

    def name(self) -> str:
        return f"xla:{self._xr.device_type()}"

    def peak_flops(self, precision: str) -> float | None:
        version = os.environ.get("TPU_ACCELERATOR_TYPE", "").split("-")[0]
        return TPU_PEAK_FLOPS.get(version)

    def rng_state(self) -> dict[str, torch.Tensor]:
        seed = int(self._xm.get_rng_state())  # an unsigned 64-bit value: kept as two 32-bit halves
        return {"cpu": torch.get_rng_state(), "xla": torch.tensor([seed >> 32, seed & 0xFFFFFFFF])}

    def set_rng_state(self, state: dict[str, torch.Tensor]) -> None:
        torch.set_rng_state(state["cpu"])
        if "xla" in state:
            high, low = (int(v) for v in state["xla"])
            self._xm.set_rng_state((high << 32) | low)

    def seed(self, seed: int) -> None:
        torch.manual_seed(seed)
        self._xm.set_rng_state(seed)


DEVICES: dict[str, type[Device]] = {"cpu": Device, "cuda": CudaDevice, "tpu": XlaDevice}


def pick(name: str) -> Device:
    """`auto`: XLA when torch_xla was asked for through PJRT_DEVICE, else CUDA if visible, else CPU."""
    if name == "auto":
        if os.environ.get("PJRT_DEVICE") == "TPU":
            name = "tpu"
        elif torch.cuda.is_available():
            name = "cuda"
        else:
            name = "cpu"
    if name not in DEVICES:
        raise TrainingError(f"--device must be one of auto, {', '.join(DEVICES)}, got {name!r}")
    return DEVICES[name]()


@contextlib.contextmanager
def out_of_memory_hint(what: str) -> Iterator[None]:
    """Turns an out-of-memory error into one line that says which settings to lower."""
    try:
        yield
    except torch.OutOfMemoryError:
        raise TrainingError(
            f"{what} does not fit in device memory; lower --batch-size (raise --grad-accum to keep the "
            "global batch), lower --seq-len, or use --precision bf16"
        ) from None
    except RuntimeError as exc:
        text = str(exc)
        if "out of memory" in text.lower() or "RESOURCE_EXHAUSTED" in text or "DefaultCPUAllocator" in text:
            raise TrainingError(
                f"{what} does not fit in memory ({text.splitlines()[0][:160]}); lower --batch-size (raise "
                "--grad-accum to keep the global batch), lower --seq-len, or use --precision bf16"
            ) from None
        raise
