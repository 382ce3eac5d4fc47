"""The small-scale reproduction: grid semantics, aggregation, a real tiny run on Fashion-MNIST, resume."""

import dataclasses
import json
import os

import pytest

from evonorm.data import fashion_mnist as fm
from evonorm.experiments import reproduction as R
from evonorm.experiments import reproduction_report as RR

HAVE_DATA = all(os.path.isfile(os.path.join(fm.data_dir(), name))
                for split in fm.FILES.values() for name in split[:2])


def test_cells_scale_lr_linearly_keep_images_seen_and_share_cells_across_suites():
    config = R.ReproConfig(seeds=(0, 1))
    cells = R.cells(config)
    batch = [c for c in cells if c.arch == "resnet" and c.layer == "evonorm_s0" and c.seed == 0]
    assert {c.batch_size: (c.steps, c.lr) for c in batch} == {
        128: (200, 0.1), 16: (1600, 0.0125), 4: (6400, 0.003125)}
    assert all(c.warmup_steps == int(0.05 * c.steps) for c in cells)
    # The ablation's B0 row and the batch sweep's 128 column are the layers suite's cells: run once.
    n_layers, n_batch, n_ablation = 6 * 3 * 2, 3 * 3 * 2, 5 * 2
    shared = 3 * 2 + 1 * 2  # batch 128 of bn_relu/gn_relu/evonorm_s0, and B0, on resnet, 2 seeds
    assert len(cells) == len(set(cells)) == n_layers + n_batch + n_ablation - shared
    assert len({c.key() for c in cells}) == len(cells)


@pytest.mark.parametrize("change, message", [
    (dict(suites=("tables",)), "unknown suite"),
    (dict(seeds=(0, 0)), "without duplicates"),
    (dict(examples=30), "fewer than 10 steps"),
    (dict(width=0.0), "width must be > 0"),
    (dict(jobs=-1), "jobs must be >= 0"),
])
def test_bad_settings_are_rejected_before_training(change, message):
    with pytest.raises(ValueError, match=message):
        R.ReproConfig(**change).validate()


def _record(arch, layer, batch, seed, acc, diverged=False):
    cell = R.Cell(arch=arch, layer=layer, batch_size=batch, seed=seed, steps=10, lr=0.1, weight_decay=0.0,
                  warmup_steps=0, width=1.0, group_size=4, eval_examples=0)
    return {"cell": dataclasses.asdict(cell), "test_acc": None if diverged else acc, "diverged": diverged,
            "wall_time_s": 1.0, "params": 7}


def test_aggregate_is_mean_and_sample_std_and_counts_diverged_runs_at_chance():
    agg = RR.aggregate([_record("resnet", "bn_relu", 128, 0, 0.8), _record("resnet", "bn_relu", 128, 1, 0.9),
                        _record("resnet", "frn", 128, 0, 0.7), _record("resnet", "frn", 128, 1, 0, True)])
    bn, frn = agg[("resnet", "bn_relu", 128)], agg[("resnet", "frn", 128)]
    assert bn["mean"] == pytest.approx(0.85) and bn["std"] == pytest.approx(0.0707107, rel=1e-5)
    assert bn["n"] == 2 and bn["diverged"] == 0
    assert frn["accs"] == [0.7, 0.1] and frn["diverged"] == 1 and frn["mean"] == pytest.approx(0.4)


@pytest.fixture()
def tiny_suite(monkeypatch):
    suite = R.Suite("tiny", "Tiny check", "none", ("resnet",), ("bn_relu", "evonorm_s0"), (32, 8))
    monkeypatch.setitem(R.SUITES, "tiny", suite)
    return suite


