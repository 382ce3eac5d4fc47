"""The multi-seed summary: per-run and per-arm tables cut at a common budget, and Figure 6 with bands."""

import os

from evonorm.search import seeds
from evonorm.search.store import ACCEPTED, REJECTED, Record, SearchStore


def _write_run(workdir, series, kind, seed, scores):
    path = seeds.run_dir(str(workdir), series, kind, seed)
    os.makedirs(path)
    with SearchStore(os.path.join(path, "search.db")) as store:
        store.set_meta(kind=kind, objectives=["resnet"], config={"population_size": 4, "distinct_population": True})
        for i, score in enumerate(scores):
            accepted = score is not None
            store.add(Record(proposal=i, key=f"{kind}{seed}-{i}", candidate={}, scores={"resnet": score} if accepted
                             else {}, rejected=None if accepted else "quality",
                             status=ACCEPTED if accepted else REJECTED,
                             origin="mutation" if kind == "evolution" and i > 2 else "random",
                             timings={"wall_s": 36.0}))
    return path


def test_summary_tables_and_bands(tmp_path):
    _write_run(tmp_path, "B", "evolution", 0, [None, 0.5, None, 0.6, 0.7, 0.9])
    _write_run(tmp_path, "B", "evolution", 1, [0.4, None, None, 0.5, 0.8])
    _write_run(tmp_path, "B", "random", 0, [None, 0.5, None, None, 0.6, 0.55])
    _write_run(tmp_path, "B", "random", 1, [None, None, 0.3, None, None])
    stats = seeds.series_statistics(str(tmp_path), "B", (0, 1), top=2)
    assert stats["common"] == 5  # the shorter runs have 5 evaluated candidates
    evo = stats["arms"]["evolution"]
    assert evo["best"][0] == (0.7 + 0.8) / 2 and evo["best"][2] == 2  # the 6th candidate is past the cut
    assert abs(evo["top_mean"][0] - ((0.7 + 0.6) / 2 + (0.8 + 0.5) / 2) / 2) < 1e-12
    rnd = stats["arms"]["random"]
    assert rnd["best"][0] == (0.6 + 0.3) / 2
    # compare.run_statistics: with fewer than k accepted layers, the mean of those there are.
    assert abs(rnd["top_mean"][0] - ((0.6 + 0.5) / 2 + 0.3) / 2) < 1e-12
    path = seeds.summarize(str(tmp_path), seeds=(0, 1), series=("B", "S"), command="cmd")
    text = open(path, encoding="utf-8").read()
    assert "Cut at **5** evaluated candidates" in text and "0.750 ± 0.071 (n=2)" in text
    assert "No finished run." in text  # the S series has none
    assert os.path.getsize(os.path.join(tmp_path, "fig6_seeds_B.png")) > 0


def test_finished_runs_are_skipped(tmp_path):
    path = _write_run(tmp_path, "S", "random", 0, [0.5])
    open(os.path.join(path, "summary.md"), "w").close()
    log = []
    started = []
    seeds.run_campaign(str(tmp_path), seeds=(0,), series=("S",), log=log.append,
                       run=lambda cmd, check: started.append(cmd))
    assert any("random_s0 finished; skipped" in line for line in log)
    assert len(started) == 1 and "--kind=evolution" in started[0] and "--allow_batch_ops=false" in started[0]


def test_top_layers_pool_an_arms_seeds_without_copies(tmp_path):
    from evonorm.search.graph import Graph
    from evonorm.search.store import Record as R

    for seed, score in ((0, 0.6), (1, 0.7)):
        path = seeds.run_dir(str(tmp_path), "S", "random", seed)
        os.makedirs(path)
        with SearchStore(os.path.join(path, "search.db")) as store:
            store.set_meta(kind="random", objectives=["resnet"], config={})
            for i, (key, graph, value) in enumerate((("same", Graph([("sqrt", (0,))]), score),
                                                     (f"other{seed}", Graph([("tanh", (0,))]), score - 0.3))):
                store.add(R(proposal=i, key=key, candidate=graph.to_dict(), scores={"resnet": value},
                            rejected=None, status=ACCEPTED, origin="random"))
    top = seeds.top_layers(str(tmp_path), "S", "random", (0, 1), k=2)
    assert [label.split(" id")[0] for label, _, _ in top] == ["S random s1", "S random s1"]
    assert top[0][2] == {"resnet": 0.7}  # "same" once, its best copy
    assert abs(top[1][2]["resnet"] - 0.4) < 1e-12


def test_runs_from_different_machines_are_named_per_run(tmp_path):
    for kind, seed, machine in (("evolution", 0, "AMD EPYC, 2 cores"), ("random", 0, "Intel Xeon, 2 cores")):
        path = _write_run(tmp_path, "S", kind, seed, [0.5, None])
        with open(os.path.join(path, "summary.md"), "w", encoding="utf-8") as f:
            f.write(f"# run\n\n- machine: {machine}\n- seed {seed}\n")
    text = open(seeds.summarize(str(tmp_path), seeds=(0,), series=("S",)), encoding="utf-8").read()
    assert "- machines (worker-hours compare only between runs of one machine):" in text
    assert "  - AMD EPYC, 2 cores: S evolution s0" in text and "  - Intel Xeon, 2 cores: S random s0" in text
    # One machine for every run: one line with its name, not the summarizing machine's.
    one = tmp_path / "one"
    path = _write_run(one, "S", "random", 0, [0.5])
    with open(os.path.join(path, "summary.md"), "w", encoding="utf-8") as f:
        f.write("- machine: Intel Xeon, 2 cores\n")
    assert "- machine: Intel Xeon, 2 cores\n" in open(seeds.summarize(str(one), seeds=(0,), series=("S",)),
                                                      encoding="utf-8").read()
