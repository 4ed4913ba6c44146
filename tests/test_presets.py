"""Packaged presets (dynrep.presets): every preset parses and round-trips, every ``-small`` twin trains a few
steps, every full preset builds with the paper's settings, and ``dynrep presets`` / ``dynrep train preset:NAME``
list, show and run them."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dynrep import cli, presets, runs
from dynrep.data.synthetic import write_synthetic
from dynrep.envs.splits import SplitEnvironment

PRESETS = presets.list_presets()
FULL = [name for name in PRESETS if not name.endswith("-small")]
#: Worlds read from downloaded files: the tests use small copies in the published format.
FILE_WORLDS = ("shapes3d", "dsprites")
#: The key settings of each full preset and the paper's values (sources in each preset's comment block): a
#: changed value fails here. Dotted keys of the run config; ``env.split`` is the study's split.
PAPER = {
    "quessard-gridworld": {"env.name": "gridworld", "env.args.size": 10, "env.args.observation": "onehot",
                           "model.name": "rotation", "model.config.latent_dim": 4, "model.config.batch_size": 16,
                           "model.config.episode_length": 5, "model.config.lr": 1e-2, "model.config.mlp_hidden": [64],
                           "model.config.reg_weight": 0.0, "trainer.steps": 3000},
    "quessard-flatland": {"env.name": "flatland", "env.args.period": 10, "env.args.radius": 15.0,
                          "env.args.channels": 1, "model.name": "rotation", "model.config.latent_dim": 4,
                          "model.config.batch_size": 16, "model.config.episode_length": 5, "model.config.lr": 1e-2,
                          "model.config.reg_weight": 1e-2, "model.config.reg_target": 0.0, "trainer.steps": 3000},
    "painter-rgrvae-flatland": {"env.name": "flatland", "env.args.channels": 1, "model.name": "rgrvae",
                                "model.config.latent_dim": 4, "model.config.batch_size": 128,
                                "model.config.lr": 1e-3, "model.config.beta": 1.0, "model.config.gamma": 10.0,
                                "model.config.group_structure": ["c+", "c-"], "model.config.lr_actions": 0.1,
                                "model.config.entropy_weight": 0.01, "trainer.steps": 200 * 71},
    "painter-forward-vae-flatland": {"env.name": "flatland", "env.args.channels": 1, "model.name": "forward_vae",
                                     "model.config.latent_dim": 4, "model.config.batch_size": 128,
                                     "model.config.lr": 1e-3, "model.config.beta": 1.0, "model.config.gamma": 1.0,
                                     "trainer.steps": 200 * 71},
    "lachapelle-action-sparsity": {"env.name": "toy_nn", "env.args.dataset": "action_sparsity_non_trivial",
                                   "env.args.num_samples": 1_000_000, "model.name": "mechanism_sparsity",
                                   "model.config.latent_dim": 10, "model.config.batch_size": 1024,
                                   "model.config.lr": 5e-4, "model.config.mlp_hidden": [512] * 6,
                                   "model.config.transition_hidden": 512, "model.config.transition_layers": 5,
                                   "model.config.reg_a": 16.0, "trainer.steps": 500 * 781,
                                   "trainer.time_limit": 3 * 3600},
    "lachapelle-temporal-sparsity": {"env.name": "toy_nn", "env.args.dataset": "temporal_sparsity_non_trivial",
                                     "env.args.num_samples": 1_000_000, "model.name": "mechanism_sparsity",
                                     "model.config.latent_dim": 10, "model.config.batch_size": 1024,
                                     "model.config.lr": 5e-4, "model.config.mlp_hidden": [512] * 6,
                                     "model.config.transition_hidden": 512, "model.config.transition_layers": 5,
                                     "model.config.full_seq": True, "model.config.reg_z": 0.6,
                                     "trainer.steps": 500 * 781, "trainer.time_limit": 3 * 3600},
    "komanduri-icm-vae-pendulum": {"env.name": "pendulum", "env.args.subset": "train", "env.args.image_size": 96,
                                   "model.name": "icm_vae", "model.config.batch_size": 64, "model.config.lr": 1e-3,
                                   "model.config.block_dim": 4, "model.config.alpha_max": 0.1,
                                   "model.config.beta_max": 1.2, "model.config.warmup_steps": 94 * 86,
                                   "trainer.steps": 101 * 86},
    "komanduri-icm-vae-flow": {"env.name": "flow", "env.args.subset": "train", "env.args.image_size": 96,
                               "model.name": "icm_vae", "model.config.batch_size": 64, "model.config.lr": 1e-3,
                               "model.config.block_dim": 4, "model.config.alpha_max": 0.1,
                               "model.config.beta_max": 1.2, "model.config.warmup_steps": 94 * 102,
                               "trainer.steps": 101 * 102},
    "montero-composition-net-shapes3d": {"env.name": "shapes3d", "env.split": "shapes3d/recomb2range/shape2ohue",
                                         "model.name": "composition_net", "model.config.latent_dim": 10,
                                         "model.config.batch_size": 64, "model.config.lr": 1e-4,
                                         "model.config.architecture": "abdi", "model.config.beta": 1.0,
                                         "model.config.composition": "interp", "trainer.steps": 100 * 6563},
    "montero-composition-net-dsprites": {"env.name": "dsprites", "env.split": "dsprites/recomb2range/sqr2tx",
                                         "model.name": "composition_net", "model.config.latent_dim": 10,
                                         "model.config.batch_size": 64, "model.config.lr": 1e-4,
                                         "model.config.architecture": "abdi", "model.config.beta": 1.0,
                                         "model.config.composition": "linear", "trainer.steps": 100 * 9600},
    "montero-beta-vae-shapes3d": {"env.name": "shapes3d", "env.split": "shapes3d/recomb2range/shape2ohue",
                                  "model.name": "beta_vae", "model.config.latent_dim": 10,
                                  "model.config.batch_size": 64, "model.config.lr": 5e-4,
                                  "model.config.architecture": "kim", "model.config.beta": 8.0,
                                  "trainer.steps": 66 * 6563},
    "montero-beta-vae-dsprites": {"env.name": "dsprites", "env.split": "dsprites/recomb2range/sqr2tx",
                                  "model.name": "beta_vae", "model.config.latent_dim": 10,
                                  "model.config.batch_size": 64, "model.config.lr": 5e-4,
                                  "model.config.architecture": "abdi", "model.config.beta": 8.0,
                                  "trainer.steps": 66 * 9600},
}
#: Overrides that make any preset train in a moment: 2 steps, tiny evaluation samples.
QUICK = ["trainer.steps=2", "evaluation.num_train=40", "evaluation.num_test=40"]
#: DCI in this process (its worker processes take longer to start than its 40-point fits); toy-nn's default
#: metrics have no DCI.
SERIAL_DCI = ["evaluation.options.dci.n_jobs=1"]


def value_at(values: dict, dotted: str):
    for part in dotted.split("."):
        values = values[part]
    return values


@pytest.fixture(scope="module")
def data_files(tmp_path_factory) -> dict[str, str]:
    """Small Shapes3D and dSprites files in the published formats: ``{world: path}``."""
    out = tmp_path_factory.mktemp("data")
    return {name: str(write_synthetic(name, out)) for name in FILE_WORLDS}


@pytest.fixture
def data_dir(tmp_path, monkeypatch, data_files):
    """DYNREP_DATA in tmp_path (the unpacked-image caches go there); returns the data files."""
    monkeypatch.setenv("DYNREP_DATA", str(tmp_path / "data"))
    return data_files


def with_data(config: runs.RunConfig, files: dict[str, str], overrides=()) -> runs.RunConfig:
    """``config`` reading its world's small file (for the downloaded worlds), then ``overrides``."""
    path = [f"env.args.path={files[config.env.name]}"] if config.env.name in FILE_WORLDS else []
    return runs.apply_overrides(config, [*path, *overrides])


