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
