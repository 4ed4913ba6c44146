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


def rewrite_config(directory: pathlib.Path, change) -> None:
    """Edit a checkpoint's config.json with ``change(config)`` and re-sign it (config checksum recomputed), as a
    config that some other dynrep wrote consistently would be."""
    path = directory / "config.json"
    config = json.loads(path.read_text())
    change(config)
    config["config_sha256"] = checkpoint_module._config_digest(config)
    path.write_text(json.dumps(config))


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
    rewrite_config(tmp_path / "ck", lambda config: config["model"]["config"].update(warp_factor=9))
    with pytest.raises(CheckpointError, match=r"cannot be restored: .*warp_factor"):
        RepresentationLearner.load(tmp_path / "ck")


def test_save_onto_a_file_is_refused(tmp_path):
    target = tmp_path / "ck"
    target.write_text("precious")
    with pytest.raises(CheckpointError, match=r"ck is a file, not a checkpoint directory"):
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
        if self.name.startswith(".ck.writing-"):
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


# -- what a checkpoint is, and whose ---------------------------------------------------------
def test_a_users_own_config_json_is_never_deleted(make_learner, tmp_path):
    target = tmp_path / "experiment"
    target.mkdir()
    (target / "config.json").write_text('{"learning_rate": 0.1}')
    before = snapshot(tmp_path)
    for attempt in (lambda: make_learner("rotation").save(target),
                    lambda: make_learner("rotation").train(1, progress=False, checkpoint_dir=target)):
        with pytest.raises(CheckpointError, match=r"experiment holds files that are not a dynrep checkpoint "
                                                  r"\(config\.json\); refusing to replace it"):
            attempt()
        assert snapshot(tmp_path) == before


def test_another_runs_checkpoint_is_replaced_only_when_asked(make_learner, tmp_path):
    first = make_learner("rotation")
    first.train(2, progress=False)
    first.save(tmp_path / "ck")
    before = snapshot(tmp_path)
    other = make_learner("vae")
    with pytest.raises(CheckpointError, match=r"ck holds the checkpoint of another run \(model rotation, step 2, "
                                              r"run [0-9a-f]{32}\); pass overwrite=True \(CLI: --overwrite\)"):
        other.save(tmp_path / "ck")
    with pytest.raises(CheckpointError, match="another run"):  # refused before any step is taken
        other.train(3, progress=False, checkpoint_dir=tmp_path / "ck")
    assert other.step == 0 and snapshot(tmp_path) == before
    other.train(1, progress=False, checkpoint_dir=tmp_path / "ck", overwrite=True)
    assert load_checkpoint(tmp_path / "ck")[0]["model"]["name"] == "vae"


def test_a_run_saves_over_its_own_checkpoint_also_after_load(make_learner, tmp_path):
    learner = make_learner("rotation")
    learner.save(tmp_path / "ck")
    learner.train(1, progress=False, checkpoint_dir=tmp_path / "ck")
    resumed = RepresentationLearner.load(tmp_path / "ck", device="cpu")
    assert resumed.run_id == learner.run_id
    resumed.train(1, progress=False, checkpoint_dir=tmp_path / "ck")
    assert load_checkpoint(tmp_path / "ck")[0]["step"] == 2
    assert make_learner("rotation").run_id != learner.run_id


# -- contents verified -----------------------------------------------------------------------
def test_an_edited_config_is_refused(make_learner, tmp_path):
    """A 5x5 GridWorld model must not load silently into a 9x9 world (same network shapes)."""
    make_learner("rotation").save(tmp_path / "ck")
    path = tmp_path / "ck" / "config.json"
    config = json.loads(path.read_text())
    config["env"]["config"]["size"] = 9
    path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"ck: config\.json was changed after saving \(it does not match its "
                                              r"checksum\)"):
        RepresentationLearner.load(tmp_path / "ck")


@pytest.mark.parametrize("version,problem", [
    ("99.0", r"was written by dynrep 99\.0, but this is dynrep 0\.1\.0, which reads checkpoints of dynrep 0\.x "
             r"up to 0\.1\.0"),
    ("0.9.1", r"was written by dynrep 0\.9\.1"),
    (None, r"has dynrep_version None, not a version number"),
    ("banana", r"has dynrep_version 'banana'"),
])
def test_an_incompatible_version_is_refused(make_learner, tmp_path, version, problem):
    make_learner("rotation").save(tmp_path / "ck")
    rewrite_config(tmp_path / "ck", lambda config: config.update(dynrep_version=version))
    with pytest.raises(CheckpointError, match=problem):
        RepresentationLearner.load(tmp_path / "ck")


