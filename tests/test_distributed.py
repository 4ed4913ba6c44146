"""Multi-process training and evaluation (dynrep.training.distributed): 2 gloo ranks on CPU, 1 thread each.

The 2-rank runs are this file run as a script (``python tests/test_distributed.py WORKER OUT``) in two
processes with torchrun's environment variables, or ``torchrun`` itself for the command line; each worker
saves what the test compares in ``OUT/rank{R}.pt``.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import tiny_learner
from dynrep import GridWorld, RepresentationLearner, build_model, list_models
from dynrep.data.trajectory import Trajectory
from dynrep.models.registry import model_class
from dynrep.training import Callback, NonFiniteLossError, TrainingInterrupted, distributed

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
#: Seconds a 2-rank run may take before the test fails (and kills it): a hang is a failure, not a stall.
TIMEOUT = 240
STEPS = 3
#: Metrics of the evaluation comparison (fast ones), with small sample sizes.
EVAL = {"metrics": ["mig", "sap", "modularity"], "num_train": 300, "num_test": 100}

pytestmark = pytest.mark.slow


def _env() -> GridWorld:
    """25 start states and 4 actions: two ranks' random episodes of 3 actions practically never coincide."""
    return GridWorld(size=5, image_size=16)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _base_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "DYNREP_DIST_TIMEOUT": "60", **extra}


def _finish(procs: list[subprocess.Popen]) -> list[tuple[int, str, str]]:
    """``(exit code, stdout, stderr)`` of each process; kills them all and fails after :data:`TIMEOUT`."""
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=TIMEOUT)
            results.append((proc.returncode, out, err))
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
            proc.communicate()
        pytest.fail(f"a rank did not finish within {TIMEOUT} s (hang)")
    return results


def launch(worker: str, out: Path, world: int = 2, **env: str) -> list[tuple[int, str, str]]:
    """Run ``worker`` of this file in ``world`` processes, as torchrun would start them (``env``: more
    environment variables)."""
    port = str(_free_port())
    procs = [subprocess.Popen([sys.executable, __file__, worker, str(out)], text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=out,
                              env=_base_env(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, WORLD_SIZE=str(world),
                                            RANK=str(r), LOCAL_RANK=str(r), LOCAL_WORLD_SIZE=str(world), **env))
             for r in range(world)]
    return _finish(procs)


def launch_ok(worker: str, out: Path) -> list[dict]:
    results = launch(worker, out)
    for code, _, _ in results:
        assert code == 0, "\n".join(err for _, _, err in results)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


# -- workers (run in the rank processes) --------------------------------------------------------------
class _Record(Callback):
    """Parameters after every step."""

    def __init__(self):
        self.params = []

    def on_step_end(self, trainer, logs):
        self.params.append({k: v.detach().clone() for k, v in trainer.model.state_dict().items()})


def _recording(learner) -> list[Trajectory]:
    """Makes ``learner`` keep every batch it draws (returned list)."""
    batches, sample = [], learner.trainer.sample_batch

    def recorded():
        batch = sample()
        batches.append(batch)
        return batch

    learner.trainer.sample_batch = recorded
    return batches


def worker_train(out: Path) -> dict:
    """The step-for-step comparison, the resume, the refusals and the evaluation, in one launch."""
    return {**_match(), **_resume(out), **_evaluate(), **_interrupt(out), **_time_limit(), **_zoo(), **_non_finite(out), **_switches()}


#: Models accepted under DDP (the refused ones are beta_tcvae, cascade_vae, rgrvae) and a tiny setting of each.
ZOO = ["vae", "beta_vae", "wae", "liegroup_vae", "forward_vae", "factor_vae", "composition_net"]
ZOO_CONFIG = {"latent_dim": 3, "batch_size": 8, "channels": (4, 8), "hidden": 16}


