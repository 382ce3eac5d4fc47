"""Re-ranking: the search's top-k layers and the baselines re-trained longer on every proxy.

The paper re-ranks its top-10 layers with longer training on held-out data. Here each of the top-k
accepted graphs of a search database and the baselines ``bn_relu``, ``evonorm_b0``, ``evonorm_s0``
(through their registry names, i.e. the hand-written layers) are trained identically for ``steps``
SGD steps (cosine schedule, batch of the search config) on each proxy, then scored on the part of the
validation split the search never scored candidates on (its ``val_examples`` head is skipped when
something remains), never on the test set. The table goes to ``WORKDIR/rerank.md`` (and ``.json``).

Command line: ``python -m evonorm.search.rerank --workdir=RUN --config=default --top_k=5 --steps=1000``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from evonorm.search.store import SearchStore

__all__ = ["BASELINES", "held_out_split", "train_and_score", "rerank_workdir"]

BASELINES = ("bn_relu", "evonorm_b0", "evonorm_s0")


def held_out_split(evaluator_config):
    """``(x, y)`` of the validation split without the head the search scored candidates on."""
    from evonorm.search.evaluator import load_data  # noqa: PLC0415

    ev = evaluator_config
    _, _, x_val, y_val, _, _ = load_data(ev.data, ev.data_dir, ev.validation_size)
    skip = ev.val_examples if 0 < ev.val_examples < len(x_val) else 0
    return x_val[skip:], y_val[skip:]


def train_and_score(candidate, evaluator_config, steps: int, seed: int, held_out) -> dict:
    """``{arch: accuracy or None (diverged)}`` of ``candidate`` trained ``steps`` steps per proxy."""
    import tf_keras  # noqa: PLC0415

    from evonorm.experiments import training  # noqa: PLC0415
    from evonorm.search.evaluator import _batches, _eval_batches, load_data  # noqa: PLC0415
    from evonorm.search.proxy import ProxySpec, build_proxy, norm_act_factory  # noqa: PLC0415

    cfg = evaluator_config
    x_train, y_train, _, _, mean, std = load_data(cfg.data, cfg.data_dir, cfg.validation_size)
    x_val, y_val = held_out
    factory = norm_act_factory(candidate, group_size=cfg.group_size)
    out = {}
    for k, (arch, width, depth) in enumerate(cfg.archs):
        tf_keras.backend.clear_session()
        tf_keras.utils.set_random_seed(seed + 1009 * k)
        model = build_proxy(ProxySpec(arch, width, depth), factory=factory, input_shape=x_train.shape[1:],
                            num_classes=int(y_train.max()) + 1)
        config = training.TrainConfig(steps=steps, base_lr=cfg.base_lr, momentum=cfg.momentum,
                                      weight_decay=cfg.weight_decay, schedule="cosine",
                                      warmup_steps=min(100, steps // 10), log_every=steps)
        history = training.train(model, _batches(x_train, y_train, cfg.batch_size, mean, std, seed + k), config)
        out[arch] = None if history.diverged else float(
            training.evaluate(model, _eval_batches(x_val, y_val, 256, mean, std))[0])
    return out


def rerank_workdir(workdir: str, config, top_k: int = 5, steps: int = 1000, seed: int = 0,
                   baselines=BASELINES, log_fn=print) -> str:
    """Re-trains the top-``top_k`` of ``WORKDIR/search.db`` and ``baselines``; writes ``rerank.md``."""
    from evonorm.search.graph import Graph  # noqa: PLC0415
    from evonorm.search.render import to_text  # noqa: PLC0415

    ev = config.evaluator
    held_out = held_out_split(ev)
    with SearchStore(os.path.join(workdir, "search.db")) as store:
        top = store.top(top_k)
    entries = [(f"search #{rank} (id {r.id})", Graph.from_dict(r.candidate), r.scores)
               for rank, r in enumerate(top, 1)]
    entries += [(name, name, None) for name in baselines]
    rows = []
    for label, candidate, search_scores in entries:
        t0 = time.time()
        scores = train_and_score(candidate, ev, steps, seed, held_out)
        valid = [v for v in scores.values() if v is not None]
        mean = float(np.mean(valid)) if len(valid) == len(scores) else None
        formula = candidate if isinstance(candidate, str) else to_text(candidate.prune())
        rows.append({"label": label, "layer": formula, "scores": scores, "mean": mean,
                     "search_scores": search_scores, "seconds": time.time() - t0})
        log_fn(f"rerank {label}: {scores} ({time.time() - t0:.0f}s)")
    archs = [a for a, _, _ in ev.archs]
    order = sorted(rows, key=lambda r: -(r["mean"] if r["mean"] is not None else -1.0))
    lines = [f"# Re-ranking: {steps} training steps per proxy, scored on {len(held_out[0])} held-out "
             f"validation images of {ev.data} (not the ones the search scored on; test set unused)", "",
             "| rank | layer | " + " | ".join(archs) + " | mean | formula |", "|" + "---|" * (4 + len(archs))]
    for rank, r in enumerate(order, 1):
        cells = " | ".join("diverged" if r["scores"][a] is None else f"{r['scores'][a]:.3f}" for a in archs)
        mean = "-" if r["mean"] is None else f"{r['mean']:.3f}"
        lines.append(f"| {rank} | {r['label']} | {cells} | {mean} | `{r['layer'].replace('|', chr(92) + '|')}` |")
    path = os.path.join(workdir, "rerank.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(workdir, "rerank.json"), "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=1)
    return path


def main(argv=None):
    from evonorm.search.configs import get_config  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--config", default="default")
    parser.add_argument("--top_k", type=int, default=5)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(rerank_workdir(args.workdir, get_config(args.config), args.top_k, args.steps, args.seed))


if __name__ == "__main__":
    main()
