"""Config dataclass <-> dict/JSON round trip."""
from __future__ import annotations

import dataclasses
import json

import pytest

from dynrep.config import config_from_dict, config_to_dict, write_json_atomic
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


def test_write_json_atomic(tmp_path):
    path = tmp_path / "out.json"
    write_json_atomic(path, {"b": [1, 2], "a": "x"})
    assert json.loads(path.read_text()) == {"a": "x", "b": [1, 2]}
    write_json_atomic(path, {"c": 3})
    assert json.loads(path.read_text()) == {"c": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # no temporary file left


def test_write_json_atomic_failure_keeps_old_file(tmp_path):
    path = tmp_path / "out.json"
    write_json_atomic(path, {"ok": True})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": True}
