"""Fine-tuning on a crop store: beats a frozen head on a planted signal without leakage, resumes, freezes exactly."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from fuse.finetune import run as ft_run
from fuse.finetune import train as ft_train
from fuse.finetune.checkpoint import read_state
from fuse.finetune.config import FinetuneConfig
from fuse.finetune.data import load_crops
from fuse.finetune.losses import balanced_order, focal_loss
from fuse.finetune.run import build_net, load_finetuned, run_finetune
from fuse.finetune.train import TrainingInterrupted, fit
from fuse.train import torch_threads
from tests.fuse.finetune_fixtures import write_crop_store

FAST = dict(backbone="tiny-resnet", epochs=6, batch_size=16, patience=50, augment=False, device="cpu",
            save_final=False, lr_backbone=3e-3, lr_head=3e-3, dropout=0.0, threads=1)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: the tiny nets are faster so on a shared CI machine (and the tests deterministic)."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def crop_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_crop_store(tmp_path_factory.mktemp("crops") / "crops.zarr", subjects=3, trials=6, frames=4,
                            size=32, strength=25.0)


def test_finetuning_beats_the_frozen_head_without_leakage(crop_store: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[set, set]] = []
    real_split = ft_train.inner_split

    def spy_split(groups: np.ndarray, fraction: float, rng: np.random.Generator):  # type: ignore[no-untyped-def]
        tr, va = real_split(groups, fraction, rng)
        seen.append((set(groups[tr]), set(groups[va])))
        return tr, va

    monkeypatch.setattr(ft_train, "inner_split", spy_split)
    data = load_crops(crop_store)
    accs = {}
    for frozen in (-1, 0):
        seen.clear()
        cfg = FinetuneConfig(store=str(crop_store), frozen_layers=frozen, checkpoint_dir=str(tmp_path / f"c{frozen}"),
                             **FAST)
        res = run_finetune(cfg, write=False, data=data)
        accs[frozen] = res.metrics["per_clip"]["model"]["uar"]
        for (train_items, val_items), (fold, part) in zip(seen, res.predictions.groupby("fold", sort=False), strict=True):
            test_items = set(part["item"])
            assert not test_items & (train_items | val_items), fold  # test trials never trained on nor validated
            assert val_items and not val_items & train_items  # the inner split holds whole trials out
            subj = set(part["subject"])
            assert len(subj) == 1 and not any(i.split("/")[1] in subj for i in train_items | val_items)
    assert accs[0] >= 0.75 and accs[0] >= accs[-1] + 0.2, accs


def _params(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.named_parameters()}


def test_frozen_layers_freezes_exactly_the_stem_and_first_blocks(crop_store: Path, tmp_path: Path) -> None:
    data = load_crops(crop_store)
    y = data.rows["label_emotion"].to_numpy(np.int64) if "label_emotion" in data.rows else None
    assert y is not None
    cfg = FinetuneConfig(store=str(crop_store), backbone="tiny-vit", frozen_layers=1, epochs=1, batch_size=16,
                         device="cpu", lr_backbone=1e-2, lr_head=1e-2, weight_decay=0.1)
    net, frozen = build_net(cfg, 2, seed=0)
    blocks = net.backbone.blocks()
    prefixes = ("backbone.model.embeddings.", "backbone.model.layers.0.", "backbone.model.encoder.layer.0.")
    expect = {name for name, _ in net.named_parameters() if name.startswith(prefixes)}
    assert set(frozen) == expect and len(blocks) == 2 and len(expect) > 10
    before = _params(net)
    fit(net, data.crops, y, data.rows["item"].to_numpy(), 2, cfg, tmp_path / "ck")
    after = _params(net)
    for name in before:
        same = torch.equal(before[name], after[name])
        assert same == (name in expect), name
        assert net.get_parameter(name).requires_grad == (name not in expect)


def test_a_killed_run_resumes_from_its_last_checkpoint(crop_store: Path, tmp_path: Path) -> None:
    data = load_crops(crop_store)
    y = data.rows["label_emotion"].to_numpy(np.int64)
    items = data.rows["item"].to_numpy()
    cfg = FinetuneConfig(store=str(crop_store), frozen_layers=2, **{**FAST, "epochs": 4, "augment": True,
                                                                    "mixup_alpha": 0.4})
    straight, _ = build_net(cfg, 2, seed=3)
    fit(straight, data.crops, y, items, 2, cfg, tmp_path / "straight", seed=3)
    killed, _ = build_net(cfg, 2, seed=3)
    with pytest.raises(TrainingInterrupted):
        fit(killed, data.crops, y, items, 2, cfg, tmp_path / "killed", seed=3, stop_after_epoch=2)
    state = read_state(tmp_path / "killed")
    assert state is not None and state["epoch"] == 2 and state["optimizer"]["param_groups"]
    resumed, _ = build_net(cfg, 2, seed=99)  # a fresh process: other init, everything comes from the checkpoint
    report = fit(resumed, data.crops, y, items, 2, cfg, tmp_path / "killed", seed=3)
    assert report.resumed_from == 2 and report.epochs_run == 4
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name
    files = {p.name for p in (tmp_path / "killed").iterdir()}
    best = read_state(tmp_path / "killed")["files"]["best"]
    assert files == {"model-0004.safetensors", "optim-0004.safetensors", best, "state.json"}


KILLED_RUN = """
import sys, torch
sys.path.insert(0, {root!r})
torch.set_num_threads(1)
from fuse.finetune.config import FinetuneConfig
from fuse.finetune.data import load_crops
from fuse.finetune.run import build_net
from fuse.finetune.train import fit
cfg = FinetuneConfig(**{cfg!r})
data = load_crops(cfg.store)
net, _ = build_net(cfg, 2, seed=3)
fit(net, data.crops, data.rows["label_emotion"].to_numpy(), data.rows["item"].to_numpy(), 2, cfg, {ckpt!r}, seed=3,
    on_epoch=lambda e, loss: print("epoch", e, flush=True))
