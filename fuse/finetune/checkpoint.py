"""Resumable training state in safetensors (tensors) + JSON (counters, RNG states, scheduler), committed atomically.

A checkpoint folder holds, per committed epoch N, ``model-N.safetensors`` (the weights after epoch N),
``optim-N.safetensors`` (the optimiser's and RNGs' tensors), ``best-M.safetensors`` (the best-validation weights so
far, from epoch M) and ``state.json`` (epoch, early-stopping counters, scheduler/scaler/optimiser scalars, RNG
states, the config's training fingerprint, the names of those three files), which is replaced last: a checkpoint
counts only once its ``state.json`` names it. A run killed at any point (even while writing) leaves the previous
epoch's files and ``state.json`` intact; files no ``state.json`` names are removed after each commit. Nothing is
unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

STATE = "state.json"


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def save_weights(model: torch.nn.Module, path: Path) -> None:
    """The model's state dict as safetensors (atomically)."""
    _atomic_save(dict(model.state_dict()), Path(path))


def load_weights(model: torch.nn.Module, path: Path) -> None:
    model.load_state_dict(load_file(str(path)))


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split the optimiser state into tensors (``state.<param>.<key>``) and JSON-able rest."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, st in sd["state"].items():
        for key, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{key}"] = value
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                      rest: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    for name, value in rest["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": rest["param_groups"]})


def epoch_file(kind: str, epoch: int) -> str:
    """``model-0003.safetensors``: the file of ``kind`` (model, optim, best) written after ``epoch``."""
    return f"{kind}-{int(epoch):04d}.safetensors"


def save_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    state: dict[str, Any], rng_tensors: dict[str, torch.Tensor], best_file: str | None) -> None:
    """Epoch ``state["epoch"]``'s weights, optimiser and RNG tensors in new files, then ``state.json`` naming them
    (and ``best_file``) replaces the old one (the commit); then the files of earlier epochs go."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {"model": epoch_file("model", state["epoch"]), "optim": epoch_file("optim", state["epoch"]),
             "best": best_file}
    save_weights(model, folder / files["model"])
    tensors, rest = optimizer_tensors(optimizer)
    _atomic_save({**tensors, **{f"rng.{k}": v for k, v in rng_tensors.items()}}, folder / files["optim"])
    tmp = folder / (STATE + ".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps({**state, "optimizer": rest, "files": files}, default=float))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / STATE)
    keep = {name for name in files.values() if name}
    for path in folder.glob("*.safetensors"):
        if path.name not in keep:
            path.unlink(missing_ok=True)


def read_state(folder: Path) -> dict[str, Any] | None:
    """The committed ``state.json`` of ``folder`` (None when there is none)."""
    path = Path(folder) / STATE
    return json.loads(path.read_text()) if path.is_file() else None


def load_checkpoint(folder: Path, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore weights and optimiser; returns (state, rng tensors)."""
    folder = Path(folder)
    state = read_state(folder)
    if state is None:
        raise FileNotFoundError(f"{folder}: no {STATE}")
    load_weights(model, folder / state["files"]["model"])
    tensors = load_file(str(folder / state["files"]["optim"]))
    rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}
    restore_optimizer(optimizer, {k: v for k, v in tensors.items() if not k.startswith("rng.")}, state["optimizer"])
    return state, rng
