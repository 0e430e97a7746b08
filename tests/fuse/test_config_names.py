"""FuseConfig takes its strategy, protocol and classifier names from the registries, not from a closed list."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fuse import config
from fuse.classifiers import CLASSIFIERS, LogReg, create_classifier
from fuse.config import FuseConfig, LogRegConfig, MLPConfig, TrainConfig, TransformerConfig
from fuse.errors import FuseInputError
from fuse.protocols import PROTOCOLS
from fuse.registries import check_builtins
from fuse.strategies import STRATEGIES


@pytest.mark.parametrize(("field", "valid"), [
    ("strategy", "'eeg', 'face', 'eye', 'audio', 'peripheral', 'early', 'late', 'transformer'"),
    ("protocol", "'loso', 'kfold', 'dfew', 'seedv-3fold', 'cross-session', 'fer2013'"),
    ("classifier", "'auto', 'logreg', 'mlp', 'transformer'"),
])
def test_an_unknown_name_is_refused_listing_the_valid_ones(field: str, valid: str) -> None:
    with pytest.raises(FuseInputError) as info:
        FuseConfig(**{field: "bogus"})
    assert str(info.value) == f"{field} 'bogus' is not one of {valid}"


def test_the_light_name_tuples_equal_the_registries() -> None:
    assert sorted(config.STRATEGY_NAMES) == STRATEGIES.names()
    assert sorted(config.PROTOCOL_NAMES) == PROTOCOLS.names()
    assert sorted(config.CLASSIFIER_NAMES) == CLASSIFIERS.names()


def test_a_stale_name_tuple_is_refused_at_import() -> None:
    with pytest.raises(RuntimeError, match="protocol name.s. gone that are not registered"):
        check_builtins(PROTOCOLS, (*config.PROTOCOL_NAMES, "gone"))
    check_builtins(PROTOCOLS, config.PROTOCOL_NAMES)


def test_a_registered_classifier_is_accepted_until_it_is_removed() -> None:
    class Tiny(LogReg):
        name = "tiny-logreg"

    with pytest.raises(FuseInputError, match="classifier 'tiny-logreg' is not one of"):
        FuseConfig(classifier="tiny-logreg")
    CLASSIFIERS.add("tiny-logreg", Tiny)
    try:
        cfg = FuseConfig(classifier="tiny-logreg")
        assert cfg.classifier_name == "tiny-logreg"
        assert "tiny-logreg" in config.known_names("classifier")
        assert isinstance(create_classifier(cfg.classifier_name, 3, cfg, seed=0), Tiny)
    finally:
        CLASSIFIERS.remove("tiny-logreg")
    with pytest.raises(FuseInputError, match="not one of"):
        FuseConfig(classifier="tiny-logreg")


def test_each_classifier_takes_its_own_config_sections() -> None:
    cfg = FuseConfig(strategy="transformer", logreg=LogRegConfig(C=0.25), mlp=MLPConfig(hidden=7),
                     transformer=TransformerConfig(d_model=8), train=TrainConfig(epochs=3))
    logreg, mlp, transformer = (create_classifier(name, 4, cfg, seed=5) for name in ("logreg", "mlp", "transformer"))
    assert (logreg.cfg, logreg.n_classes, logreg.seed) == (cfg.logreg, 4, 5)
    assert (mlp.cfg, mlp.train_cfg) == (cfg.mlp, cfg.train)
    assert (transformer.cfg, transformer.train_cfg) == (cfg.transformer, cfg.train)


def test_fuse_config_imports_neither_torch_nor_sklearn() -> None:
    code = ("import sys, fuse.config as c; c.FuseConfig(strategy='late', protocol='kfold', classifier='mlp'); "
            "print(sorted(m for m in ('torch', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
