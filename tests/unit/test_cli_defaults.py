"""One configuration with one set of defaults: the CLI's, the flow's and the core's agree, and
the default run needs only weights that ship."""

from __future__ import annotations

import dataclasses

import pytest

from flows.cli import build_parser
from flows.cli_models import config_from_args
from rosetta_core.run import DEFAULT_ENCODERS, MineConfig
from rosetta_core.run.models import check_models
from rosetta_core.zoo import get_spec

pytestmark = pytest.mark.unit


def test_the_default_encoders_all_ship_weights():
    assert DEFAULT_ENCODERS and all(get_spec(name).has_weights for name in DEFAULT_ENCODERS)
    check_models(MineConfig())  # the default configuration passes the flow's model checks


def test_the_command_line_defaults_are_the_configurations():
    args = build_parser().parse_args(["mine"])
    assert config_from_args(args) == MineConfig()
    plan = config_from_args(build_parser().parse_args(["plan"]))
    shared = ("generator", "encoders", "n", "chunk_size", "dtype", "weights", "layers")
    assert {f: getattr(plan, f) for f in shared} == {f: getattr(MineConfig(), f) for f in shared}


def test_lists_from_json_compare_equal_to_tuples():
    asked = MineConfig(encoders=["mini-vit.mae"], layers={"mini-gen": ["block1"]})
    assert asked == MineConfig(encoders=("mini-vit.mae",), layers={"mini-gen": ("block1",)})
    assert MineConfig.from_identity(asked.identity()) == asked
    assert dataclasses.replace(asked, n=8).n == 8


def test_images_on_the_command_line_make_an_image_run_with_the_same_defaults():
    args = build_parser().parse_args(["mine", "--images", "data/scenes", "--encoders", "mini-vit.mae,mini-clip.rn",
                                      "--anchor", "mini-clip.rn"])
    config = config_from_args(args)
    assert config == MineConfig(images="data/scenes", encoders=("mini-vit.mae", "mini-clip.rn"), anchor="mini-clip.rn")
    assert (config.generator, config.n, config.anchor_model, config.others) == (None, None, "mini-clip.rn", ("mini-vit.mae",))
    both = config_from_args(build_parser().parse_args(["mine", "--images", "x", "--generator", "mini-gen"]))
    with pytest.raises(ValueError, match="were both given"):
        both.validate()
