"""Multi-host data parallelism on one machine: 2 CPU processes (gloo collectives) over a global
mesh give the same losses as 1 process with 2 devices and the same global batch."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import jax
    process_id, num_processes = int(sys.argv[1]), int(sys.argv[2])
    if num_processes > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=sys.argv[3], num_processes=num_processes,
                                   process_id=process_id)
    import numpy as np
    from lowres.models.architecture import ModelConfig
    from lowres.models import partitioning
    from lowres.training.optimizer import OptimizerConfig, make_optimizer
    from lowres.training.trainer import _agreed_seed, compile_train_step, create_sharded_state
    from lowres.training.resume import batch_fingerprint, gather_fingerprints
    from tests.test_training import fixed_batch

    assert jax.device_count() == 2 and jax.process_count() == num_processes
    cfg = partitioning.MeshConfig(data=-1)
    mesh = partitioning.create_mesh(cfg)
    arch = ModelConfig(architecture="decoder_only", preset="tiny").resolve(vocab_size=64)
    optimizer, schedule = make_optimizer(OptimizerConfig(learning_rate=1e-2, warmup_steps=0), 10)
    sharded = create_sharded_state(arch, optimizer, mesh, cfg.rules, seed=0)
    step = compile_train_step(sharded, optimizer, schedule, 1e-4, mesh, cfg.rules)
    sharding = partitioning.batch_sharding(mesh, cfg.rules)
    seed = _agreed_seed(0)
    state, losses = sharded.state, []
    with jax.set_mesh(mesh):
        for i in range(3):
            full = {k: v for k, v in fixed_batch(batch_size=8, seed=i).items() if not k.startswith("encoder")}
            rows = 8 // num_processes
            local = {k: v[process_id * rows:(process_id + 1) * rows] for k, v in full.items()}
            batch = {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}
            state, metrics = step(state, batch)
            losses.append(float(metrics["loss"]))
    prints = gather_fingerprints(batch_fingerprint(local))
    if jax.process_index() == 0:
        print("RESULT" + json.dumps({"losses": losses, "fingerprints": prints, "seed": seed}))
    if num_processes > 1:  # leave together before exit, as `lowres train --distributed` does
        jax.distributed.shutdown()
    """
)


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_one_process_with_the_same_global_batch():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    address = f"localhost:{_free_port()}"
    two_env = dict(env, XLA_FLAGS="--xla_force_host_platform_device_count=1")
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, str(i), "2", address], cwd=ROOT, env=two_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    one = subprocess.run([sys.executable, "-c", SCRIPT, "0", "1"], cwd=ROOT, capture_output=True, text=True,
                         env=dict(env, XLA_FLAGS="--xla_force_host_platform_device_count=2"), timeout=900)
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert one.returncode == 0, one.stderr[-3000:]

    def result(stdout):
        return json.loads(next(l for l in stdout.splitlines() if l.startswith("RESULT"))[len("RESULT"):])

    two, single = result(outs[0][0]), result(one.stdout)
    np.testing.assert_allclose(two["losses"], single["losses"], rtol=1e-6)
    assert len(two["fingerprints"]) == 2 and two["fingerprints"][0] != two["fingerprints"][1]
    assert two["seed"] == 0


def _losses(model_dir: Path) -> list[float]:
    records = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == sorted(set(steps)), f"metrics.jsonl repeats or reorders steps: {steps}"  # one writer
    return [r["loss"] for r in records if "loss" in r]


# Quickstart-shaped (the mini encoder-decoder, r_and_s with translation) on three languages, 12 steps.
E2E = ["--gin_file=quickstart.gin", "--no_progress", '--gin.DataConfig.languages=["eng","pan","yor"]',
       "--gin.TrainConfig.num_steps=12", "--gin.TrainConfig.log_every=1", "--gin.CheckpointConfig.save_interval_steps=4",
       "--gin.DataConfig.data_shards=2", "--gin.DataConfig.batch_size=4"]  # fmt: skip


def _hosts(model_dir: Path, env: dict, port: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-m", "lowres.cli", "train", "--distributed",
                              f"--coordinator_address=localhost:{port}", "--num_processes=2", f"--process_id={i}",
                              f"--model_dir={model_dir}", *E2E], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for i in range(2)]  # fmt: skip


@pytest.mark.slow
def test_lowres_train_distributed_two_processes_killed_and_restarted_equals_one_process(tmp_path, cache_dir):
    """`lowres train --distributed` with 2 CPU processes: each host builds only its data shard, only
    process 0 writes the run's files; one process is killed after a checkpoint, both restart, and the
    losses equal a one-process run over the same global batches (DataConfig.data_shards=2)."""
    import signal
    import time

    env = dict(os.environ, JAX_PLATFORMS="cpu", LOWRES_CACHE_DIR=str(cache_dir))
    one = subprocess.run([sys.executable, "-m", "lowres.cli", "train", f"--model_dir={tmp_path / 'one'}", *E2E],
                         cwd=ROOT, env=dict(env, XLA_FLAGS="--xla_force_host_platform_device_count=2"),
                         capture_output=True, text=True, timeout=900)  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]

    two_env = dict(env, XLA_FLAGS="--xla_force_host_platform_device_count=1")
    run = tmp_path / "two"
    hosts = _hosts(run, two_env, _free_port())
    deadline = time.time() + 600
    while not (run / "checkpoints" / "4" / "commit_success.txt").exists():
        assert time.time() < deadline and all(h.poll() is None for h in hosts), \
            [h.communicate()[1][-2000:] for h in hosts]  # fmt: skip
        time.sleep(0.05)
    hosts[1].send_signal(signal.SIGKILL)  # a host dies after checkpoint 4; the job is then torn down
    time.sleep(0.5)
    hosts[0].send_signal(signal.SIGKILL)
    for host in hosts:
        host.communicate(timeout=60)
    assert (run / "checkpoints" / "4").is_dir()

    hosts = _hosts(run, two_env, _free_port())
    outs = [host.communicate(timeout=900) for host in hosts]
    for host, (out, err) in zip(hosts, outs, strict=True):
        assert host.returncode == 0, err[-3000:]
    assert "resumed from" in outs[0][0]
    assert "trained steps" not in outs[1][0]  # process 1 prints nothing of its own
    for index, (_, err) in enumerate(outs):  # each host tokenized and read only its own shard
        assert f"-host{index}of2-" in err and f"-host{1 - index}of2-" not in err, err[-2000:]
    np.testing.assert_allclose(_losses(run), _losses(tmp_path / "one"), rtol=1e-6)
    assert len(_losses(run)) == 12
