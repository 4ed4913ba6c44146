"""Run configs: exact YAML / JSON round trips, every override error, run folders that re-run, and
``dynrep resume`` after a SIGKILL ending bitwise equal to an uninterrupted run."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import TINY_MODEL
from dynrep import RepresentationLearner, cli
from dynrep.runs import (EnvConfig, EvalConfig, ModelConfig, RunConfig, TrainerConfig, apply_overrides,
                         load_run_config, resume, run, save_run_config)
from dynrep.training import CheckpointError, NonFiniteLossError

ENV = {**os.environ, "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}


def tiny_config(steps: int = 4, **trainer) -> RunConfig:
    """The tiny rotation learner of conftest on a 3x3, 16x16 GridWorld; model scores only."""
    return RunConfig(env=EnvConfig("gridworld", {"size": 3, "image_size": 16}),
                     model=ModelConfig("rotation", dict(TINY_MODEL["rotation"])),
                     trainer=TrainerConfig(steps=steps, device="cpu", threads=1, seed=3, **trainer),
                     evaluation=EvalConfig(metrics=[]))


def full_config() -> RunConfig:
    """Every kind of field set away from its default: tuples, floats, None, nested options."""
    return RunConfig(env=EnvConfig("gridworld", {"size": 4, "image_size": 16, "observation": "image"}),
                     model=ModelConfig("rotation", {"latent_dim": 4, "channels": (4, 8), "lr": 1e-3,
                                                    "mlp_hidden": (8,)}),
                     trainer=TrainerConfig(steps=20, time_limit=2.5, checkpoint_every=5, device="cpu", threads=1,
                                           seed=7),
                     evaluation=EvalConfig(metrics=["mig", "dci"], num_train=100, num_test=50,
                                           options={"mig": {"num_bins": 10}}))


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip_is_exact(tmp_path, suffix):
    config = full_config()
    path = save_run_config(config, tmp_path / f"run{suffix}")
    assert load_run_config(path) == config
    save_run_config(load_run_config(path), tmp_path / f"again{suffix}")
    assert (tmp_path / f"again{suffix}").read_text() == path.read_text()
    assert RunConfig() == load_run_config(save_run_config(RunConfig(), tmp_path / f"default{suffix}"))


def test_yaml_reads_exponents_and_partial_files(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model:\n  config:\n    lr: 1e-3\ntrainer:\n  steps: 10\n")
    config = load_run_config(path)
    assert config.model.config == {"lr": 0.001} and config.trainer.steps == 10
    assert config.env == EnvConfig() and config.evaluation == EvalConfig()


def test_overrides_set_dotted_keys_in_order():
    config = apply_overrides(tiny_config(), ["model.config.lr=1e-4", "trainer.steps=2000", "trainer.time_limit=null",
                                             "model.config.channels=[8,8]", "env.args.size=5", "trainer.steps=30",
                                             "evaluation.metrics=[mig]", "evaluation.options.mig={num_bins: 10}",
                                             "evaluation.options.dci.n_jobs=2"])
    assert config.model.config == {**tiny_config().model.config, "lr": 1e-4, "channels": [8, 8]}
    assert (config.trainer.steps, config.env.args["size"], config.evaluation.metrics) == (30, 5, ["mig"])
    assert config.evaluation.options == {"mig": {"num_bins": 10}, "dci": {"n_jobs": 2}}
    assert tiny_config().trainer.steps == 4  # the original is left as it was
    # another model: the previous model's settings are dropped, new ones checked against its Config
    rotation = apply_overrides(tiny_config(), ["model.config.reg_weight=0.5"])
    assert apply_overrides(rotation, ["model.name=vae", "model.config.beta=4"]).model == ModelConfig("vae", {"beta": 4})
    # another environment: its required arguments may come in a later override
    toy = apply_overrides(tiny_config(), ["env.name=toy_nn", "env.args.dataset=action_sparsity_trivial"])
    assert toy.env == EnvConfig("toy_nn", {"dataset": "action_sparsity_trivial"})
    with pytest.raises(ValueError, match="^environment 'toy_nn' needs env.args.dataset=VALUE$"):
        apply_overrides(tiny_config(), ["env.name=toy_nn"])


@pytest.mark.parametrize("override, message", [
    ("optimizer.lr=1", "unknown key 'optimizer.lr' in override 'optimizer.lr=1': a run config has no 'optimizer'; "
                       "allowed: env, model, trainer, evaluation"),
    ("trainer.stepz=5", "unknown key 'trainer.stepz' in override 'trainer.stepz=5': trainer has no 'stepz'; allowed: "
                        "steps, time_limit, checkpoint_every, device, threads, compile, autocast, seed"),
    ("model.config.bta=4", "unknown key 'model.config.bta' in override 'model.config.bta=4': model.config has no "
                           "'bta'; allowed: latent_dim, batch_size,"),
    ("env.args.siz=3", "unknown key 'env.args.siz' in override 'env.args.siz=3': env.args has no 'siz'; allowed: "
                       "size, scales, colours, backgrounds, image_size, observation"),
    ("trainer.steps.x=1", "unknown key 'trainer.steps.x' in override 'trainer.steps.x=1': trainer.steps is a value"),
    ("trainer.steps=many", "override trainer.steps='many': trainer option steps must be of type "),
    ("model.config.channels=4", "override model.config.channels=4: model.config ('rotation' model) option channels "
                                "must be of type"),
    ("trainer.checkpoint_every=0", "override trainer.checkpoint_every=0: trainer.checkpoint_every must be >= 1"),
    ("trainer.autocast=fp16", "override trainer.autocast='fp16': trainer.autocast must be one of (None, 'bf16'), got "
                              "'fp16'"),
    ("trainer.compile=fast", "override trainer.compile='fast': trainer option compile must be of type bool, got "
                             "'fast'"),
    ("evaluation.metrics=mig", "override evaluation.metrics='mig': evaluation option metrics must be of type"),
    ("evaluation.metrics=[mig,migg]", "override evaluation.metrics=['mig', 'migg']: evaluation.metrics: unknown metric "
                                      "'migg'; metrics are "),
    ("evaluation.options.mig.bins=3", "unknown key 'evaluation.options.mig.bins' in override "
                                      "'evaluation.options.mig.bins=3': evaluation.options.mig has no 'bins'; allowed: "
                                      "estimator, num_bins, num_samples"),
    ("evaluation.options.mig=3", "override evaluation.options.mig=3: evaluation.options.mig must map options of "
                                 "metric 'mig' to values; got 3; its options are estimator, num_bins, num_samples"),
    ("evaluation.num_test=0", "override evaluation.num_test=0: evaluation.num_test must be >= 1"),
    ("model.name=rotaton", "override model.name='rotaton': unknown model 'rotaton'; registered models: ["),
    ("env.name=gridwrld", "override env.name='gridwrld': unknown environment 'gridwrld'; registered environments: ["),
    ("trainer.steps", "override 'trainer.steps' is not KEY=VALUE with a dotted KEY (e.g. trainer.steps=2000)"),
    ("=4", "override '=4' is not KEY=VALUE"),
    ("trainer..steps=4", "override 'trainer..steps=4' is not KEY=VALUE"),
    ("model.config.channels=[4, 8", "override model.config.channels: value '[4, 8' is not a YAML value ("),
    ("env.args.image_size=1.5", "override env.args.image_size=1.5: env.args.image_size must be of type int for "
                                "environment 'gridworld', got 1.5"),
    ("env.args.observation=3", "override env.args.observation=3: env.args.observation must be of type str for "
                               "environment 'gridworld', got 3"),
])
def test_override_errors_name_key_value_and_allowed(override, message):
    with pytest.raises(ValueError) as info:
        apply_overrides(tiny_config(), [override])
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_bad_files_are_one_line_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("trainer: [1, 2\n")
    (tmp_path / "b.yaml").write_text("trainer:\n  stepz: 3\n")
    (tmp_path / "c.json").write_text('{"model": {"name": "rotation", "config": {"bta": 1}}}')
    for name, message in [("a.yaml", "is not valid YAML"), ("b.yaml", "unknown trainer option(s) ['stepz']; allowed:"),
                          ("c.json", "unknown model.config ('rotation' model) option(s) ['bta']; allowed:")]:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            load_run_config(tmp_path / name)
    for name, what in [("missing.yaml", "does not exist"), (".", "is a directory")]:
        with pytest.raises(ValueError, match=f"^run config '{tmp_path / name}' {what}: give a YAML or .json run "):
            load_run_config(tmp_path / name)
    (tmp_path / "d.yaml").write_text("env:\n  name: toy_nn\n  args: {dataset: 3}\n")
    with pytest.raises(ValueError, match="^env.args.dataset must be of type str for environment 'toy_nn', got 3$"):
        load_run_config(tmp_path / "d.yaml")


def checkpoint_of(run_dir: Path) -> tuple[dict, RepresentationLearner]:
    config = json.loads((run_dir / "checkpoint" / "config.json").read_text())
    return config, RepresentationLearner.load(run_dir / "checkpoint", device="cpu")


def assert_same_run(a: RepresentationLearner, b: RepresentationLearner) -> None:
    assert a.step == b.step and a.history == b.history
    state = b.model.state_dict()
    for name, value in a.model.state_dict().items():
        assert torch.equal(value, state[name]), name


def test_run_folder_reruns_from_its_run_yaml(tmp_path, one_thread, capsys):
    learner, scores = run(tiny_config(), tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["checkpoint", "checkpoint.metrics.jsonl", "run.yaml", "scores.json"]
    recorded_scores = json.loads((tmp_path / "a" / "scores.json").read_text())
    assert recorded_scores.pop("wall_time_s") > 0 and recorded_scores == {"step": 4, "scores": scores}
    recorded = load_run_config(tmp_path / "a" / "run.yaml")
    assert recorded.model.config["hidden"] == 32 and "reg_weight" in recorded.model.config  # resolved: every field
    assert recorded.env.args["observation"] == "image"
    assert cli.main(["train", str(tmp_path / "a" / "run.yaml"), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert "trained 4 steps; run folder" in capsys.readouterr().out
    assert (tmp_path / "b" / "run.yaml").read_text() == (tmp_path / "a" / "run.yaml").read_text()
    (config_a, a), (config_b, b) = checkpoint_of(tmp_path / "a"), checkpoint_of(tmp_path / "b")
    differ = {"run_id", "config_sha256"}
    assert {k: v for k, v in config_a.items() if k not in differ} == \
        {k: v for k, v in config_b.items() if k not in differ}
    assert_same_run(a, b)
    assert_same_run(learner, a)


def test_cli_flags_and_overrides_with_a_config_file(tmp_path, one_thread, capsys):
    save_run_config(tiny_config(), tmp_path / "run.yaml")
    assert cli.main(["train", str(tmp_path / "run.yaml"), "model.config.lr=1e-4", "--steps", "2", "--seed", "5",
                     "--set", "hidden=16", "--out", str(tmp_path / "x"), "--quiet"]) == 0
    config = load_run_config(tmp_path / "x" / "run.yaml")
    assert (config.trainer.steps, config.trainer.seed) == (2, 5)
    assert (config.model.config["lr"], config.model.config["hidden"]) == (1e-4, 16)
    assert cli.main(["train", str(tmp_path / "run.yaml"), "trainer.seed=6", "--out", str(tmp_path / "w"), "--quiet",
                     "trainer.steps=1"]) == 0  # overrides after the flags too
    assert load_run_config(tmp_path / "w" / "run.yaml").trainer == dataclasses.replace(tiny_config().trainer, seed=6,
                                                                                       steps=1)
    with pytest.raises(SystemExit):
        cli.main(["train", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "v"), "--bogus"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    assert cli.main(["train", "trainer.steps=3", "--out", str(tmp_path / "y")]) == 2
    assert "needs a run config file first" in capsys.readouterr().err
    assert cli.main(["train", str(tmp_path / "run.yaml"), "trainer.stepz=3", "--out", str(tmp_path / "z")]) == 2
    assert capsys.readouterr().err.startswith("dynrep train: error: unknown key 'trainer.stepz'")
    assert not (tmp_path / "z").exists()  # nothing written for a bad override


def test_resume_continues_to_the_total_steps(tmp_path, one_thread, capsys):
    run(tiny_config(steps=4), tmp_path / "r")
    save_run_config(apply_overrides(load_run_config(tmp_path / "r" / "run.yaml"), ["trainer.steps=7"]),
                    tmp_path / "r" / "run.yaml")
    learner, _ = resume(tmp_path / "r")
    straight, _ = run(tiny_config(steps=7), tmp_path / "straight")
    assert_same_run(learner, straight)
    assert_same_run(checkpoint_of(tmp_path / "r")[1], straight)
    assert cli.main(["resume", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"dynrep resume: error: nothing left to do: run {tmp_path / 'r'} is at step 7 of trainer.steps=7; pass "
        "--steps N to train N more steps")
    assert cli.main(["resume", str(tmp_path / "straight"), "--steps", "2", "--quiet"]) == 0
    assert load_run_config(tmp_path / "straight" / "run.yaml").trainer.steps == 9
    assert json.loads((tmp_path / "straight" / "scores.json").read_text())["step"] == 9


def test_resume_errors(tmp_path, capsys):
    assert cli.main(["resume", str(tmp_path / "nothing")]) == 1
    assert capsys.readouterr().err.strip() == (f"dynrep resume: error: {tmp_path / 'nothing'} is not a run folder: "
                                               "it has no run.yaml (run folders are written by `dynrep train "
                                               "RUN.yaml --out DIR`)")
    save_run_config(tiny_config(), tmp_path / "r" / "run.yaml")
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        resume(tmp_path / "r")
    assert cli.main(["resume", str(tmp_path / "r")]) == 1
    assert capsys.readouterr().err.startswith(f"dynrep resume: error: no checkpoint at {tmp_path / 'r' / 'checkpoint'}")


def test_resume_after_sigkill_is_bitwise_an_uninterrupted_run(tmp_path, one_thread):
    save_run_config(tiny_config(steps=1_000_000), tmp_path / "run.yaml")
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "dynrep", "train", str(tmp_path / "run.yaml"), "--out", str(out),
                             "--checkpoint-every", "2", "--quiet"], env=ENV, stderr=subprocess.PIPE, text=True)
    config_file, deadline = out / "checkpoint" / "config.json", time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads(config_file.read_text())["step"] >= 6:
                break
        except (OSError, ValueError, KeyError):  # not written yet, or mid-swap
            pass
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[1]
    proc.kill()
    proc.communicate()
    killed_at = checkpoint_of(out)[1].step
    assert killed_at >= 6 and killed_at % 2 == 0
    resumed = subprocess.run([sys.executable, "-m", "dynrep", "resume", str(out), "--steps", "5", "--quiet"],
                             env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    straight, _ = run(tiny_config(steps=killed_at + 5, checkpoint_every=2), tmp_path / "straight")
    assert_same_run(checkpoint_of(out)[1], straight)
    assert load_run_config(out / "run.yaml") == load_run_config(tmp_path / "straight" / "run.yaml")


def test_the_readme_run_config_and_overrides_are_valid(tmp_path):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme.split("```yaml\n# gw.yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "gw.yaml").write_text(block)
    config = apply_overrides(load_run_config(tmp_path / "gw.yaml"), ["model.config.lr=1e-4", "trainer.steps=2000"])
    assert (config.env.args, config.model.config) == ({"size": 5}, {"latent_dim": 4, "lr": 1e-4})
    assert (config.trainer.steps, config.trainer.checkpoint_every, config.evaluation.metrics) == (2000, 500,
                                                                                              ["mig", "dci"])


def test_a_folder_of_other_files_is_refused_before_anything_is_written(tmp_path, capsys):
    save_run_config(tiny_config(), tmp_path / "run.yaml")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert cli.main(["train", str(tmp_path / "run.yaml"), "--out", str(tmp_path / "mine")]) == 1
    assert capsys.readouterr().err.strip() == (f"dynrep train: error: {tmp_path / 'mine'} holds files that are not a "
                                               "dynrep run folder (notes.txt); refusing to write into it: choose a "
                                               "new or empty directory")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_overwrite_replaces_another_run_and_its_scores(tmp_path, one_thread, capsys):
    run(tiny_config(steps=2), tmp_path / "r")
    with pytest.raises(CheckpointError, match="holds the checkpoint of another run"):
        run(tiny_config(steps=3), tmp_path / "r")
    assert load_run_config(tmp_path / "r" / "run.yaml").trainer.steps == 2  # the refused run wrote nothing
    with pytest.raises(NonFiniteLossError):  # a replacing run that fails leaves no scores of the run it replaced
        run(apply_overrides(tiny_config(steps=3), ["model.config.lr=1e30"]), tmp_path / "r", overwrite=True)
    assert not (tmp_path / "r" / "scores.json").exists()
    run(tiny_config(steps=3), tmp_path / "r", overwrite=True)
    assert json.loads((tmp_path / "r" / "scores.json").read_text())["step"] == 3
    assert checkpoint_of(tmp_path / "r")[1].step == 3


def test_trainer_safetensors_in_run_configs_and_the_flag(tmp_path, one_thread, capsys):
    run(apply_overrides(tiny_config(), ["trainer.safetensors=true"]), tmp_path / "a")
    assert (tmp_path / "a" / "checkpoint" / "model.safetensors").is_file()
    assert load_run_config(tmp_path / "a" / "run.yaml").trainer.safetensors is True
    assert cli.main(["train", "--steps", "1", "--out", str(tmp_path / "b"), "--safetensors", "--quiet",
                 "--set", "channels=[4]", "--env-arg", "size=3", "--env-arg", "image_size=16"]) == 0
    assert (tmp_path / "b" / "model.safetensors").is_file()