def _zoo() -> dict:
    """Two DDP steps of each accepted model: the losses (means over the ranks) and the parameters after."""
    from dynrep import Flatland, ToyNN
    results = {}
    learners = {name: RepresentationLearner(Flatland(period=5, image_size=16, radius=15.0), name, device="cpu",
                                            **ZOO_CONFIG) for name in ZOO}
    learners["mechanism_sparsity"] = RepresentationLearner(
        ToyNN("action_sparsity_trivial", num_samples=2000), "mechanism_sparsity", device="cpu",
        mlp_hidden=(16, 16), transition_hidden=8, transition_layers=2, batch_size=32)
    for name, learner in learners.items():
        learner.train(2, progress=False)
        results[name] = (learner.history["loss"], learner.model.state_dict())
    return {"zoo": results}


def _switches() -> dict:
    """DDP steps with the trainer's compile (dynamo's graphs on the aot_eager backend: no C++ build) and with
    bf16 autocast, beside plain ones: ``{setting: (losses, parameters)}``."""
    import functools
    torch.compile = functools.partial(torch.compile, backend="aot_eager")
    results = {}
    for name, switches in {"plain": {}, "compile": {"compile": True}, "bf16": {"autocast": "bf16"}}.items():
        learner = tiny_learner(env=_env(), batch_size=4, **switches)
        learner.train(STEPS, progress=False)
        assert (learner.trainer._compiled is not None) == (name == "compile")  # the DDP forward ran it
        results[name] = (learner.history["loss"], learner.model.state_dict())
    return {"switches": results}


def _match() -> dict:
    learner = tiny_learner(env=_env(), batch_size=4)
    batches, record = _recording(learner), _Record()
    all_reduce, calls = torch.distributed.all_reduce, []
    torch.distributed.all_reduce = lambda *args, **kwargs: calls.append(1) or all_reduce(*args, **kwargs)
    try:
        learner.train(STEPS, progress=False, callbacks=[record])
    finally:
        torch.distributed.all_reduce = all_reduce
    return {"batches": batches, "params": record.params, "history": learner.history, "all_reduces": len(calls)}


def _resume(out: Path) -> dict:
    straight = tiny_learner(env=_env(), batch_size=4)
    straight.train(4, progress=False)
    first = tiny_learner(env=_env(), batch_size=4)
    first.train(2, progress=False, checkpoint_dir=out / f"ckpt{distributed.rank()}")
    resumed = RepresentationLearner.load(out / "ckpt0", device="cpu")
    resumed.train(2, progress=False)
    errors = {}
    for name, config in {"batch": {"batch_size": 5}, "beta_tcvae": {}}.items():
        learner = tiny_learner("vae", **config) if name == "batch" else RepresentationLearner(
            _env(), name, device="cpu", latent_dim=3, batch_size=4, channels=(4, 8), hidden=32)
        try:
            learner.train(1, progress=False)
        except ValueError as err:
            errors[name] = str(err)
    return {"straight": straight.model.state_dict(), "resumed": resumed.model.state_dict(),
            "resumed_history": resumed.history, "straight_history": straight.history, "errors": errors}


def _evaluate() -> dict:
    learner = tiny_learner(env=_env())
    encoded, representation = [], learner.model.representation

    def counting(obs):
        encoded.append(len(obs))
        return representation(obs)

    learner.model.representation = counting
    return {"scores": learner.evaluate(**EVAL), "encoded": sum(encoded)}


class _SigtermOnRank1(Callback):
    def on_step_end(self, trainer, logs):
        if distributed.rank() == 1 and trainer.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)


def _time_limit() -> dict:
    """Rank 1 alone is out of time at once: both ranks stop before the first update."""
    learner = tiny_learner(env=_env())
    learner.train(50, progress=False, time_limit=1e-9 if distributed.rank() == 1 else None)
    return {"time_limit": (learner.step, learner.history)}


def _interrupt(out: Path) -> dict:
    """SIGTERM reaches rank 1 alone: both ranks stop at the same step, rank 0 saves it."""
    learner = tiny_learner(env=_env())
    try:
        learner.train(50, progress=False, checkpoint_dir=out / "interrupted", callbacks=[_SigtermOnRank1()])
    except TrainingInterrupted as err:
        return {"interrupted": (err.signal_name, err.step, learner.step)}
    return {"interrupted": None}


class _ReadEveryStep(Callback):
    """Rank 0 alone reads every step's terms: it finds a NaN steps before the sync every rank makes."""

    main_process_only = lazy_logs = True

    def on_step_end(self, trainer, logs):
        dict(logs)


