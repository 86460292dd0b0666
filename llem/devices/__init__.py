"""The GPUs a job uses, mapped to NVML devices by UUID.

``resolve_devices`` reads ``CUDA_VISIBLE_DEVICES`` (indices or UUIDs) so that meters count
exactly the GPUs the job can see, never the idle ones beside them. With no GPU the result is
an empty ``DeviceSet`` (a null object), not ``None``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional

from llem.devices.nvml import NvmlUnavailable, nvml_module


@dataclass
class GpuDevice:
    index: int  # NVML index (physical)
    uuid: str
    name: str
    handle: Any = field(repr=False, default=None)
    cuda_index: int = 0  # index as the job's CUDA runtime sees it


@dataclass
class DeviceSet:
    gpus: list[GpuDevice] = field(default_factory=list)
    unavailable_reason: Optional[str] = None
    #: how CUDA_VISIBLE_DEVICES was read, for measurement_methodology
    mapping: dict = field(default_factory=dict)

    def describe(self) -> dict:
        return {"gpus": [{"cuda_index": d.cuda_index, "nvml_index": d.index, "uuid": d.uuid, "name": d.name}
                         for d in self.gpus],
                "unavailable_reason": self.unavailable_reason, **self.mapping}

    def __bool__(self) -> bool:
        return bool(self.gpus)

    def __iter__(self):
        return iter(self.gpus)

    def __len__(self) -> int:
        return len(self.gpus)


def _parse_visible(value: Optional[str]) -> Optional[list[str]]:
    if value is None:
        return None
    value = value.strip()
    if value == "":
        return []
    return [v.strip() for v in value.split(",") if v.strip()]


def resolve_devices(visible: Optional[str] = None, *, use_env: bool = True) -> DeviceSet:
    """The NVML devices behind ``CUDA_VISIBLE_DEVICES`` (or ``visible``), in CUDA order."""
    try:
        nv = nvml_module()
        nv.nvmlInit()
    except NvmlUnavailable as err:
        return DeviceSet(unavailable_reason=str(err))
    except Exception as err:  # NVMLError_LibraryNotFound and friends
        return DeviceSet(unavailable_reason=f"NVML not available: {type(err).__name__}: {err}")
    count = nv.nvmlDeviceGetCount()
    all_devs = []
    for i in range(count):
        h = nv.nvmlDeviceGetHandleByIndex(i)
        uuid = nv.nvmlDeviceGetUUID(h)
        uuid = uuid.decode() if isinstance(uuid, bytes) else uuid
        name = nv.nvmlDeviceGetName(h)
        name = name.decode() if isinstance(name, bytes) else name
        all_devs.append(GpuDevice(index=i, uuid=uuid, name=name, handle=h))
    if visible is None and use_env:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    wanted = _parse_visible(visible)
    if wanted is None:
        chosen = all_devs
    else:
        chosen = []
        for token in wanted:
            match = None
            if token.isdigit():
                i = int(token)
                match = all_devs[i] if i < len(all_devs) else None
            else:
                # UUIDs may be given in full ("GPU-xxxx") or as a unique prefix, as CUDA allows
                cands = [d for d in all_devs if d.uuid == token or d.uuid.startswith(token)
                         or d.uuid.removeprefix("GPU-").startswith(token.removeprefix("GPU-"))]
                match = cands[0] if len(cands) == 1 else None
            if match is None:
                break  # CUDA ignores everything after the first invalid entry
            chosen.append(match)
    # Handles are looked up by UUID: the UUID, not the index, is what names a GPU across
    # CUDA's and NVML's differing orders.
    out = [GpuDevice(index=d.index, uuid=d.uuid, name=d.name, handle=nv.nvmlDeviceGetHandleByUUID(d.uuid),
                     cuda_index=k) for k, d in enumerate(chosen)]
    mapping = {"cuda_visible_devices": visible, "nvml_device_count": count,
               "ignored_gpus": [d.uuid for d in all_devs if d.uuid not in {g.uuid for g in out}]}
    if wanted and any(t.isdigit() for t in wanted) and len({d.name for d in all_devs}) > 1 \
            and os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
        # CUDA's default order is fastest-first, NVML's is PCI bus order: indices agree only
        # on machines with one GPU model, or with CUDA_DEVICE_ORDER=PCI_BUS_ID.
        mapping["warning"] = ("CUDA_VISIBLE_DEVICES gives indices on a machine with mixed GPU models; set "
                              "CUDA_DEVICE_ORDER=PCI_BUS_ID or use UUIDs so CUDA and NVML name the same GPUs")
    if not out:
        return DeviceSet(unavailable_reason="no GPU visible to this job" if all_devs else "NVML found no GPU",
                         mapping=mapping)
    return DeviceSet(gpus=out, mapping=mapping)


def gpus_used_by(config) -> Optional[int]:
    """How many visible GPUs (from CUDA index 0) the job's backend uses; None = all visible."""
    section = getattr(config, config.backend, None)
    tp = getattr(section, "tensor_parallel_size", None)
    pp = getattr(section, "pipeline_parallel_size", None) or 1
    if tp or pp > 1:
        return int(tp or 1) * int(pp)  # vLLM / TensorRT-LLM: one GPU per tensor x pipeline rank
    if getattr(section, "tp_plan", None):
        # transformers tensor parallelism: one process per GPU, tp_size of them or every visible GPU
        tp_size = getattr(section, "tp_size", None)
        return int(tp_size) if tp_size else None
    if getattr(section, "device_map", None) is not None:
        return None  # accelerate may spread the model over every visible GPU
    return 1


def select_for_job(devices: DeviceSet, config) -> DeviceSet:
    """Only the GPUs the job runs on: a single-GPU job on an 8-GPU node counts one GPU, so the
    seven idle ones never enter its energy (with CUDA_VISIBLE_DEVICES unset, all are visible)."""
    if not devices:
        return devices
    dev = config.device
    if dev.startswith("cuda:"):
        k = int(dev.split(":", 1)[1])
        chosen = [d for d in devices if d.cuda_index == k]
        if not chosen:
            return DeviceSet(unavailable_reason=f"device={dev} but only {len(devices)} GPU(s) are visible",
                             mapping=devices.mapping)
    else:
        n = gpus_used_by(config)
        chosen = devices.gpus if n is None else devices.gpus[:n]
    mapping = dict(devices.mapping, job_uses=f"{len(chosen)} of {len(devices)} visible GPU(s)")
    mapping["ignored_gpus"] = list(mapping.get("ignored_gpus", [])) + [d.uuid for d in devices if d not in chosen]
    return DeviceSet(gpus=list(chosen), mapping=mapping)