def test_an_earlier_release_loads(make_learner, tmp_path, monkeypatch):
    make_learner("rotation").save(tmp_path / "ck")
    monkeypatch.setattr(checkpoint_module, "__version__", "0.2.3")
    assert RepresentationLearner.load(tmp_path / "ck").step == 0


@pytest.mark.parametrize("text,kind", [("[]", "list"), ('"ck"', "str"), ("3", "int")])
def test_a_config_that_is_not_an_object(make_learner, tmp_path, text, kind):
    make_learner("rotation").save(tmp_path / "ck")
    (tmp_path / "ck" / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match=rf"ck: config\.json holds a JSON {kind}, not the object"):
        RepresentationLearner.load(tmp_path / "ck")


def resign_state(directory: pathlib.Path, data: bytes) -> None:
    """Replace state.pt with ``data`` and fix both checksums, as a deliberate tamperer would."""
    (directory / "state.pt").write_bytes(data)
    rewrite_config(directory, lambda config: config.update(state_sha256=hashlib.sha256(data).hexdigest()))


def test_a_truncated_state_with_a_fixed_checksum(make_learner, tmp_path):
    make_learner("rotation").save(tmp_path / "ck")
    resign_state(tmp_path / "ck", (tmp_path / "ck" / "state.pt").read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"ck: state\.pt cannot be read \([A-Za-z]+Error: .+\)"):
        RepresentationLearner.load(tmp_path / "ck")


class _Payload:
    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.target),))


def test_a_malicious_pickle_does_not_run(make_learner, tmp_path):
    make_learner("rotation").save(tmp_path / "ck")
    payload = _Payload()
    payload.target = str(tmp_path / "pwned")
    buffer = __import__("io").BytesIO()
    torch.save({"model": payload}, buffer)
    resign_state(tmp_path / "ck", buffer.getvalue())
    with pytest.raises(CheckpointError, match=r"state\.pt cannot be read \(UnpicklingError"):
        RepresentationLearner.load(tmp_path / "ck")
    assert not (tmp_path / "pwned").exists()


def test_a_checkpoint_without_config_checksum_loads_with_a_warning(make_learner, tmp_path):
    make_learner("rotation").save(tmp_path / "ck")
    path = tmp_path / "ck" / "config.json"
    config = json.loads(path.read_text())
    del config["config_sha256"]
    path.write_text(json.dumps(config))
    with pytest.warns(UserWarning, match=r"predates config checksums: its config\.json is not verified"):
        assert RepresentationLearner.load(tmp_path / "ck").step == 0


# -- where a checkpoint can go ---------------------------------------------------------------
def test_a_symlinked_checkpoint_directory_is_saved_through(make_learner, tmp_path):
    (tmp_path / "store").mkdir()
    link = tmp_path / "ck"
    link.symlink_to(tmp_path / "store" / "real", target_is_directory=True)  # dangling until the first save
    learner = make_learner("rotation")
    for _ in range(3):
        learner.train(1, progress=False, checkpoint_dir=link)
    assert link.is_symlink() and (tmp_path / "store" / "real" / "state.pt").is_file()
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["real"]
    # The metrics go beside the name given (dynrep.training.logging.metrics_path), the checkpoint through it.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "ck.metrics.jsonl", "store"]
    assert RepresentationLearner.load(link).step == 3


def test_a_read_only_checkpoint_directory(make_learner, tmp_path, make_read_only):
    learner = make_learner("rotation")
    learner.save(tmp_path / "ck")
    make_read_only(tmp_path / "ck")
    before = snapshot(tmp_path)
    message = r"checkpoint directory .*ck is read-only, so it cannot be replaced: make it writable \(chmod -R u\+w"
    with pytest.raises(CheckpointError, match=message):
        learner.train(2, progress=False, checkpoint_dir=tmp_path / "ck")
    assert learner.step == 0
    with pytest.raises(CheckpointError, match=message):
        learner.save(tmp_path / "ck")
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # nothing left to block the next save
    assert RepresentationLearner.load(tmp_path / "ck").step == 0


