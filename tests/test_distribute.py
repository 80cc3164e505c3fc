"""tf.distribute strategies, mixed precision and XLA on CPU.

Several replicas need TensorFlow's devices configured before it starts, so those tests run
in fresh processes: MirroredStrategy over 2 logical CPUs against the default strategy (same
global batch, dropout off: the same losses), and MultiWorkerMirroredStrategy with two worker
processes on 127.0.0.1 that checkpoint, are killed, resume and end where one device does.
"""

import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import ROOT
from helpers import counting_dataset
from helpers import error_line
from helpers import run_script
from par import runs
from par.config import ModelConfig
from par.config import TrainConfig
from par.train import evaluate
from par.train import precision
from par.train import trainer

MODEL = ModelConfig(
  d_model=16, n_heads=2, d_ffn=24, n_blocks=3, mem_len=4, cutoffs=(20,), dropout=0.0
)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
  """A counting-text dataset: 60 pieces, 4 lanes x 8 tokens, train/valid/test."""
  return counting_dataset(tmp_path_factory.mktemp("data"))


def _config(data_dir, **changes):
  model_changes = {k: changes.pop(k) for k in list(changes) if hasattr(MODEL, k)}
  base = TrainConfig(
    model=dataclasses.replace(MODEL, **model_changes),
    data_dir=str(data_dir),
    train_steps=12,
    max_lr=3e-3,
    warmup_steps=3,
    steps_per_loop=4,
    log_every=1,
    checkpoint_every=12,
    plot_every=0,
    plots=False,
    seed=3,
  )
  return dataclasses.replace(base, **changes)


def _step_losses(model_dir):
  log = (model_dir / "training.log").read_text()
  return [float(x) for x in re.findall(r"step \d+/\d+ epoch \d+ \| loss ([0-9.]+)", log)]


# --- mixed precision and XLA, in this process ------------------------------------------------


def test_loss_scale_skips_overflowing_steps_and_grows_after_finite_ones():
  scale = precision.LossScale(initial=8.0, growth_steps=3)
  applied = tf.Variable(0.0)

  @tf.function
  def step(gradient):
    grads, finite = scale.unscale([gradient])
    scale.apply_if_finite(finite, lambda g: applied.assign_add(g[0][0]), args=(grads,))
    return grads[0]

  assert float(step(tf.constant([16.0]))[0]) == 2.0  # unscaled by 8
  assert (float(applied.numpy()), float(scale.scale.numpy())) == (2.0, 8.0)
  step(tf.constant([np.inf]))
  assert (float(applied.numpy()), float(scale.scale.numpy())) == (2.0, 4.0)  # skipped
  step(tf.constant([np.nan]))
  assert float(scale.scale.numpy()) == 2.0
  for _ in range(2):
    step(tf.constant([2.0]))
  assert (float(applied.numpy()), float(scale.scale.numpy())) == (4.0, 2.0)
  step(tf.constant([2.0]))  # the third finite step in a row doubles the scale
  assert (float(applied.numpy()), float(scale.scale.numpy())) == (5.0, 4.0)
  assert int(scale.good_steps.numpy()) == 0


@pytest.fixture(scope="session")
def float32_run(tmp_path_factory, data_dir):
  model_dir = tmp_path_factory.mktemp("float32")
  return model_dir, trainer.train_and_evaluate(_config(data_dir), model_dir)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains_close_to_float32(tmp_path, data_dir, float32_run, policy):
  reference_dir, reference = float32_run
  results = trainer.train_and_evaluate(_config(data_dir, mixed_precision=policy), tmp_path)
  assert keras.mixed_precision.global_policy().name == "float32"  # restored
  losses, expected = _step_losses(tmp_path), _step_losses(reference_dir)
  assert len(losses) == len(expected) == 12 and all(np.isfinite(losses))
  # 16-bit activations: close to float32, not equal (float16 keeps 11 bits of mantissa,
  # bfloat16 8). The first step's loss is the same weights' forward pass; later ones drift
  # apart as the updates differ a little at a high learning rate.
  first, later = (2e-3, 0.05) if policy == "mixed_float16" else (1e-2, 0.08)
  assert losses[0] == pytest.approx(expected[0], rel=first)
  np.testing.assert_allclose(losses, expected, rtol=later)
  for split in ("valid", "test"):
    assert results[split]["loss"] == pytest.approx(reference[split]["loss"], rel=0.03)
  variables = dict(tf.train.list_variables(str(tmp_path / "checkpoints")))
  assert any("loss_scale" in name for name in variables) == (policy == "mixed_float16")
  assert policy in (tmp_path / "training.log").read_text()
  # Evaluation loads the run's checkpoint in float32: the same weights, a close loss.
  model, _ = runs.load_model(runs.read_run(tmp_path), "checkpoint")
  assert model.compute_dtype == "float32"
  result, _, _ = evaluate.evaluate_split(model, data_dir, "valid", MODEL.mem_len)
  assert result.loss == pytest.approx(results["valid"]["loss"], rel=0.01)


