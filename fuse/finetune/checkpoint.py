"""Resumable training state in safetensors (tensors) + JSON (counters, RNG states, scheduler), published atomically.

A checkpoint folder holds ``model.safetensors`` (the weights after the last finished epoch), ``optim.safetensors``
(the optimiser's tensors), ``best.safetensors`` (the best-validation weights so far) and ``state.json`` (epoch,
early-stopping counters, scheduler/scaler/optimiser scalars, RNG states, the config's training fingerprint), which
is written last: a checkpoint counts only once its ``state.json`` is in place. Nothing is unpickled.
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


def save_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    state: dict[str, Any], rng_tensors: dict[str, torch.Tensor]) -> None:
    """Weights, optimiser and RNG tensors, then ``state.json`` last (the commit)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_weights(model, folder / "model.safetensors")
    tensors, rest = optimizer_tensors(optimizer)
    _atomic_save({**tensors, **{f"rng.{k}": v for k, v in rng_tensors.items()}}, folder / "optim.safetensors")
    tmp = folder / (STATE + ".tmp")
    tmp.write_text(json.dumps({**state, "optimizer": rest}, default=float))
    os.replace(tmp, folder / STATE)


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
    load_weights(model, folder / "model.safetensors")
    tensors = load_file(str(folder / "optim.safetensors"))
    rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}
    restore_optimizer(optimizer, {k: v for k, v in tensors.items() if not k.startswith("rng.")}, state["optimizer"])
    return state, rng