def test_every_full_preset_has_its_small_twin_and_a_paper_table_row():
    assert sorted(FULL) == sorted(PAPER)
    assert sorted(PRESETS) == sorted([*FULL, *(f"{name}-small" for name in FULL)])
    for name in FULL:
        full, small = presets.load_preset(name), presets.load_preset(f"{name}-small")
        assert (small.env.name, small.env.split, small.model.name) == (full.env.name, full.env.split, full.model.name)
        assert small.trainer.steps < full.trainer.steps


@pytest.mark.parametrize("name", PRESETS)
def test_preset_parses_round_trips_and_documents_itself(name, tmp_path):
    config = presets.load_preset(name)
    assert runs.load_run_config(f"preset:{name}") == config
    for suffix in (".yaml", ".json"):
        assert runs.load_run_config(runs.save_run_config(config, tmp_path / f"run{suffix}")) == config
    text = presets.preset_text(name)
    assert text.startswith("# ") and presets.describe_presets()[name] == text.splitlines()[0][2:]
    assert runs.run_config_from_dict(yaml.safe_load(text)) == config
    comments = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert "Paper:" in comments and ("# Runtime: about " if name.endswith("-small") else "# Settings") in comments


@pytest.mark.parametrize("name", FULL)
def test_full_preset_has_the_paper_settings(name):
    values = runs.run_config_to_dict(presets.load_preset(name))
    assert {key: value_at(values, key) for key in PAPER[name]} == PAPER[name]