def test_float16_overflow_is_skipped_not_fatal(tmp_path, data_dir):
  # A first scale of 2^24 overflows float16's gradients: those steps are skipped and the
  # scale halves until the gradients fit; then training goes on.
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(precision.LossScale.__init__, "__defaults__", (2.0**24, 2000))
    results = trainer.train_and_evaluate(
      _config(data_dir, mixed_precision="mixed_float16", train_steps=30), tmp_path
    )
  log = (tmp_path / "training.log").read_text()
  skipped = [int(n) for n in re.findall(r"loss scaling: (\d+) of \d+ steps skipped", log)]
  scales = [float(x) for x in re.findall(r"scale now ([0-9.e+]+)", log)]
  assert 3 <= sum(skipped) < 20 and scales == sorted(scales, reverse=True)
  norms = [float(x) for x in re.findall(r"grad norm ([0-9.]+)", log)]
  assert norms[0] == 0.0 and sum(n > 0 for n in norms) >= 15  # skipped, then applied
  assert np.isfinite(results["valid"]["loss"])


def test_jit_compiled_step_gives_the_same_losses(tmp_path, data_dir):
  # Nothing random (a fixed architecture, no dropout): the XLA-compiled step computes what
  # the traced one does.
  fixed = {"architecture": "sfs", "train_steps": 8, "checkpoint_every": 8}
  eager = trainer.train_and_evaluate(_config(data_dir, **fixed), tmp_path / "eager")
  jit = trainer.train_and_evaluate(_config(data_dir, jit_compile=True, **fixed), tmp_path / "jit")
  losses = _step_losses(tmp_path / "jit")
  assert len(losses) == 8
  np.testing.assert_allclose(losses, _step_losses(tmp_path / "eager"), rtol=1e-4)
  assert jit["valid"]["nll"] == pytest.approx(eager["valid"]["nll"], rel=1e-4)


def test_jit_compiled_search_trains_close_to_the_traced_one(tmp_path, data_dir, float32_run):
  # XLA lowers stateless random ops its own way: the same (seed, step) draws other Gumbel
  # noise under jit, so the search samples other architectures; it must still train as well.
  _reference_dir, reference = float32_run
  results = trainer.train_and_evaluate(_config(data_dir, jit_compile=True), tmp_path)
  losses = _step_losses(tmp_path)
  assert len(losses) == 12 and all(np.isfinite(losses))
  assert results["valid"]["loss"] == pytest.approx(reference["valid"]["loss"], rel=0.05)


# --- several replicas, in fresh processes ----------------------------------------------------

