"""The small-scale Table 6 report: peak (best-FID) evaluation per run, median and best over seeds."""

import json
import os

import pytest

from evonorm.gan import table6


def _write_run(out, layer, seed, records):
    workdir = table6.run_dir(out, layer, seed)
    os.makedirs(workdir)
    with open(os.path.join(workdir, "metrics.json"), "w") as f:
        json.dump(records, f)


def _record(step, fid, is_, kid=0.1):
    return {"step": step, "fid": fid, "is": is_, "kid": kid, "feature_network": "fashion_mnist_classifier"}


def test_peak_per_run_then_median_and_best_over_seeds(tmp_path):
    out = str(tmp_path)
    # Each run contributes its lowest-FID evaluation, with that evaluation's IS (not the run's best IS).
    _write_run(out, "evonorm_s0", 0, [_record(200, 50.0, 2.0), _record(400, 30.0, 3.0), _record(600, 40.0, 4.0)])
    _write_run(out, "evonorm_s0", 1, [_record(200, 20.0, 5.0)])
    _write_run(out, "evonorm_s0", 2, [_record(200, 60.0, 1.5)])
    table = table6.collect(["evonorm_s0", "bn_relu"], [0, 1, 2], out)
    row = table["evonorm_s0"]
    assert [r["step"] for r in row["runs"]] == [400, 200, 200]
    assert (row["fid_median"], row["fid_best"]) == (30.0, 20.0)
    assert (row["is_median"], row["is_best"]) == (3.0, 5.0)
    assert table["bn_relu"]["runs"] == [] and table["bn_relu"]["fid_median"] is None
    text = table6.markdown(table, [0, 1, 2], "python scripts/gan_table6.py", "test machine", "fashion_mnist_classifier")
    assert "| EvoNorm-S0 | 3.00 / 5.00 | 30.00 / 20.00 |" in text
    assert "104.64/113.96" in text and "6.86/6.26" in text  # the paper's Table 6 beside it
    assert "not Inception" in text


def test_finished_runs_are_skipped(tmp_path):
    config = table6.run_config("evonorm_s0", 1, "train_steps=40")
    assert config.seed == 1 and config.train_steps == 40
    workdir = tmp_path / "run"
    workdir.mkdir()
    assert not table6._finished(str(workdir), config)  # noqa: SLF001
    (workdir / "summary.json").write_text(json.dumps({"final_step": 40}))
    assert table6._finished(str(workdir), config)  # noqa: SLF001
    with pytest.raises(KeyError, match="unknown GAN config 'fmnist32_no_such_layer'"):
        table6.run_config("no_such_layer", 0)