#: Full presets whose networks take seconds to build (ICM-VAE's four 1024 -> 3x96x96 decoders: 113 M weights).
HEAVY = ("komanduri-icm-vae-pendulum", "komanduri-icm-vae-flow")


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name in HEAVY else name
                                  for name in FULL])
def test_full_preset_builds_with_its_settings(name, data_dir, one_thread):
    config = with_data(presets.load_preset(name), data_dir)
    learner = runs.build_learner(config)
    values = runs.run_config_to_dict(runs.resolved(config, learner))  # as the model and world took them
    built = {key: value for key, value in PAPER[name].items() if key.startswith(("model.", "env.name", "env.split"))}
    assert {key: value_at(values, key) for key in built} == built
    assert isinstance(learner.env, SplitEnvironment) == (config.env.split is not None)


@pytest.mark.parametrize("name", [pytest.param(f"{name}-small", marks=pytest.mark.slow) if name.startswith("montero")
                                  else f"{name}-small" for name in FULL])  # the six Lost-in-Latent-Space metrics
def test_small_twin_trains_a_few_steps(name, tmp_path, data_dir, one_thread):
    config = presets.load_preset(name)
    config = with_data(config, data_dir, QUICK + (SERIAL_DCI if config.env.name != "toy_nn" else []))
    learner, scores = runs.run(config, tmp_path / "run")
    assert learner.step == 2 and scores
    assert json.loads((tmp_path / "run" / runs.SCORES_FILE).read_text())["step"] == 2
    recorded = runs.load_run_config(tmp_path / "run" / runs.RUN_FILE)
    assert recorded == runs.resolved(config, learner) and recorded.env.split == config.env.split
    if config.env.split is not None:
        assert learner.env.part == "train" and learner.env.name == config.env.split


def test_toy_nn_presets_take_every_dataset_of_their_kind():
    """The dataset is one field: each preset builds on the four toy-nn datasets of its kind."""
    for kind in ("action", "temporal"):
        config = presets.load_preset(f"lachapelle-{kind}-sparsity-small")
        for variant in ("trivial", "non_trivial", "non_trivial_no_graph_crit", "non_trivial_no_suff_var"):
            dataset = f"{kind}_sparsity_{variant}"
            learner = runs.build_learner(runs.apply_overrides(config, [f"env.args.dataset={dataset}"]))
            assert learner.env.dataset == dataset


def test_unknown_preset_names_the_closest_and_all():
    with pytest.raises(ValueError, match=r"unknown preset 'quessard-gridwrld'; did you mean 'quessard-gridworld'\?"):
        presets.load_preset("quessard-gridwrld")
    with pytest.raises(ValueError, match="presets are komanduri-icm-vae-flow, ") as err:
        runs.load_run_config("preset:NOPE")
    assert "did you mean" not in str(err.value)


@pytest.mark.parametrize("overrides, message", [
    (["env.split=dsprites/recomb2range/sqr2tx"], "env.split 'dsprites/recomb2range/sqr2tx' is not a split of "
                                                 "environment 'shapes3d'; its splits are shapes3d/extrp/missing_fh"),
    (["env.modifiers=[even_ohues]", "env.split=null"], r"env.modifiers \['even_ohues'\] need an env.split"),
    (["env.modifiers=[sparse_posX]"], "env.modifiers: 'sparse_posX' is not a modifier of 'shapes3d'; its "
                                      "modifiers are even_ohues, even_wnf_hues, half_ohues"),
])
def test_a_bad_split_is_one_error_naming_it(overrides, message):
    with pytest.raises(ValueError, match=message):
        runs.apply_overrides(presets.load_preset("montero-beta-vae-shapes3d"), overrides)