_MIRRORED = textwrap.dedent("""
    import dataclasses, json, re, sys
    import numpy as np
    from par import cli
    cli.import_tensorflow()
    import tensorflow as tf
    from par.train import distribute
    from par.data import records
    from par.train import trainer
    from par.config import ModelConfig, TrainConfig
    from par.model.dropout import Dropout
    from par.model.memory import Memory
    from par.model.par_model import ParModel

    data_dir, out = sys.argv[1], sys.argv[2]
    distribute.split_cpu(2)
    mirrored = distribute.make_strategy("mirrored")
    default = distribute.make_strategy("default")
    report = {"replicas": mirrored.num_replicas_in_sync}

    # Lanes: replica r sees lanes [2r, 2r + 2) of every record, record after record.
    whole = list(records.load_dataset(data_dir, "train").take(6))
    it = iter(distribute.lanes(mirrored, lambda: records.load_dataset(data_dir, "train"), 4))
    same = []
    for record in whole:
      parts = mirrored.experimental_local_results(next(it))  # (inputs, targets) per replica
      for r, (inputs, targets) in enumerate(parts):
        same.append(np.array_equal(inputs.numpy(), record[0].numpy()[2 * r:2 * r + 2]))
        same.append(np.array_equal(targets.numpy(), record[1].numpy()[2 * r:2 * r + 2]))
    report["lanes"] = len(same) == 24 and all(same)
    # A distributed iterator left half-read keeps the interpreter from exiting for tens of
    # seconds while another process is busy (seen: 43 s): let it go now.
    del it, parts, inputs, targets

    # Memories: scatter then gather gives back every lane in order.
    memory = Memory((tf.reshape(tf.range(4 * 3 * 2, dtype=tf.float32), [4, 3, 2]), ()),
                    tf.constant(3))
    back = distribute.gather_memory(mirrored, distribute.scatter_memory(mirrored, memory))
    report["memory"] = bool(np.array_equal(back.states[0].numpy(), memory.states[0].numpy())
                            and int(back.length) == 3)

    # Dropout: each replica draws its own mask.
    with mirrored.scope():
      layer = Dropout(0.5, seed=1)
    masks = mirrored.run(tf.function(lambda: layer(tf.ones([64]), training=True)))
    a, b = (m.numpy() for m in mirrored.experimental_local_results(masks))
    report["dropout_differs"] = bool(not np.array_equal(a, b))

    # Training: a search whose gradient is clipped (norms are ~5, the clip 0.05 binds), so
    # the mirrored run must clip the global gradient as one device does, and whose
    # architecture trains on held-out lanes (--arch_split 0.5: lanes 1 and 3, one on each
    # replica). (Unclipped several replicas are compared with one device by the multi-worker
    # test; a search without a split shares all but the split's masks with this one.)
    model = ModelConfig(d_model=16, n_heads=2, d_ffn=24, n_blocks=3, mem_len=4,
                        cutoffs=(20,), dropout=0.0)
    config = TrainConfig(model=model, data_dir=data_dir, train_steps=10, max_lr=3e-3,
                         warmup_steps=3, steps_per_loop=3, log_every=1, checkpoint_every=4,
                         plot_every=0, plots=False, seed=3, clip_norm=0.05, arch_split=0.5,
                         arch_lr=0.05)
    for label, strategy in (("default", default), ("mirrored", mirrored)):
      model_dir = f"{out}/{label}"
      results = trainer.train_and_evaluate(config, model_dir, strategy)
      log = open(model_dir + "/training.log").read()
      report[label] = {"losses": [float(x) for x in re.findall(r"\\| loss ([0-9.]+)", log)],
                       "norms": [float(x) for x in re.findall(r"grad norm ([0-9.]+)", log)],
                       "arch": [float(x) for x in re.findall(r"arch loss ([0-9.]+)", log)],
                       "p": json.load(open(model_dir + "/architecture.json"))["probabilities"],
                       "valid": results["valid"]["nll"], "test": results["test"]["nll"]}
    # Resuming under another replica count: from the mirrored run's step-4 checkpoint on one
    # device, to the same end. (Scattering a checkpoint's memories over replicas is checked
    # above and by the multi-worker test.)
    import shutil
    for source, strategy in (("mirrored", default),):
      model_dir = f"{out}/resumed-from-{source}"
      shutil.copytree(f"{out}/{source}", model_dir)
      with open(model_dir + "/checkpoints/checkpoint", "w") as state:  # back to step 4
        state.write('model_checkpoint_path: "ckpt-4"\\nall_model_checkpoint_paths: "ckpt-4"\\n')
      results = trainer.train_and_evaluate(config, model_dir, strategy)
      report[f"resumed-from-{source}"] = {"log": "resumed from" in open(
          model_dir + "/training.log").read(), "valid": results["valid"]["nll"],
          "test": results["test"]["nll"]}
    print(json.dumps(report))
""")


