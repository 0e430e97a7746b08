"""CLI help lists registry names from light tuples; each tuple equals its registry, and help stays torch-free."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from extract import names
from extract.backbones import BACKBONES
from extract.face.detectors import DETECTORS
from fuse.config import CLASSIFIER_NAMES, PROTOCOL_NAMES, STRATEGY_NAMES
from fuse.finetune.backbones import FINETUNE_BACKBONES
from fuse.finetune.config import FINETUNE_BACKBONE_NAMES
from pipelines.cli import app

runner = CliRunner()


def test_the_light_tuples_equal_their_registries() -> None:
    assert sorted(names.DETECTOR_NAMES) == DETECTORS.names()
    assert sorted(names.BACKBONE_NAMES) == BACKBONES.names()
    assert sorted(FINETUNE_BACKBONE_NAMES) == FINETUNE_BACKBONES.names()


def help_text(*command: str) -> str:
    result = runner.invoke(app, [*command, "--help"], terminal_width=300)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.replace("│", " ").split())


def test_help_lists_every_registered_name() -> None:
    fuse, extract, finetune = help_text("fuse"), help_text("extract"), help_text("finetune")
    assert all(name in fuse for name in (*STRATEGY_NAMES, *CLASSIFIER_NAMES, *PROTOCOL_NAMES))
    assert ", ".join(PROTOCOL_NAMES) in fuse and ", ".join(PROTOCOL_NAMES) in finetune
    assert ", ".join(names.DETECTOR_NAMES) in extract and ", ".join(names.BACKBONE_NAMES) in extract
    assert ", ".join(FINETUNE_BACKBONE_NAMES) in finetune


def test_help_imports_neither_torch_nor_the_store() -> None:
    code = ("import sys; from typer.testing import CliRunner; from pipelines.cli import app; "
            "CliRunner().invoke(app, ['fuse', '--help']); CliRunner().invoke(app, ['finetune', '--help']); "
            "print(sorted(m for m in ('torch', 'sklearn', 'store') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
