"""The ``dynrep`` command line (called through ``dynrep.cli.main``)."""
from __future__ import annotations

import json

import imageio.v3 as iio
import pytest

cli = pytest.importorskip("dynrep.cli")

TINY_SET = ["--set", "channels=[4,8]", "--set", "hidden=32", "--set", "batch_size=2", "--set", "episode_length=2"]
TINY_ENV = ["--env-arg", "size=3", "--env-arg", "image_size=16"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    code = cli.main(["train", "--steps", "2", "--out", str(out), "--quiet", "--device", "cpu", *TINY_SET,
                     *TINY_ENV])
    assert code == 0
    return out


def test_list(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    envs = out.split("environments:")[1].splitlines()[0]
    assert {"circles", "gridworld", "simple"} <= {name.strip() for name in envs.split(",")}
    assert "rotation" in out and "vae" in out


def test_train_writes_a_checkpoint(run_dir):
    config = json.loads((run_dir / "config.json").read_text())
    assert config["step"] == 2
    assert config["env"]["config"]["image_size"] == 16
    assert config["model"]["name"] == "rotation"
    assert config["model"]["config"]["channels"] == [4, 8]


def test_evaluate_json(run_dir, capsys):
    assert cli.main(["evaluate", str(run_dir), "--json", "--device", "cpu", "--metrics", "mig,sap",
                     "--num-train", "200", "--num-test", "100"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert {"reconstruction_error", "prediction_error/1", "plane_sharing", "mig", "sap"} <= set(scores)


def test_evaluate_table(run_dir, capsys):
    assert cli.main(["evaluate", str(run_dir), "--device", "cpu", "--metrics", "none"]) == 0
    out = capsys.readouterr().out
    assert "reconstruction_error" in out and "rotation_purity_min" in out and "mig" not in out


def test_animate(run_dir, tmp_path, capsys):
    gif = tmp_path / "t.gif"
    assert cli.main(["animate", str(run_dir), "--kind", "traversal", "--frames", "3", "--output", str(gif),
                     "--device", "cpu"]) == 0
    assert str(gif) in capsys.readouterr().out
    assert iio.imread(gif, index=None).shape[0] == 3


def test_unknown_model_is_a_clean_error(tmp_path, capsys):
    code = cli.main(["train", "--model", "nope", "--steps", "1", "--out", str(tmp_path / "x"), "--quiet",
                     "--device", "cpu"])
    assert code == 2
    err = capsys.readouterr().err
    assert "dynrep train: error: unknown model 'nope'; registered models: ['" in err
    assert "'rotation'" in err and "'vae'" in err
    assert "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_bad_config_value_is_a_clean_error(tmp_path, capsys):
    code = cli.main(["train", "--steps", "1", "--out", str(tmp_path / "x"), "--quiet", "--device", "cpu",
                     "--set", "latent_dim=1"])
    assert code == 2
    assert "latent_dim must be >= 2, got 1" in capsys.readouterr().err


def test_malformed_set(tmp_path):
    with pytest.raises(SystemExit, match="--set expects KEY=VALUE, got 'latent_dim'"):
        cli.main(["train", "--steps", "1", "--out", str(tmp_path / "x"), "--set", "latent_dim"])


def test_missing_required_arguments(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train"])
    assert info.value.code == 2
    assert "--steps" in capsys.readouterr().err


def test_animate_default_output_beside_the_run(run_dir, capsys):
    assert cli.main(["animate", str(run_dir), "--frames", "2", "--device", "cpu"]) == 0
    expected = run_dir.with_name(f"{run_dir.name}_rollout.gif")
    assert capsys.readouterr().out.strip() == str(expected)
    assert iio.imread(expected, index=None).shape[0] == 2
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "state.pt"]  # the checkpoint is untouched


def test_demo_writes_everything(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--steps", "2", "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    assert {p.name for p in out.iterdir()} >= {"rollout.gif", "traversal.gif", "angles.png", "training.png",
                                               "checkpoint"}
    assert json.loads((out / "checkpoint" / "config.json").read_text())["step"] == 2
    assert iio.imread(out / "rollout.gif", index=None).shape[0] == 20  # default --frames
    assert "rotation_purity_min" in capsys.readouterr().out