def test_a_read_only_filesystem(make_learner, tmp_path, mount_read_only):
    (tmp_path / "disk").mkdir()
    learner = make_learner("rotation")
    learner.save(tmp_path / "disk" / "ck")
    mount_read_only(tmp_path / "disk")
    for target in (tmp_path / "disk" / "new", tmp_path / "disk" / "deeper" / "new"):
        with pytest.raises(CheckpointError, match=r"cannot write a checkpoint at .*new: Read-only file system"):
            learner.train(2, progress=False, checkpoint_dir=target)
    assert learner.step == 0
    assert RepresentationLearner.load(tmp_path / "disk" / "ck").step == 0  # readers need no write access


def test_not_enough_space_is_found_before_training(make_learner, tiny_disk):
    learner = make_learner("rotation", channels=(64, 64), hidden=256)  # ~10 MiB with Adam: more than the disk
    with pytest.raises(CheckpointError, match=r"not enough space for a checkpoint at .*ck: it needs about "
                                              r"[0-9.]+ MiB and 0\.[0-9] MiB are free there"):
        learner.train(2, progress=False, checkpoint_dir=tiny_disk / "ck")
    assert learner.step == 0


def test_a_full_disk_keeps_the_previous_checkpoint(tiny_disk):
    save_checkpoint(tiny_disk / "ck", {"a": 1}, {"x": torch.zeros(1000)})
    with pytest.raises(OSError, match="No space left on device"):
        save_checkpoint(tiny_disk / "ck", {"a": 2}, {"x": torch.zeros(100_000)})  # 400 KB on a 256 KiB disk
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["ck"]
    config, state = load_checkpoint(tiny_disk / "ck")
    assert config["a"] == 1 and state["x"].shape == (1000,)
    save_checkpoint(tiny_disk / "ck", {"a": 3}, {"x": torch.ones(1000)})  # and the disk is usable again
    assert load_checkpoint(tiny_disk / "ck")[0]["a"] == 3


# -- weights as safetensors ------------------------------------------------------------------
def test_safetensors_weights_beside_the_config(make_learner, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file
    learner = make_learner("rotation")
    learner.train(3, progress=False, checkpoint_dir=tmp_path / "ck", safetensors=True)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json", "model.safetensors", "state.pt"]
    weights = load_file(tmp_path / "ck" / "model.safetensors")  # no dynrep needed to read them
    state = learner.model.state_dict()
    assert weights.keys() == state.keys() and all(torch.equal(weights[k], state[k]) for k in state)
    with safe_open(tmp_path / "ck" / "model.safetensors", "pt") as f:
        meta = json.loads(f.metadata()["model"])
    assert meta["name"] == "rotation" and meta["config"]["latent_dim"] == learner.model.config.latent_dim
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert config["weights_sha256"] == hashlib.sha256((tmp_path / "ck" / "model.safetensors").read_bytes()).hexdigest()
    assert_same_params(params_of(RepresentationLearner.load(tmp_path / "ck", device="cpu").model), state)
    learner.save(tmp_path / "ck")  # a save without safetensors replaces the whole checkpoint: no stale weights
    assert not (tmp_path / "ck" / "model.safetensors").exists()
    RepresentationLearner.load(tmp_path / "ck", device="cpu")


def test_tampered_or_missing_safetensors_are_refused(make_learner, tmp_path):
    learner = make_learner("rotation")
    learner.save(tmp_path / "ck", safetensors=True)
    weights = tmp_path / "ck" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors is changed or corrupted: it does not match the "
                                              "checksum in config.json"):
        RepresentationLearner.load(tmp_path / "ck", device="cpu")
    weights.unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        RepresentationLearner.load(tmp_path / "ck", device="cpu")
    # the checksum itself is covered by the config's: editing it is a changed config
    learner.save(tmp_path / "ck2", safetensors=True)
    path = tmp_path / "ck2" / "config.json"
    path.write_text(path.read_text().replace('"weights_sha256": "', '"weights_sha256": "0'))
    with pytest.raises(CheckpointError, match="was changed after saving"):
        RepresentationLearner.load(tmp_path / "ck2", device="cpu")


def test_safetensors_needs_a_checkpoint_dir_and_the_package(make_learner, tmp_path, monkeypatch):
    learner = make_learner("rotation")
    with pytest.raises(ValueError, match="^safetensors needs checkpoint_dir$"):
        learner.train(1, progress=False, safetensors=True)
    monkeypatch.setitem(__import__("sys").modules, "safetensors.torch", None)
    with pytest.raises(ImportError, match=r"pip install dynrep\[safetensors\]"):
        learner.train(1, progress=False, checkpoint_dir=tmp_path / "ck", safetensors=True)
    assert learner.step == 0 and not (tmp_path / "ck").exists()  # refused before the first step