@pytest.mark.skipif(not HAVE_DATA, reason="Fashion-MNIST not installed")
def test_tiny_run_trains_writes_results_and_resumes(tiny_suite, tmp_path):
    config = R.ReproConfig(suites=("tiny",), seeds=(0, 1), examples=320, width=0.25, eval_examples=200,
                           workdir=str(tmp_path))
    lines = []
    summary = R.run(config, command="pytest tiny", log=lines.append)
    assert len(summary["cells"]) == 8 and all(not r["diverged"] for r in summary["cells"])
    steps = {(r["cell"]["batch_size"]): r["cell"]["steps"] for r in summary["cells"]}
    assert steps == {32: 10, 8: 40}
    assert all(0.0 <= r["test_acc"] <= 1.0 for r in summary["cells"])
    assert sorted(os.listdir(tmp_path)) == ["cells", "results.json", "results.md", "tiny.png"]
    md = (tmp_path / "results.md").read_text()
    assert "| evonorm_s0 |" in md and "batch 8 (40 steps, lr 0.00625)" in md and "pytest tiny" in md
    assert " ± " in md and "200 Fashion-MNIST test images" in md
    assert (tmp_path / "tiny.png").read_bytes()[:4] == b"\x89PNG"
    assert any("ETA" in line for line in lines)

    # Kill-and-resume: drop one cell's file and corrupt another; only those two are retrained.
    files = sorted((tmp_path / "cells").iterdir())
    files[0].unlink()
    files[1].write_text("{truncated")
    lines.clear()
    again = R.run(config, command="pytest tiny", log=lines.append)
    assert "6 already finished" in lines[0] and sum("test acc" in line for line in lines) == 2
    before = {json.dumps(r["cell"], sort_keys=True): r["test_acc"] for r in summary["cells"]}
    after = {json.dumps(r["cell"], sort_keys=True): r["test_acc"] for r in again["cells"]}
    assert before == after  # same seed, same result: the retrained cells are bit-identical


@pytest.mark.skipif(not HAVE_DATA, reason="Fashion-MNIST not installed")
def test_parallel_jobs_give_the_same_results_as_one_process(tiny_suite, tmp_path):
    base = dict(suites=("tiny",), seeds=(0,), examples=320, width=0.25, eval_examples=200)
    one = R.run(R.ReproConfig(workdir=str(tmp_path / "one"), **base), log=lambda _: None)
    two = R.run(R.ReproConfig(workdir=str(tmp_path / "two"), jobs=2, **base), log=lambda _: None)
    accs = lambda s: {json.dumps(r["cell"], sort_keys=True): r["test_acc"] for r in s["cells"]}  # noqa: E731
    assert accs(one).keys() == accs(two).keys()
    for key, acc in accs(one).items():  # other thread counts may reorder float sums: not bit-equal
        assert accs(two)[key] == pytest.approx(acc, abs=0.03)


def test_missing_data_fails_fast_with_the_install_command(tmp_path):
    config = R.ReproConfig(data_dir=str(tmp_path), workdir=str(tmp_path / "w"))
    with pytest.raises(fm.FashionMNISTNotFoundError, match="dataset-fashion-mnist"):
        R.run(config, log=lambda _: None)
    assert not (tmp_path / "w").exists()


def _children(pid):
    """Pids of the live processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status", encoding="utf-8") as f:
                    fields = dict(line.split(":\t", 1) for line in f if ":\t" in line)
            except OSError:
                continue
            if fields.get("PPid", "").strip() == str(pid) and fields.get("State", "")[:1] != "Z":
                out.append(int(entry))
    return out


@pytest.mark.skipif(not HAVE_DATA or not os.path.isdir("/proc"), reason="needs Fashion-MNIST and Linux")
def test_killing_the_driver_leaves_no_orphan_workers(tmp_path, process_alive):
    import signal
    import subprocess
    import sys
    import time

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    driver = subprocess.Popen(
        [sys.executable, os.path.join(repo, "scripts", "reproduce.py"), "--suites=ablation", "--seeds=0,1",
         "--examples=12800", "--width=0.25", "--eval_examples=100", "--jobs=2", f"--workdir={tmp_path}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        workers = []
        while time.time() < deadline and len(workers) < 2:
            # spawn's resource tracker is a child too; the workers are the ones that import TensorFlow
            workers = [p for p in _children(driver.pid) if "resource_tracker" not in
                       open(f"/proc/{p}/cmdline", "rb").read().decode(errors="replace")]
            time.sleep(0.5)
        assert len(workers) == 2, "the pool did not start two workers"
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
        deadline = time.time() + 30
        while time.time() < deadline and any(process_alive(p) for p in workers):
            time.sleep(0.5)
        assert not any(process_alive(p) for p in workers), "workers outlived the killed driver"
    finally:
        if driver.poll() is None:
            driver.kill()


def test_mobile_proxy_cells_have_a_revised_cache_key():
    from evonorm.experiments.reproduction import Cell

    common = dict(batch_size=128, seed=0, steps=200, lr=0.1, weight_decay=5e-4, warmup_steps=10,
                  width=1.0, group_size=4, eval_examples=0)
    assert Cell("efficientnet", "evonorm_b0", **common).key().endswith("_p2")
    assert Cell("mobilenetv2", "evonorm_s0", **common).key().endswith("_p2")
    assert Cell("resnet", "evonorm_b0", **common).key().endswith("_e0")