@pytest.mark.slow
def test_mirrored_over_two_cpus_equals_one_device(tmp_path, data_dir):
  result = subprocess.run(
    [sys.executable, "-c", _MIRRORED, str(data_dir), str(tmp_path)],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report["replicas"] == 2
  assert report["lanes"] and report["memory"] and report["dropout_differs"]
  one, two = report["default"], report["mirrored"]
  assert len(one["losses"]) == 10 and min(one["norms"]) > 1.0  # the clip binds every step
  np.testing.assert_allclose(two["losses"], one["losses"], rtol=1e-4)
  np.testing.assert_allclose(two["norms"], one["norms"], rtol=1e-3)
  for split in ("valid", "test"):
    assert two[split] == pytest.approx(one[split], rel=1e-4)
  assert len(one["arch"]) == 10 and one["arch"] != one["losses"]
  np.testing.assert_allclose(two["arch"], one["arch"], rtol=1e-4)
  np.testing.assert_allclose(two["p"], one["p"], atol=1e-5)
  assert np.abs(np.array(one["p"]) - 1 / 3).max() > 1e-3  # the held-out lanes moved them
  resumed = report["resumed-from-mirrored"]
  assert resumed["log"]
  for split in ("valid", "test"):
    assert resumed[split] == pytest.approx(one[split], rel=1e-4)


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


WORKER_FLAGS = [
  "--d_model=16",
  "--n_heads=2",
  "--d_ffn=24",
  "--n_blocks=3",
  "--mem_len=4",
  "--cutoffs=20",
  "--dropout=0",
  "--train_steps=24",
  "--max_lr=3e-3",
  "--warmup_steps=3",
  "--steps_per_loop=2",
  "--log_every=4",
  "--checkpoint_every=4",
  "--plot_every=0",
  "--noplots",
  "--seed=3",
  "--architecture=sfs",
]


def _start_workers(data_dir, model_dir, ports):
  workers = []
  for index in range(2):
    tf_config = {
      "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
      "task": {"type": "worker", "index": index},
    }
    env = dict(os.environ, TF_CONFIG=json.dumps(tf_config))
    workers.append(
      subprocess.Popen(
        [
          sys.executable,
          "scripts/train.py",
          f"--data_dir={data_dir}",
          f"--model_dir={model_dir}",
          "--strategy=multi_worker",
          *WORKER_FLAGS,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
      )
    )
  return workers


@pytest.mark.slow
def test_multi_worker_checkpoints_from_the_chief_and_resumes(tmp_path, data_dir):
  reference = tmp_path / "one_device"
  result = run_script(
    "scripts/train.py", f"--data_dir={data_dir}", f"--model_dir={reference}", *WORKER_FLAGS
  )
  assert result.returncode == 0, result.stderr[-3000:]

  model_dir = tmp_path / "workers"
  ports = _free_ports(2)
  workers = _start_workers(data_dir, model_dir, ports)
  deadline = time.time() + 240
  while time.time() < deadline and not tf.train.latest_checkpoint(str(model_dir / "checkpoints")):
    if any(w.poll() is not None for w in workers):
      break
    time.sleep(0.01)
  for worker in workers:  # Kill both: a worker alone would wait for the other forever.
    worker.send_signal(signal.SIGKILL)
  outputs = [w.communicate(timeout=60) for w in workers]
  saved = tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
  assert saved, outputs[0][1][-3000:]
  resumed_from = int(saved.split("-")[-1])
  assert resumed_from < 24, "the run finished before it could be killed"

  workers = _start_workers(data_dir, model_dir, _free_ports(2))
  outputs = [w.communicate(timeout=300) for w in workers]
  for worker, (_, stderr) in zip(workers, outputs):
    assert worker.returncode == 0, stderr[-3000:]
  assert f"resumed from {saved}" in outputs[1][1]  # the worker resumed from the chief's
  assert "2 replicas" in (model_dir / "training.log").read_text()
  # Only the chief writes the run directory; the workers' scratch copies are gone.
  assert sorted(p.name for p in model_dir.iterdir() if p.name.startswith("checkpoints")) == [
    "checkpoints"
  ]
  got = json.loads((model_dir / "results.json").read_text())
  expected = json.loads((reference / "results.json").read_text())
  for split in ("valid", "test"):
    assert got[split]["nll"] == pytest.approx(expected[split]["nll"], rel=1e-4)
  # The logged gradient norm is the global batch's, as one device's, not a replica's share.
  norms = _logged_norms(model_dir / "training.log")
  reference_norms = _logged_norms(reference / "training.log")
  assert len(norms) >= 3 and set(norms) <= set(reference_norms)
  for step, norm in norms.items():
    assert norm == pytest.approx(reference_norms[step], abs=2e-3), step


def _logged_norms(log):
  """{step: gradient norm} of a training.log (the last line of each step: a resumed run
  logs the steps after its checkpoint again)."""
  found = re.findall(r"step (\d+)/\d+ .*\| grad norm ([0-9.]+)", log.read_text())
  return {int(step): float(norm) for step, norm in found}


@pytest.mark.slow
def test_strategy_flag_errors_are_one_line(tmp_path, data_dir):
  base = [
    "scripts/train.py",
    f"--data_dir={data_dir}",
    f"--model_dir={tmp_path / 'r'}",
    "--train_steps=2",
    "--cutoffs=20",
  ]
  result = run_script(*base, "--strategy=multi_worker", env={"TF_CONFIG": ""})
  assert "needs TF_CONFIG" in error_line(result)
  result = run_script(*base, "--strategy=multi_worker", env={"TF_CONFIG": "{not json"})
  assert "TF_CONFIG is not JSON" in error_line(result)
  assert "--tpu goes with" in error_line(run_script(*base, "--tpu=grpc://1.2.3.4:8470"))
  assert "--cpu_devices" in error_line(run_script(*base, "--cpu_devices=2"))
  # 4 lanes do not split into 3 replicas.
  result = run_script(*base, "--strategy=mirrored", "--cpu_devices=3")
  assert "does not split into 3 replicas" in error_line(result)
  assert not (tmp_path / "r").exists()
