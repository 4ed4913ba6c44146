"""Checkpoint directories: round trip, exact resume, corruption, crashes while saving."""
from __future__ import annotations

import hashlib
import json
import pathlib

import numpy as np
import pytest
import torch

import dynrep
from conftest import assert_same_params, params_of
from dynrep import RepresentationLearner
from dynrep.training import CheckpointError, load_checkpoint, save_checkpoint
from dynrep.training import checkpoint as checkpoint_module


def snapshot(directory: pathlib.Path) -> dict[str, bytes]:
    """Every file under ``directory`` (relative path -> bytes)."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def sample_obs(env, n=5):
    return env.sample_trajectories(n, 0, rng=99).obs[:, 0]


# -- learner round trip ----------------------------------------------------------------------
@pytest.mark.parametrize("model", ["rotation", "vae"])
def test_learner_round_trip(make_learner, tmp_path, model):
    learner = make_learner(model)
    learner.train(3, progress=False)
    path = learner.save(tmp_path / "ck")
    assert path == tmp_path / "ck"
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "state.pt"]
    loaded = RepresentationLearner.load(path, device="cpu")
    assert loaded.step == 3
    assert loaded.history == learner.history
    assert loaded.seed == learner.seed
    assert loaded.model.config == learner.model.config
    assert loaded.env.get_config() == learner.env.get_config()
    assert_same_params(params_of(learner.model), params_of(loaded.model))
    obs = sample_obs(learner.env)
    assert torch.equal(loaded.encode(obs), learner.encode(obs))
    assert loaded.evaluate((), num_episodes=4, episode_length=2, prediction_steps=(1, 2)) == \
        learner.evaluate((), num_episodes=4, episode_length=2, prediction_steps=(1, 2))
    # Optimiser moments restored too.
    a, b = learner.trainer.optimizer.state_dict(), loaded.trainer.optimizer.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for k in a["state"]:
        for name, value in a["state"][k].items():
            assert torch.equal(value, b["state"][k][name]), (k, name)


@pytest.mark.parametrize("model,overrides", [
    ("rotation", {}),
    # A warm-up schedule that spans the interruption, and action magnitudes in the data stream.
    ("rotation", {"reg_warmup_steps": 8, "reg_weight": 0.5, "max_action_magnitude": 2}),
    ("vae", {}),  # draws sampling noise from the trainer's torch generator
])
def test_exact_resume(make_learner, tmp_path, model, overrides):
    straight = make_learner(model, seed=3, **overrides)
    straight.train(12, progress=False)

    first = make_learner(model, seed=3, **overrides)
    first.train(6, progress=False)
    first.save(tmp_path / "ck")
    resumed = RepresentationLearner.load(tmp_path / "ck", device="cpu")
    resumed.train(6, progress=False)

    assert resumed.step == 12
    assert resumed.history == straight.history  # exact float equality, every term, every step
    assert_same_params(params_of(straight.model), params_of(resumed.model))


def test_resume_with_time_limit_checkpoint_continues_exactly(make_learner, tmp_path):
    straight = make_learner("rotation", seed=5)
    straight.train(5, progress=False)
    part = make_learner("rotation", seed=5)
    part.train(3, progress=False, checkpoint_dir=tmp_path / "ck", checkpoint_every=2)
    resumed = RepresentationLearner.load(tmp_path / "ck", device="cpu")
    assert resumed.step == 3
    resumed.train(2, progress=False)
    assert resumed.history == straight.history


def test_state_loads_with_weights_only(make_learner, tmp_path):
    learner = make_learner("rotation")
    learner.train(2, progress=False)
    learner.save(tmp_path / "ck")
    state = torch.load(tmp_path / "ck" / "state.pt", weights_only=True)
    assert set(state) == {"model", "optimizer", "step", "numpy_rng", "torch_rng", "history"}
    assert state["step"] == 2
    assert torch.equal(state["model"]["angles"], learner.model.angles.detach())


def test_config_json_contents(make_learner, tmp_path):
    learner = make_learner("vae", seed=7)
    learner.train(1, progress=False)
    learner.save(tmp_path / "ck")
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert config["dynrep_version"] == dynrep.__version__
    assert config["seed"] == 7 and config["step"] == 1
    assert config["env"] == {"name": "gridworld", "config": learner.env.get_config()}
    assert config["model"]["name"] == "vae"
    assert config["model"]["config"]["latent_dim"] == learner.model.config.latent_dim
    assert config["model"]["config"]["channels"] == list(learner.model.config.channels)
    digest = hashlib.sha256((tmp_path / "ck" / "state.pt").read_bytes()).hexdigest()
    assert config["state_sha256"] == digest


def test_save_overwrites_previous_checkpoint_without_leftovers(make_learner, tmp_path):
    learner = make_learner("rotation")
    learner.save(tmp_path / "ck")
    learner.train(2, progress=False)
    learner.save(tmp_path / "ck")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    assert load_checkpoint(tmp_path / "ck")[0]["step"] == 2


# -- bad checkpoints -------------------------------------------------------------------------
def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*nothing.*config\.json and state\.pt"):
        RepresentationLearner.load(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_incomplete_checkpoint(make_learner, tmp_path):
    make_learner("rotation").save(tmp_path / "ck")
    (tmp_path / "ck" / "state.pt").unlink()
    with pytest.raises(CheckpointError, match=r"incomplete: missing \['state.pt'\]"):
        RepresentationLearner.load(tmp_path / "ck")


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupted_state_is_detected_and_nothing_is_overwritten(make_learner, tmp_path, damage):
    make_learner("rotation").save(tmp_path / "ck")
    state = tmp_path / "ck" / "state.pt"
    data = bytearray(state.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    state.write_bytes(bytes(data))
    before = snapshot(tmp_path)
    with pytest.raises(CheckpointError, match="checksum"):
        RepresentationLearner.load(tmp_path / "ck")
    assert snapshot(tmp_path) == before


def test_corrupted_config_json(make_learner, tmp_path):
    make_learner("rotation").save(tmp_path / "ck")
    (tmp_path / "ck" / "config.json").write_text("{ not json")
    before = snapshot(tmp_path)
    with pytest.raises(CheckpointError, match="config.json is not valid JSON"):
        RepresentationLearner.load(tmp_path / "ck")
    assert snapshot(tmp_path) == before


def test_config_that_cannot_be_restored(make_learner, tmp_path):
    make_learner("rotation").save(tmp_path / "ck")
    path = tmp_path / "ck" / "config.json"
    config = json.loads(path.read_text())
    config["model"]["config"]["warp_factor"] = 9
    path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"cannot be restored: .*warp_factor"):
        RepresentationLearner.load(tmp_path / "ck")


def test_save_onto_a_file_is_refused(tmp_path):
    target = tmp_path / "ck"
    target.write_text("precious")
    with pytest.raises(CheckpointError, match=r"exists and holds more than a dynrep checkpoint.*refusing"):
        save_checkpoint(target, {"a": 1}, {"x": torch.zeros(2)})
    assert target.read_text() == "precious"


def test_save_never_replaces_a_directory_with_other_files(make_learner, tmp_path):
    target = tmp_path / "results"
    target.mkdir()
    (target / "notes.txt").write_text("precious")
    before = snapshot(tmp_path)
    with pytest.raises(CheckpointError, match="refusing to replace it"):
        make_learner("rotation").save(target)
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_save_into_an_existing_empty_directory(make_learner, tmp_path):
    (tmp_path / "ck").mkdir()
    make_learner("rotation").save(tmp_path / "ck")
    assert load_checkpoint(tmp_path / "ck")[0]["step"] == 0


# -- crashes while saving --------------------------------------------------------------------
def test_crash_while_saving_keeps_the_good_checkpoint(make_learner, tmp_path, monkeypatch):
    learner = make_learner("rotation")
    learner.train(2, progress=False)
    learner.save(tmp_path / "ck")
    good = snapshot(tmp_path / "ck")
    learner.train(2, progress=False)

    real_write = checkpoint_module._fsync_write

    def crash_on_config(path, data):
        if path.name == "config.json":
            raise OSError("disk full")
        real_write(path, data)

    monkeypatch.setattr(checkpoint_module, "_fsync_write", crash_on_config)
    with pytest.raises(OSError, match="disk full"):
        learner.save(tmp_path / "ck")
    assert snapshot(tmp_path / "ck") == good
    loaded = RepresentationLearner.load(tmp_path / "ck", device="cpu")
    assert loaded.step == 2

    # The next successful save replaces it and cleans up the half-written directory.
    monkeypatch.setattr(checkpoint_module, "_fsync_write", real_write)
    learner.save(tmp_path / "ck")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    assert RepresentationLearner.load(tmp_path / "ck", device="cpu").step == 4


def test_unserialisable_config_fails_before_writing(tmp_path):
    save_checkpoint(tmp_path / "ck", {"a": 1}, {"x": torch.ones(3)})
    good = snapshot(tmp_path)
    with pytest.raises(TypeError):
        save_checkpoint(tmp_path / "ck", {"a": object()}, {"x": torch.zeros(3)})
    assert snapshot(tmp_path) == good


def test_load_falls_back_to_previous_after_interrupted_swap(tmp_path):
    """A save interrupted between its two renames leaves only ``.ck.previous``: load reads it."""
    save_checkpoint(tmp_path / "ck", {"a": 1}, {"x": torch.arange(3)})
    (tmp_path / "ck").rename(tmp_path / ".ck.previous")
    config, state = load_checkpoint(tmp_path / "ck")
    assert config["a"] == 1 and torch.equal(state["x"], torch.arange(3))


def test_second_interrupted_save_never_leaves_no_checkpoint(tmp_path, monkeypatch):
    """After an interrupted swap (only ``.ck.previous`` is left, and load reads it), a second save that
    crashes just before its final rename must still leave a loadable checkpoint."""
    save_checkpoint(tmp_path / "ck", {"a": 1}, {"x": torch.arange(3)})
    (tmp_path / "ck").rename(tmp_path / ".ck.previous")  # state after a crash between the two renames
    assert load_checkpoint(tmp_path / "ck")[0]["a"] == 1

    real_rename = pathlib.Path.rename

    def crash_on_final_rename(self, target):
        if self.name == ".ck.writing":
            raise OSError("killed")
        return real_rename(self, target)

    monkeypatch.setattr(pathlib.Path, "rename", crash_on_final_rename)
    with pytest.raises(OSError, match="killed"):
        save_checkpoint(tmp_path / "ck", {"a": 2}, {"x": torch.arange(4)})
    monkeypatch.undo()
    config, _ = load_checkpoint(tmp_path / "ck")  # the good checkpoint (a=1) must still be readable
    assert config["a"] == 1


def test_low_level_round_trip(tmp_path):
    state = {"w": torch.randn(3, 2, generator=torch.Generator().manual_seed(0)), "step": 5, "names": ["a", "b"],
             "rng": np.random.default_rng(0).bit_generator.state}
    save_checkpoint(tmp_path / "deep" / "ck", {"k": [1, 2]}, state)
    config, loaded = load_checkpoint(tmp_path / "deep" / "ck")
    assert config["k"] == [1, 2] and "state_sha256" in config
    assert torch.equal(loaded["w"], state["w"])
    assert loaded["step"] == 5 and loaded["names"] == ["a", "b"] and loaded["rng"] == state["rng"]