def _non_finite(out: Path) -> dict:
    """A NaN at step 2 with sync_every 1 and 5 (rank 0 finds it at once, rank 1 at the sync of step 4)."""
    from dynrep.models.base import LossOutput
    results = {}
    for sync_every in (1, 5):
        learner = tiny_learner(env=_env())
        loss = learner.model.loss

        def poisoned(batch, step, generator=None, _loss=loss):
            result = _loss(batch, step, generator)
            return LossOutput(result.total * float("nan"), result.terms) if step == 2 else result

        learner.model.loss = poisoned
        try:
            learner.train(10, progress=False, checkpoint_dir=out / f"nan{sync_every}", sync_every=sync_every,
                          callbacks=[_ReadEveryStep()])
        except NonFiniteLossError as err:
            results[sync_every] = (str(err).replace(f"nan{sync_every}", "nan"), learner.trainer.state_dict())
    return {"non_finite": results}


class _Fail(Callback):
    """Raises on rank ``FAIL_RANK`` at step 2."""

    def on_step_end(self, trainer, logs):
        if distributed.rank() == int(os.environ["FAIL_RANK"]) and trainer.step == 2:
            raise RuntimeError(f"boom on rank {distributed.rank()}")


def worker_fail(out: Path) -> None:
    tiny_learner(env=_env()).train(50, progress=False, callbacks=[_Fail()])


WORKERS = {"train": worker_train, "fail": worker_fail}


# -- tests ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, list[dict]]:
    """``(folder, [rank 0's results, rank 1's])`` of :func:`worker_train`."""
    out = tmp_path_factory.mktemp("train")
    return out, launch_ok("train", out)


def test_two_ranks_match_one_rank_on_the_union_of_their_batches(trained, one_thread):
    _, ranks = trained
    for step in range(STEPS):  # disjoint data: the ranks' episodes differ at every step
        a, b = (r["batches"][step] for r in ranks)
        assert len(a.obs) == len(b.obs) == 2  # the global batch of 4, halved
        episodes = [{(tuple(t.factors[i].flatten().tolist()), tuple(t.actions[i].tolist())) for i in range(2)}
                    for t in (a, b)]
        assert not episodes[0] & episodes[1]
    reference = tiny_learner(env=_env(), batch_size=4)
    union = iter([Trajectory.collate([r["batches"][step] for r in ranks]) for step in range(STEPS)])
    reference.trainer.sample_batch = lambda: next(union)
    record = _Record()
    reference.train(STEPS, progress=False, callbacks=[record])
    for step in range(STEPS):
        for name, value in record.params[step].items():
            torch.testing.assert_close(ranks[0]["params"][step][name], value, rtol=1e-5, atol=1e-6)
            assert torch.equal(ranks[0]["params"][step][name], ranks[1]["params"][step][name])
    for name, values in reference.history.items():  # the logged terms are the means over the ranks
        np.testing.assert_allclose(ranks[0]["history"][name], values, rtol=1e-5, atol=1e-6)
        assert ranks[1]["history"][name] == ranks[0]["history"][name]


def test_resume_writes_on_rank_zero_and_refusals(trained):
    tmp_path, ranks = trained
    assert (tmp_path / "ckpt0" / "state.pt").is_file() and (tmp_path / "ckpt0.metrics.jsonl").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("ckpt")) == ["ckpt0", "ckpt0.metrics.jsonl"]
    for r in ranks:  # every rank resumed from rank 0's checkpoint continues exactly
        for name, value in r["straight"].items():
            assert torch.equal(value, r["resumed"][name]), name
        assert r["resumed_history"] == r["straight_history"]
        assert "batch_size=5" in r["errors"]["batch"] and "world size 2" in r["errors"]["batch"]
        assert r["errors"]["beta_tcvae"].startswith("model 'beta_tcvae' cannot train on 2 processes")


def test_a_signal_on_one_rank_stops_both_at_the_same_step(trained):
    tmp_path, ranks = trained
    assert ranks[0]["interrupted"] == ranks[1]["interrupted"] == ("SIGTERM", 2, 2)  # at the next step boundary
    assert RepresentationLearner.load(tmp_path / "interrupted", device="cpu").step == 2