"""


@pytest.mark.slow
def test_a_sigkilled_process_resumes_from_its_last_committed_epoch(crop_store: Path, tmp_path: Path) -> None:
    """SIGKILL at whatever point the process has reached after epoch 2 (mid-epoch or mid-write): the folder still
    holds a consistent checkpoint, and resuming from it ends where an uninterrupted run ends."""
    fields = {**FAST, "epochs": 4, "augment": True, "frozen_layers": 1, "store": str(crop_store)}
    cfg = FinetuneConfig(**fields)
    data = load_crops(crop_store)
    y, items = data.rows["label_emotion"].to_numpy(np.int64), data.rows["item"].to_numpy()
    ckpt = tmp_path / "killed"
    script = KILLED_RUN.format(root=str(Path(__file__).resolve().parents[2]), cfg=fields, ckpt=str(ckpt))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            if line.strip() == "epoch 2":
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    state = read_state(ckpt)
    assert state is not None and 2 <= state["epoch"] < 4
    for name in state["files"].values():
        assert (ckpt / name).is_file(), name
    resumed, _ = build_net(cfg, 2, seed=99)
    report = fit(resumed, data.crops, y, items, 2, cfg, ckpt, seed=3)
    assert report.resumed_from == state["epoch"] and report.epochs_run == 4
    straight, _ = build_net(cfg, 2, seed=3)
    fit(straight, data.crops, y, items, 2, cfg, tmp_path / "straight", seed=3)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), name


def test_focal_loss_matches_the_reference_formula() -> None:
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(7, 3, generator=g), torch.tensor([0, 1, 2, 2, 1, 0, 2])
    w = torch.tensor([0.5, 1.0, 2.0])
    p = torch.softmax(logits, 1).numpy()[np.arange(7), y.numpy()]
    for gamma in (0.0, 2.0, 3.5):
        per_row = -((1 - p) ** gamma) * np.log(p)
        assert float(focal_loss(logits, y, gamma)) == pytest.approx(per_row.mean(), rel=1e-5)
        wy = w.numpy()[y.numpy()]
        assert float(focal_loss(logits, y, gamma, w)) == pytest.approx((wy * per_row).sum() / wy.sum(), rel=1e-5)
    assert float(focal_loss(logits, y, 0.0, w)) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits, y, weight=w)), rel=1e-5)


def test_weighted_sampler_draws_classes_evenly() -> None:
    y = np.array([0] * 900 + [1] * 90 + [2] * 10)
    order = balanced_order(y, np.arange(len(y)), np.random.default_rng(0))
    counts = np.bincount(y[np.concatenate([order, balanced_order(y, np.arange(1000), np.random.default_rng(1))])])
    assert len(order) == 1000 and np.all(np.abs(counts / counts.sum() - 1 / 3) < 0.04), counts


def test_saved_model_loads_from_safetensors_and_refuses_pickles(crop_store: Path, tmp_path: Path) -> None:
    cfg = FinetuneConfig(store=str(crop_store), protocol="kfold", k=2, out=str(tmp_path / "res"),
                         **{**FAST, "epochs": 1, "save_final": True})
    res = run_finetune(cfg)
    net, info = load_finetuned(res.out)
    assert info["classes"] == ["vertical", "horizontal"] and info["backbone"]["arch"]["family"] == "resnet"
    data = load_crops(crop_store)
    logits = ft_run.predict_logits(net, data.crops[:4], cfg)
    assert logits.shape == (4, 2) and np.isfinite(logits).all()
    with pytest.raises(Exception, match="metrics|--overwrite"):
        run_finetune(cfg)
    bad = tmp_path / "evil.pth"
    torch.save({"x": object()}, bad)
    from fuse.finetune.backbones import load_state_file
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        load_state_file(bad)


def test_a_crash_while_writing_a_checkpoint_leaves_the_previous_one_whole(crop_store: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Epoch 3's weights are written, then the process dies before its optimiser file and state.json: the folder
    still resumes from epoch 2 exactly (the weights file state.json names was not overwritten)."""
    from fuse.finetune import checkpoint

    data = load_crops(crop_store)
    y, items = data.rows["label_emotion"].to_numpy(np.int64), data.rows["item"].to_numpy()
    cfg = FinetuneConfig(store=str(crop_store), frozen_layers=2, **{**FAST, "epochs": 3})
    straight, _ = build_net(cfg, 2, seed=1)
    fit(straight, data.crops, y, items, 2, cfg, tmp_path / "straight", seed=1)
    crashed, _ = build_net(cfg, 2, seed=1)
    with pytest.raises(TrainingInterrupted):
        fit(crashed, data.crops, y, items, 2, cfg, tmp_path / "ck", seed=1, stop_after_epoch=2)
    real_save = checkpoint._atomic_save

    def dies_at_the_optimiser(tensors: dict, path: Path) -> None:
        if path.name.startswith("optim-"):
            raise KeyboardInterrupt("killed while writing")
        real_save(tensors, path)

    monkeypatch.setattr(checkpoint, "_atomic_save", dies_at_the_optimiser)
    with pytest.raises(KeyboardInterrupt):
        fit(crashed, data.crops, y, items, 2, cfg, tmp_path / "ck", seed=1)
    monkeypatch.setattr(checkpoint, "_atomic_save", real_save)
    assert read_state(tmp_path / "ck")["epoch"] == 2
    resumed, _ = build_net(cfg, 2, seed=7)
    report = fit(resumed, data.crops, y, items, 2, cfg, tmp_path / "ck", seed=1)
    assert report.resumed_from == 2 and report.epochs_run == 3
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name
