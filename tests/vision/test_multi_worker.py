"""``--strategy=multi_worker_mirrored`` for real: two evonorm-train worker processes on 127.0.0.1.

What a user of a multi-worker cluster relies on, checked end to end on this CPU:
  * both workers finish, the global batch split between them (each input pipeline reads half);
  * only the chief writes ``model_dir`` (checkpoints, params.yaml, summary) and no scratch is left;
  * a resume continues at the checkpointed step on every worker (Model Garden's runner crashed here);
  * a worker that never starts, or dies mid-run, makes the other fail with a clear message in time.
Synchronized batch statistics across workers are checked in ``tests/layers/test_distributed.py``.
"""

import glob
import json
import os
import signal
import subprocess
import tempfile
import time

import pytest

from train_helpers import FAST, TINY, cli_env, command, data_yaml, needs_fashion_mnist  # noqa: F401

pytestmark = needs_fashion_mnist
SCRATCH = os.path.join(tempfile.gettempdir(), "evonorm-worker-ckpt-*")


def tf_config(ports, index):
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


def launch(ports, indices, args, log_dir):
    """Starts one evonorm-train worker per index; stderr goes to ``log_dir/worker<i>.err``."""
    procs = []
    for i in indices:
        err = open(os.path.join(log_dir, f"worker{i}.err"), "w")  # noqa: SIM115 - closed by the caller
        procs.append(subprocess.Popen(
            command() + ["--strategy=multi_worker_mirrored"] + list(args), stdout=subprocess.PIPE,
            stderr=err, text=True, env=cli_env(TF_CONFIG=tf_config(ports, i))))
        procs[-1].err_file = err
    return procs


def finish(procs, timeout):
    """(return code, stdout, stderr) per worker; kills every worker still alive at the timeout."""
    deadline, results = time.time() + timeout, []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            out, _ = proc.communicate()
        proc.err_file.close()
        with open(proc.err_file.name) as f:
            results.append((proc.returncode, out, f.read()))
    return results


def summaries(results):
    for code, _, err in results:
        assert code == 0, err[-3000:]
    return [json.loads(out.strip().splitlines()[-1]) for _, out, _ in results]


def train_args(model_dir, data_yaml, steps):
    return [f"--experiment={TINY}", "--mode=train", f"--model_dir={model_dir}", f"--config_file={data_yaml}",
            f"--params_override={FAST},trainer.train_steps={steps}"]


def test_two_workers_split_the_batch_checkpoint_on_the_chief_and_resume(tmp_path, data_yaml, free_ports):
    model_dir, scratch_before = str(tmp_path / "run"), set(glob.glob(SCRATCH))
    ports = free_ports(2)
    first = summaries(finish(launch(ports, [0, 1], train_args(model_dir, data_yaml, 8), tmp_path), 300))

    assert [s["worker"] for s in first] == ["worker 0", "worker 1"]
    assert [s["chief"] for s in first] == [True, False]
    for index, s in enumerate(first):
        assert s["replicas"] == 2 and s["checkpoint_step"] == 8
        (pipeline,) = [p for p in s["inputs"] if p["is_training"]]
        # The global batch of 16 is split: each worker's pipeline reads its own 8 (static shape).
        assert pipeline == {"is_training": True, "global_batch": 16, "pipeline_id": index,
                            "num_pipelines": 2, "replicas": 2, "batch_shape": [8]}
    # Synchronous training: both workers end with the same loss on the same (global) metrics.
    assert first[0]["train"]["training_loss"] == pytest.approx(first[1]["train"]["training_loss"])
    files = sorted(os.listdir(model_dir))
    assert "ckpt-8.index" in files and "params.yaml" in files and "evonorm_train_summary.json" in files
    with open(os.path.join(model_dir, "evonorm_train_summary.json")) as f:
        assert json.load(f)["worker"] == "worker 0"  # written by the chief only
    assert set(glob.glob(SCRATCH)) == scratch_before  # the non-chief's scratch checkpoints are removed

    ports = free_ports(2)
    results = finish(launch(ports, [0, 1], train_args(model_dir, data_yaml, 12), tmp_path), 300)
    second = summaries(results)
    assert [s["checkpoint_step"] for s in second] == [12, 12]
    for _, _, err in results:  # every worker resumed at step 8, not from scratch
        assert "step:      8 | training until step 12" in err
    assert "ckpt-12.index" in os.listdir(model_dir)


def test_a_worker_that_never_starts_fails_the_other_within_the_timeout(tmp_path, data_yaml, free_ports):
    start = time.time()
    (code, _, err), = finish(launch(free_ports(2), [0], train_args(str(tmp_path / "run"), data_yaml, 8)
                                    + ["--worker_timeout=10"], tmp_path), 120)
    assert code != 0 and time.time() - start < 90
    assert "worker 0 waited 10 s (--worker_timeout) for the other workers" in err
    assert not os.path.exists(tmp_path / "run")  # nothing was written before the cluster formed


def test_a_worker_killed_mid_run_makes_the_other_fail_with_a_clear_message(tmp_path, data_yaml, free_ports):
    ports = free_ports(2)
    procs = launch(ports, [0, 1], train_args(str(tmp_path / "run"), data_yaml, 100000), tmp_path)
    log1 = os.path.join(tmp_path, "worker1.err")
    deadline = time.time() + 180
    while time.time() < deadline and "step:      4 " not in open(log1).read():
        assert procs[1].poll() is None, open(log1).read()[-3000:]
        time.sleep(0.5)
    procs[1].send_signal(signal.SIGKILL)
    killed = time.time()
    (code0, _, err0), _ = finish(procs, 150)
    assert code0 == 1, err0[-3000:]
    assert time.time() - killed < 120
    assert "evonorm-train: error: worker 0: multi-worker training stopped because worker 1" in err0
    assert "training resumes from the chief's last checkpoint" in err0