def test_a_new_world_drops_the_old_split():
    config = runs.apply_overrides(presets.load_preset("montero-beta-vae-shapes3d-small"), ["env.name=circles"])
    assert (config.env.name, config.env.split, config.env.modifiers) == ("circles", None, [])


def test_cli_lists_every_preset_with_its_description(capsys):
    assert cli.main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == PRESETS
    for line, (name, description) in zip(lines, presets.describe_presets().items()):
        assert line.split(None, 1)[1] == description and description


def test_cli_shows_a_preset_to_copy(capsys, tmp_path):
    assert cli.main(["presets", "--show", "quessard-flatland"]) == 0
    shown = capsys.readouterr().out
    assert shown == presets.preset_path("quessard-flatland").read_text()
    (tmp_path / "mine.yaml").write_text(shown)
    assert runs.load_run_config(tmp_path / "mine.yaml") == presets.load_preset("quessard-flatland")
    assert cli.main(["presets", "--show", "nope"]) == 2
    assert capsys.readouterr().err.startswith("dynrep presets: error: unknown preset 'nope'")


def test_cli_train_unknown_preset_is_one_line_exit_2(capsys, tmp_path):
    assert cli.main(["train", "preset:NOPE", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dynrep train: error: unknown preset 'NOPE'; presets are ")
    assert not (tmp_path / "run").exists()


def test_cli_train_preset_applies_overrides(capsys, tmp_path, one_thread):
    out = tmp_path / "run"
    assert cli.main(["train", "preset:quessard-gridworld-small", *QUICK, *SERIAL_DCI, "model.config.lr=0.005",
                     "--seed", "3", "--out", str(out), "--quiet"]) == 0
    recorded = runs.load_run_config(out / runs.RUN_FILE)
    assert (recorded.trainer.steps, recorded.trainer.seed, recorded.model.config["lr"]) == (2, 3, 0.005)
    assert recorded.env.args["size"] == [10, 10] and recorded.model.config["mlp_hidden"] == [64]  # the preset's
    assert "trained 2 steps" in capsys.readouterr().out


def test_the_readme_preset_commands_name_presets_and_valid_overrides():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme.split("### Presets", 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line.split("#")[0]) for line in block.splitlines()]
    shown = [words[3] for words in commands if words[1:3] == ["presets", "--show"]]
    trained = [words for words in commands if words[1] == "train" and words[2].startswith(presets.PRESET_PREFIX)]
    assert shown == ["quessard-flatland"] and len(trained) == 2
    for words in trained:
        overrides = [word for word in words[3:] if "=" in word and not word.startswith("--")]
        runs.apply_overrides(runs.load_run_config(words[2]), overrides)


def test_a_run_on_a_split_resumes_on_its_training_part(tmp_path, data_dir, one_thread):
    config = with_data(presets.load_preset("montero-beta-vae-dsprites-small"), data_dir,
                       ["trainer.steps=2", "evaluation.metrics=[]"])
    runs.run(config, tmp_path / "run")
    learner, _ = runs.resume(tmp_path / "run", steps=1)
    assert learner.step == 3 and (learner.env.name, learner.env.part) == ("dsprites/recomb2range/sqr2tx", "train")
    assert runs.load_run_config(tmp_path / "run" / runs.RUN_FILE).env.split == "dsprites/recomb2range/sqr2tx"


@pytest.mark.slow
def test_a_non_editable_install_ships_every_preset(tmp_path):
    """The presets are package data: a wheel built from a copy of the sources and installed elsewhere lists and
    loads them all (``pip install . --target DIR --no-deps``, offline)."""
    root, src = Path(__file__).parents[1], tmp_path / "src"
    shutil.copytree(root / "dynrep", src / "dynrep", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "wheel")],
                   check=True, capture_output=True, timeout=300)
    subprocess.run([*pip, "install", *(tmp_path / "wheel").glob("*.whl"), "--no-deps", "--target",
                    str(tmp_path / "site")], check=True, capture_output=True, timeout=300)
    code = "from dynrep import presets; print(presets.__file__); print(*presets.list_presets())"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    where, names = result.stdout.splitlines()
    assert where.startswith(str(tmp_path / "site")) and names.split() == PRESETS
