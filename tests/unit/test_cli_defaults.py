"""`rosetta mine` with the default encoders leaves out those without shipped weights."""

from __future__ import annotations

import argparse

import pytest

from flows.cli_mine import _default_encoders
from rosetta_core.run.mining import DEFAULT_ENCODERS
from rosetta_core.zoo import get_spec

pytestmark = pytest.mark.unit


def _shipped(name: str) -> bool:
    path = get_spec(name).weights_file
    return path is not None and path.is_file()


def test_default_encoders_without_weights_are_left_out_with_a_note(capsys):
    args = argparse.Namespace(encoders=",".join(DEFAULT_ENCODERS), weights="trained")
    _default_encoders(args)
    kept = args.encoders.split(",")
    assert kept == [n for n in DEFAULT_ENCODERS if _shipped(n)]
    missing = [n for n in DEFAULT_ENCODERS if not _shipped(n)]
    if missing:
        assert f"note: {', '.join(missing)} ships no trained weights yet" in capsys.readouterr().out


@pytest.mark.parametrize("encoders, weights", [("mini-resnet.ssl,mini-vit.mae", "trained"),
                                               (",".join(DEFAULT_ENCODERS), "random")])
def test_an_explicit_list_or_random_weights_are_left_alone(encoders, weights, capsys):
    args = argparse.Namespace(encoders=encoders, weights=weights)
    _default_encoders(args)
    assert args.encoders == encoders and capsys.readouterr().out == ""