def test_one_collective_a_step_on_cpu_and_a_time_limit_stops_both(trained):
    _, ranks = trained
    # The gradients' all-reduce is DDP's own; the stop flags share the loss terms' all-reduce, plus one at the end.
    assert [r["all_reduces"] for r in ranks] == [STEPS + 1] * 2
    assert [r["time_limit"] for r in ranks] == [(0, {})] * 2


def test_a_non_finite_step_stops_both_ranks_at_it_whatever_the_sync_cadence(trained):
    tmp_path, ranks = trained
    states = [state for r in ranks for _, state in (r["non_finite"][1], r["non_finite"][5])]
    messages = {message for r in ranks for message, _ in r["non_finite"].values()}
    assert len(messages) == 1 and "loss term 'loss' is nan at step 2" in messages.pop()
    for state in states:
        assert state["step"] == 2 and state["history"] == states[0]["history"]
        assert all(torch.equal(value, states[0]["model"][name]) for name, value in state["model"].items())
        assert state["optimizer"]["state"].keys() == states[0]["optimizer"]["state"].keys()
        for key, saved in state["optimizer"]["state"].items():
            assert all(torch.equal(v, states[0]["optimizer"]["state"][key][k]) for k, v in saved.items())
    for sync_every in (1, 5):
        assert RepresentationLearner.load(tmp_path / f"nan{sync_every}", device="cpu").step == 2


def test_every_accepted_model_trains_in_step_on_both_ranks(trained):
    _, ranks = trained
    assert set(ranks[0]["zoo"]) == {*ZOO, "mechanism_sparsity"}
    for name, (losses, params) in ranks[0]["zoo"].items():
        other_losses, other_params = ranks[1]["zoo"][name]
        assert len(losses) == 2 and np.isfinite(losses).all() and losses == other_losses, name
        assert all(torch.equal(value, other_params[key]) for key, value in params.items()), name


def test_compile_and_autocast_train_under_ddp(trained):
    _, ranks = trained
    (plain_losses, plain_params), results = ranks[0]["switches"]["plain"], ranks[0]["switches"]
    for name, tolerance in (("compile", 1e-5), ("bf16", 2e-2)):
        losses, params = results[name]
        np.testing.assert_allclose(losses, plain_losses, rtol=tolerance)
        assert ranks[1]["switches"][name][0] == losses, name  # the ranks agree
        assert all(torch.equal(value, ranks[1]["switches"][name][1][key]) for key, value in params.items()), name
    torch.testing.assert_close(results["compile"][1], plain_params, rtol=1e-5, atol=1e-6)
    assert results["bf16"][0] != plain_losses  # the DDP forward ran under autocast


