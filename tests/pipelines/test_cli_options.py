"""CLI options are declared once (pipelines/commands/options.py): each table row's config field must exist."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from pathlib import Path

import pytest
import typer

from pipelines.commands.options import Opt, build_overrides, with_options


def _field_type(cls: type, path: str) -> object:
    """The type of the dotted field ``path`` of dataclass ``cls``; KeyError when a step is not a field."""
    for step in path.split("."):
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        if step not in names:
            raise KeyError(f"{cls.__name__} has no field {step!r}")
        cls = hints[step]
    return cls


def _tables() -> list[tuple[str, list[Opt], type]]:
    from fuse.config import FuseConfig
    from fuse.finetune.config import FinetuneConfig
    from pipelines.commands.extract import EXTRACT_OPTIONS
    from pipelines.commands.finetune import FINETUNE_OPTIONS
    from pipelines.commands.fuse import FUSE_OPTIONS
    from pipelines.jobs.config import ExtractConfig

    return [("fuse", FUSE_OPTIONS, FuseConfig), ("extract", EXTRACT_OPTIONS, ExtractConfig),
            ("finetune", FINETUNE_OPTIONS, FinetuneConfig)]


@pytest.mark.parametrize("index", range(3), ids=["fuse", "extract", "finetune"])
def test_every_option_sets_an_existing_config_field(index: int) -> None:
    name, table, cls = _tables()[index]
    paths = [path for opt in table for path, _ in opt.fields()]
    assert paths, name
    for path in paths:
        _field_type(cls, path)  # raises on a misspelt or removed field
    assert len(paths) == len(set(paths)), f"{name}: two options set the same field"


def test_finetune_options_cover_every_config_field_the_command_sets() -> None:
    from fuse.finetune.config import FinetuneConfig
    from pipelines.commands.finetune import FINETUNE_OPTIONS

    values = {o.name: o.default for o in FINETUNE_OPTIONS}
    values.update(store="s.zarr", out=None)
    kw = build_overrides(FINETUNE_OPTIONS, values)
    assert kw["store"] == "s.zarr" and kw["out"] == "" and kw["loss"] == "ce" and kw["class_weighted"] is True
    FinetuneConfig(**kw)  # every keyword is a field


def test_overrides_nest_dotted_paths_convert_and_leave_out_unset() -> None:
    table = [Opt("late_combine", str | None, typer.Option("--late-combine"), to="late.combine"),
             Opt("k", int | None, typer.Option("--k")),
             Opt("above", bool, typer.Option("--above"), False, to="side", convert=lambda v: ">" if v else None),
             Opt("overwrite", bool, typer.Option("--overwrite"), False, cli_only=True)]
    got = build_overrides(table, {"late_combine": "tuned", "k": None, "above": True, "overwrite": True})
    assert got == {"late": {"combine": "tuned"}, "side": ">"}
    assert build_overrides(table, {"late_combine": None, "k": 3, "above": False, "overwrite": False}) == {"k": 3}


def test_with_options_gives_typer_the_table_as_signature() -> None:
    table = [Opt("k", int | None, typer.Option("--k", help="folds")), Opt("seed", int, typer.Option("--seed"), 7)]

    @with_options(table)
    def command(**opts: object) -> None:
        """Doc."""
        print(opts["k"], opts["seed"])

    params = inspect.signature(command).parameters
    assert list(params) == ["k", "seed"] and params["seed"].default == 7
    app = typer.Typer()
    app.command()(command)
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["--k", "3"])
    assert result.exit_code == 0 and result.output.strip() == "3 7"


def test_face_eeg_and_audio_options_declare_every_extractor_option() -> None:
    from pipelines.jobs.config import (
        AudioOptions,
        EegOptions,
        FaceOptions,
        audio_option_schema,
        eeg_option_schema,
        face_option_schema,
    )

    for cls, schema in ((FaceOptions, face_option_schema({"detector": "mtcnn"})), (EegOptions, eeg_option_schema({})),
                        (AudioOptions, audio_option_schema({}))):
        hints = typing.get_type_hints(cls)
        assert set(hints) == set(schema), cls.__name__  # neither misses nor invents an option
        for name, tp in schema.items():
            if typing.get_origin(tp) is typing.Literal:  # the schema checks the choices
                assert hints[name] is str, name
            elif dataclasses.is_dataclass(tp):  # a nested config (TrackConfig) as its fields
                assert hints[name] == dict[str, typing.Any], name
            else:
                assert hints[name] == tp, name
    assert set(face_option_schema({"detector": "none"})) <= set(typing.get_type_hints(FaceOptions))


def test_only_the_set_options_reach_the_extractor_and_the_dumped_config(tmp_path: Path) -> None:
    from pipelines.config import parse_overrides, to_dict
    from pipelines.jobs.config import EegOptions, ExtractConfig, FaceOptions, load_extract_config
    from pipelines.jobs.plan import extractor_recipe

    sets = ["face_options.min_score=1", "face_options.detector_batch_cpu=null", "eeg_options.channels=Fp1,AF3"]
    cfg = load_extract_config(None, {"dataset": "deap", "root": str(tmp_path), **parse_overrides(sets)})
    assert isinstance(cfg.face_options, FaceOptions) and isinstance(cfg.eeg_options, EegOptions)
    assert cfg.face_options.min_score == 1.0 and isinstance(cfg.face_options.min_score, float)
    assert cfg.face_options.given() == {"min_score": 1.0, "detector_batch_cpu": None}  # null is set, not unset
    assert cfg.eeg_options.channels == ("Fp1", "AF3")
    face = extractor_recipe("face", cfg).options()
    assert face["min_score"] == 1.0 and face["detector_batch_cpu"] is None and "margin" not in face
    assert extractor_recipe("eeg", cfg).options()["channels"] == ["Fp1", "AF3"]
    dumped = to_dict(cfg)
    assert dumped["face_options"] == {"min_score": 1.0, "detector_batch_cpu": None}
    assert dumped["eeg_options"] == {"channels": ["Fp1", "AF3"]}
    plain = ExtractConfig(dataset="deap", face_options={"keyframe_s": 0.3})  # a mapping still works in code
    assert plain.face_options == FaceOptions(keyframe_s=0.3) and not plain.eeg_options
    assert "filter_mode" not in extractor_recipe("eeg", plain).options()
