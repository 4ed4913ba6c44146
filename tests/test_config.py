"""Config dataclass <-> dict/JSON round trip."""
from __future__ import annotations

import dataclasses
import json

import pytest

from dynrep.config import config_from_dict, config_to_dict
from dynrep.models.rotation import RotationModel
from dynrep.models.vae import VAE


@pytest.mark.parametrize("cls", [RotationModel.Config, VAE.Config])
def test_round_trip_restores_tuples(cls):
    config = cls(latent_dim=3, channels=(4, 8), mlp_hidden=(7, 5))
    as_dict = config_to_dict(config)
    assert as_dict["channels"] == [4, 8] and as_dict["mlp_hidden"] == [7, 5]
    json.dumps(as_dict)  # plain JSON
    back = config_from_dict(cls, json.loads(json.dumps(as_dict)))
    assert back == config
    assert isinstance(back.channels, tuple) and isinstance(back.mlp_hidden, tuple)


def test_config_from_dict_defaults_and_unknown_keys():
    config = config_from_dict(RotationModel.Config, {"latent_dim": 6})
    assert config.latent_dim == 6 and config.batch_size == RotationModel.Config().batch_size
    with pytest.raises(ValueError, match=r"unknown widget option\(s\) \['colour', 'zeta'\]; allowed: \[.*'latent_dim'"):
        config_from_dict(RotationModel.Config, {"zeta": 1, "colour": 2}, what="widget")


def test_config_from_dict_validates_values():
    with pytest.raises(ValueError, match="latent_dim must be >= 2"):
        config_from_dict(RotationModel.Config, {"latent_dim": 1})


def test_config_to_dict_covers_every_field():
    config = VAE.Config()
    assert set(config_to_dict(config)) == {f.name for f in dataclasses.fields(config)}


@pytest.mark.parametrize("key,value,expected", [
    ("reg_weight", "abc", "float"), ("reg_weight", [1], "float"), ("reg_weight", True, "float"),
    ("latent_dim", 2.5, "int"), ("latent_dim", None, "int"),
    ("channels", 5, r"tuple\[int, \.\.\.\]"), ("channels", [4, "8"], r"tuple\[int, \.\.\.\]"),
    ("lr_angles", "fast", r"float \| None"), ("architecture", [1], r"str \| None"),
])
def test_config_from_dict_checks_types(key, value, expected):
    """A value of the wrong type (``--set reg_weight=abc``) is a ValueError naming the option, its type and the
    value, not a TypeError deep in a comparison."""
    with pytest.raises(ValueError, match=rf"'rotation' model option {key} must be of type {expected}, got "):
        config_from_dict(RotationModel.Config, {key: value}, what="'rotation' model")


def test_config_from_dict_accepts_json_forms():
    config = config_from_dict(RotationModel.Config, {"reg_weight": 1, "lr_angles": None, "channels": [4, 8]})
    assert config.reg_weight == 1 and config.lr_angles is None and config.channels == (4, 8)
