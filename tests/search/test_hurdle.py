"""The quality test's early-abort hurdle: stops chance-level candidates, spares good ones, off by default."""

import dataclasses

import numpy as np
import pytest

from evonorm.search.evaluator import Evaluator, EvaluatorConfig
from evonorm.search.graph import Graph
from evonorm.search.known_graphs import KNOWN_GRAPHS

pytest.importorskip("tensorflow")

TINY = EvaluatorConfig(archs=(("resnet", 0.25, None),), batch_size=32, quality_steps=40, stability_steps=3,
                       stability_batch=8, val_examples=256)
# Step 25 of 40: on this tiny proxy BN-ReLU is still at chance at step 10 (window mean 2.306) and
# 0.10 nats below the limit at step 25; the chance-level layer is 0.09 above it.
HURDLE = dataclasses.replace(TINY, hurdle_step=25)
# sigmoid(max(0, x^2)): passes the NumPy filters and the stability test, and trains at chance (loss
# 2.33 over steps 31-40 on the search's ResNet proxy, /work/shared/research/search_efficiency.md
# section 6; window mean 2.35 at step 25 here).
AT_CHANCE = Graph([("square", (0,)), ("max", (4, 1)), ("sigmoid", (5,))])
SEED = 3


def test_config_validates_the_hurdle_and_0_means_off():
    assert TINY.hurdle_step is None  # off by default
    assert dataclasses.replace(TINY, hurdle_step=0).hurdle_step is None  # the command line's "off"
    for bad in (40, 41, -1, 2.5):
        with pytest.raises(ValueError, match="hurdle_step"):
            dataclasses.replace(TINY, hurdle_step=bad)
    with pytest.raises(ValueError, match="hurdle_window"):
        dataclasses.replace(HURDLE, hurdle_window=0)
    with pytest.raises(ValueError, match="hurdle_archs"):
        dataclasses.replace(HURDLE, hurdle_archs=("vgg",))
    assert TINY.hurdle_archs == ("resnet",)  # MobileNetV2 / EfficientNet plateau before they learn
    assert dataclasses.replace(TINY, hurdle_archs="resnet").hurdle_archs == ("resnet",)


def test_a_chance_level_candidate_is_stopped_at_the_hurdle_and_stored_as_hurdle(tmp_path):
    from evonorm.search import evolution as evo
    from evonorm.search.evaluator import make_problem
    from evonorm.search.executor import InlineExecutor
    from evonorm.search.store import SearchStore

    problem = dataclasses.replace(make_problem(HURDLE), generate=lambda rng: AT_CHANCE)
    with SearchStore(str(tmp_path / "search.db")) as store:
        evo.random_search(problem, store, evo.RandomSearchConfig(budget=1, seed=SEED),
                          InlineExecutor(problem.evaluate), progress=False)
        assert store.rejection_counts() == {"hurdle": 1}
        (record,) = list(store.records())
    quality = record.extras["quality"]["resnet"]
    assert quality["steps"] == 25 and len(quality["losses"]) == 25  # 15 of the 40 steps not run
    assert quality["accuracy"] is None and record.timings["resnet_eval_s"] == 0.0  # no validation pass
    assert quality["hurdle"]["step"] == 25
    assert quality["hurdle"]["loss"] >= quality["hurdle"]["limit"] == pytest.approx(np.log(10) - 0.05)
    assert quality["hurdle"]["loss"] == pytest.approx(np.mean(quality["losses"][15:]), abs=1e-3)
    assert record.extras["reason"].startswith("hurdle: resnet training loss")
    assert "(mean of steps 16-25)" in record.extras["reason"]
    assert "stopped at step 25 of 40" in record.extras["reason"]


def test_the_hurdle_applies_only_to_the_hurdle_archs():
    result = Evaluator(dataclasses.replace(HURDLE, hurdle_archs=()))(AT_CHANCE.to_dict(), SEED)
    assert result.rejected == "quality" and result.extras["quality"]["resnet"]["steps"] == 40


def test_a_known_good_layer_passes_the_hurdle():
    result = Evaluator(HURDLE)(KNOWN_GRAPHS["bn_relu"].to_dict(), SEED)
    assert result.rejected is None and result.scores["resnet"] > 0.2
    quality = result.extras["quality"]["resnet"]
    assert quality["steps"] == 40 and "hurdle" not in quality
    assert np.mean(quality["losses"][15:25]) < np.log(10) - 0.05


def test_hurdle_off_is_the_plain_quality_test():
    # Off: exactly the training and scoring the quality test did before the hurdle existed (a plain
    # ``training.train`` without a step callback, then ``training.evaluate``), on the same seed.
    import tf_keras

    from evonorm.experiments import training
    from evonorm.search import evaluator as ev
    from evonorm.search.proxy import ProxySpec, build_proxy, norm_act_factory

    graph = KNOWN_GRAPHS["evonorm_b0"]
    off = Evaluator(TINY)(graph.to_dict(), SEED)
    x_train, y_train, x_val, y_val, mean, std = ev.load_data(TINY.data, TINY.data_dir, TINY.validation_size)
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(SEED)
    factory = norm_act_factory(graph, group_size=TINY.group_size)
    model = build_proxy(ProxySpec("resnet", 0.25), factory=factory, input_shape=x_train.shape[1:],
                        num_classes=10)
    history = training.train(model, ev._batches(x_train, y_train, TINY.batch_size, mean, std, SEED),
                             training.TrainConfig(steps=40, base_lr=TINY.base_lr, momentum=TINY.momentum,
                                                  weight_decay=TINY.weight_decay, schedule="cosine",
                                                  log_every=40))
    accuracy, _ = training.evaluate(model, ev._eval_batches(x_val[:256], y_val[:256], 256, mean, std))
    assert off.rejected is None
    assert off.scores["resnet"] == accuracy
    assert off.extras["quality"]["resnet"]["train_loss"] == history.final_train_loss
    assert off.extras["quality"]["resnet"]["steps"] == 40


def test_the_hurdle_is_a_scoring_setting_and_a_flag(tmp_path, monkeypatch):
    from absl import flags

    from evonorm.search import main as main_lib

    from evonorm.search.store import Record, SearchStore

    config = main_lib.build_config("tiny", evaluator__hurdle_step=25)
    assert config.scoring_settings()["hurdle_step"] == 25
    # A database written before the hurdle existed (no hurdle fields stored) resumes only with it off.
    path = str(tmp_path / "search.db")
    with SearchStore(path) as store:
        store.add(Record(0, "k0", {}, {}, "quality", "rejected", "random"))
        old = {k: v for k, v in main_lib.build_config("tiny").scoring_settings().items()
               if not k.startswith("hurdle")}
        store.set_meta(evaluator=old)
    assert main_lib.check_resume_settings(path, main_lib.build_config("tiny")) == "same"
    with pytest.raises(ValueError, match="hurdle_step: stored None, requested 25"):
        main_lib.check_resume_settings(path, config)

    seen = []
    monkeypatch.setattr(main_lib, "run_search", lambda config, *args, **kwargs: seen.append(config))
    fv = main_lib.define_flags(flags.FlagValues())
    fv(["evonorm-search", "--config=tiny", f"--workdir={tmp_path / 'run'}", "--quality_hurdle_step=25"])
    main_lib.main(["evonorm-search"], fv)
    assert seen[0].evaluator.hurdle_step == 25