def test_distributed_evaluate_equals_one_process(trained, one_thread):
    _, ranks = trained
    single = tiny_learner(env=_env())
    encoded, representation = [], single.model.representation
    single.model.representation = lambda obs: (encoded.append(len(obs)), representation(obs))[1]
    expected = single.evaluate(**EVAL)
    for r in ranks:
        assert r["scores"].keys() == expected.keys()
        for name, value in expected.items():
            assert r["scores"][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    total = sum(encoded)
    single.evaluate(**{**EVAL, "metrics": ()})  # the model scores (not split) alone
    model_scores = sum(encoded) - total
    assert [r["encoded"] for r in ranks] == [model_scores + (total - model_scores) / 2] * 2  # half the metrics'


@pytest.mark.parametrize("failing", [1, 0])  # rank 0 also hosts the process group's store here
def test_an_error_in_one_rank_ends_both_and_is_shown_once(failing, tmp_path):
    errors = [err for code, _, err in launch("fail", tmp_path, FAIL_RANK=str(failing)) if code != 0]
    assert len(errors) == 2  # both ended, with an error code
    assert errors[failing].count(f"RuntimeError: boom on rank {failing}") == 1
    other = errors[1 - failing]
    assert "Traceback" not in other and "boom" not in other and "Connection closed" not in other, other


@pytest.mark.parametrize("name", ["beta_tcvae", "cascade_vae", "rgrvae"])
def test_refused_models_name_themselves_and_why(name, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    model = build_model(name, GridWorld(size=3, image_size=16), latent_dim=4, channels=(4, 8), hidden=32)
    with pytest.raises(ValueError, match=f"model '{name}' cannot train on 2 processes.*: .+; train it in one"):
        distributed.check_model(model)


def test_other_models_are_accepted():
    refused = {name for name in list_models() if model_class(name).ddp_unsupported}
    assert refused == {"beta_tcvae", "cascade_vae", "rgrvae"}


def test_single_process_is_untouched(monkeypatch):
    for var in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(var, raising=False)
    assert not distributed.init() and not distributed.is_active()
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    fn = tiny_learner().model.representation
    assert distributed.sharded(fn) is fn
    assert distributed.report_failure()


def test_a_bad_timeout_is_named(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("DYNREP_DIST_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="DYNREP_DIST_TIMEOUT must be a number of seconds > 0, got 'soon'"):
        distributed.init()
    with pytest.raises(ValueError, match="timeout must be a number of seconds > 0, got 0"):
        distributed.init(timeout=0)


def _run_yaml(path: Path, batch_size: int = 4) -> Path:
    config = {"env": {"name": "gridworld", "args": {"size": 3, "image_size": 16}},
              "model": {"name": "rotation", "config": {"latent_dim": 4, "batch_size": batch_size, "episode_length": 2,
                                                      "channels": [4, 8], "hidden": 32, "mlp_hidden": [8]}},
              "trainer": {"steps": 2, "device": "cpu", "threads": 1},
              "evaluation": {"metrics": ["mig"], "num_train": 100, "num_test": 50}}
    path.write_text(yaml.safe_dump(config))
    return path


def _torchrun(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    cmd = [str(TORCHRUN), "--nproc_per_node", "2", "--master_port", str(_free_port()), "-m", "dynrep", *args]
    return _finish([subprocess.Popen(cmd, cwd=tmp_path, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=_base_env())])[0]


def test_torchrun_dynrep_train_end_to_end(tmp_path):
    code, out, err = _torchrun(tmp_path, "train", str(_run_yaml(tmp_path / "run.yaml")), "--out", "run", "--quiet")
    assert code == 0, err
    assert out.count("trained 2 steps") == 1  # rank 0 alone prints
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} >= {"run.yaml", "checkpoint", "scores.json", "checkpoint.metrics.jsonl"}
    assert RepresentationLearner.load(run / "checkpoint", device="cpu").step == 2
    code, out, err = _torchrun(tmp_path, "train", str(_run_yaml(tmp_path / "bad.yaml", batch_size=3)), "--out",
                               "bad", "--quiet")
    assert code != 0
    lines = [line for line in err.splitlines() if line.startswith("dynrep train: error:")]
    assert len(lines) == 1 and "batch_size=3" in lines[0] and "world size 2" in lines[0], err
    assert "Traceback" not in err.split("torch/distributed/elastic")[0], err  # torchrun's own report follows


if __name__ == "__main__":  # a rank process of launch()
    torch.set_num_threads(1)
    directory = Path(sys.argv[2])
    result = WORKERS[sys.argv[1]](directory)
    torch.save(result, directory / f"rank{distributed.rank()}.pt")


def test_leaving_the_group_first_hands_the_gil_to_gloo_workers(monkeypatch):
    # Without the sleep a gloo worker releasing a finished collective's tensors during interpreter shutdown
    # aborted rank 0 of `torchrun -m dynrep train` in about one run out of three (SIGABRT).
    calls = []
    monkeypatch.setattr(distributed, "is_active", lambda: True)
    monkeypatch.setattr(distributed.time, "sleep", lambda s: calls.append(("sleep", s)))
    monkeypatch.setattr(torch.distributed, "destroy_process_group", lambda: calls.append(("destroy",)))
    distributed._leave()
    assert calls == [("sleep", distributed._EXIT_GRACE), ("destroy",)] and distributed._EXIT_GRACE >= 0.05


def test_one_all_reduce_of_terms_and_flags_needs_cpu_values():
    with pytest.raises(ValueError, match="mean_and_any reduces CPU values; got values on meta"):
        distributed.mean_and_any(torch.zeros(2, device="meta"), [True])
