"""Fine-tuning a vision backbone on a crop store (``face_crops``): the seeds' face-model training workflows.

    cfg = FinetuneConfig(store="cache/dfew/face-crops-...zarr", backbone="resnet50", frozen_layers=8, ...)
    result = run_finetune(cfg)        # splits by the protocol, trains per split, writes a results directory

Modules: ``config`` (FinetuneConfig), ``data`` (crops + rows of a crop store), ``backbones`` (adapters with a
block list for ``frozen_layers``), ``losses`` (class-weighted CE, focal, weighted sampling), ``augment`` (on-device
augmentation, mixup), ``checkpoint`` (safetensors checkpoints, resume), ``train`` (the loop), ``run`` (protocols,
metrics, results). See docs/finetune.md.
"""

from fuse.finetune.config import FinetuneConfig

__all__ = ["FinetuneConfig"]
