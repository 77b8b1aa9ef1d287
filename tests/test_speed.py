"""Where int8 pays (tl.speed): model sizes, timing rounds, crossovers, and the benchmark writer."""

import json
import types

import numpy as np
import pytest

from tutorial_lib import bench, env, models, speed


def test_width_one_is_the_course_cnn():
    assert speed.scaled_specs(1) == models.LAYER_SPECS
    params = sum(models._layer_params(s, "all") for s in speed.scaled_specs(1))
    assert params == models.count_params("all")


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_width_is_refused(bad):
    with pytest.raises(ValueError, match="width"):
        speed.scaled_specs(bad)


def test_macs_grow_about_as_width_squared():
    ratios = [speed.cnn_macs(2 * w) / speed.cnn_macs(w) for w in (1, 2, 4)]
    assert all(3.8 < r < 4.0 for r in ratios)  # conv1 (1 input channel) grows only linearly


def test_torch_model_matches_the_macs_count():
    torch = pytest.importorskip("torch")
    from tutorial_lib import torch_bridge as tb

    model = speed.scaled_cnn(2)
    costs = tb.layer_costs(model)
    assert sum(r["macs"] for r in costs) == speed.cnn_macs(2)
    with torch.no_grad():
        assert model(torch.zeros(3, 1, 32, 32)).shape == (3, 10)
    folded = tb.fold_batchnorm(model)
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(folded(x), model(x), rtol=1e-4, atol=1e-4)


def test_keras_model_has_the_same_shapes():
    pytest.importorskip("tf_keras")
    keras_model = speed.scaled_cnn_keras(2)
    weights = {w.name.split("/")[0]: w.shape for w in keras_model.weights if "kernel" in w.name}
    assert weights["conv2"] == (3, 3, 32, 64) and weights["fc1"] == (2048, 256)
    assert keras_model.count_params() == sum(
        models._layer_params(s, "all") for s in speed.scaled_specs(2))


def test_crossover_needs_every_larger_model_to_win():
    assert speed.crossover([10, 2, 40], [1.2, 0.5, 2.0]) == 10  # order of the lists is free
    assert speed.crossover([2, 10, 40], [1.5, 0.9, 2.0]) == 40
    assert speed.crossover([2, 10], [1.0, 1.0]) is None  # a tie is no win
    with pytest.raises(ValueError, match="one speed-up per model"):
        speed.crossover([2, 10], [1.0])


def test_interleaved_rounds_and_bad_arguments():
    calls = []
    runners = {"a": {1: lambda: calls.append("a1"), 8: lambda: calls.append("a8")},
               "b": {1: lambda: calls.append("b1")}}
    timings = speed.interleaved(runners, repeats=4, warmup=2)
    assert calls[:3] == ["a1", "a8", "b1"] and len(calls) == 6 * 3
    assert set(timings) == {"a", "b"} and set(timings["a"]) == {1, 8}
    t = timings["a"][8]
    assert t.p25 <= t.median <= t.p75 and t.iqr >= 0
    with pytest.raises(ValueError, match="repeats"):
        speed.interleaved(runners, repeats=0)
    with pytest.raises(ValueError, match="finite"):
        speed.summarize([1.0, float("nan")])


def test_speedups_and_table():
    t = speed.Timing
    rows = [{"framework": "X", "width": w, "macs": speed.cnn_macs(w), "variant": v,
             "timings": {1: t(ms, ms, ms)}}
            for w, v, ms in ((1, "float", 1.0), (1, "int8", 2.0), (2, "float", 4.0),
                             (2, "int8", 1.0))]
    assert speed.speedups(rows, "float", "int8", 1) == [(speed.cnn_macs(1), 0.5),
                                                        (speed.cnn_macs(2), 4.0)]
    table = speed.sweep_table(rows, "float")
    assert [r["x1"] for r in table] == ["1.00", "0.50", "1.00", "4.00"]


def test_int8_features_reads_flags():
    features = env.int8_features("fpu avx2 avx512bw avx512_vnni amx_int8")
    assert [k for k, ok in features.items() if ok] == ["AVX2", "AVX-512", "AVX-512 VNNI",
                                                       "AMX-INT8"]
    assert set(env.int8_features()) == {name for _, name, _ in env.INT8_FEATURES}


def test_bench_writes_markdown_json_and_plot(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fake = types.ModuleType("fake_suite")
    fake.TITLE = "A fake suite"
    fig, ax = plt.subplots()
    ax.plot([1, 2], [1, 2])
    fake.run = lambda repeats: ([{"model": "m", "ms": "1.0"}], "a note", "### More\n", fig)
    monkeypatch.setitem(bench.SUITES, "fake", "fake_suite")
    monkeypatch.setitem(__import__("sys").modules, "fake_suite", fake)
    text = bench.run_suite("fake", 3, tmp_path)
    assert "int8 instructions" in text and "| m | 1.0 |" in text and "### More" in text
    assert (tmp_path / "bench_fake.png").stat().st_size > 1000
    saved = json.loads((tmp_path / "bench_fake.json").read_text())
    assert saved["rows"] == [{"model": "m", "ms": "1.0"}] and "int8_features" in saved


def _rows(framework, base, variant, speedups_by_batch):
    t = speed.Timing
    rows = []
    for i, width in enumerate((1, 2, 4, 8)):
        rows.append({"framework": framework, "width": width, "macs": speed.cnn_macs(width),
                     "variant": base, "timings": {b: t(1.0, 1.0, 1.0) for b in speed.BATCHES}})
        rows.append({"framework": framework, "width": width, "macs": speed.cnn_macs(width),
                     "variant": variant,
                     "timings": {b: t(1.0 / s[i], 1.0 / s[i], 1.0 / s[i])
                                 for b, s in speedups_by_batch.items()}})
    return rows


def test_sweep_targets_and_crossovers():
    from tutorial_lib import sweep_bench

    rows = _rows("PyTorch", "fp32 eager, BN folded", "int8 static (eager)",
                 {1: (0.6, 1.1, 2.2, 3.5), 8: (2, 4, 8, 4), 32: (3.0, 4.5, 3.9, 6.0)})
    rows += _rows("LiteRT", "float", "full_integer",
                  {1: (2.4, 2.7, 3.2, 6.5), 8: (1, 1, 1, 1), 32: (1, 1, 1, 1)})
    checked = sweep_bench.targets(rows, has_vnni=True)
    assert [r["verdict"] for r in checked] == ["met", "missed", "met"]  # 3.9x < 4x at batch 32
    assert checked[1]["measured (models >= 30 M MACs)"] == "3.90x, 6.00x"
    no_vnni = sweep_bench.targets(rows, has_vnni=False)
    assert "does not apply" in no_vnni[0]["verdict"] and no_vnni[2]["verdict"] == "met"
    found = {(r["int8"], r["batch"]): r["int8 wins from"] for r in sweep_bench.crossovers(rows)}
    assert found[("PyTorch int8 static (eager)", 1)] == f"{speed.cnn_macs(2) / 1e6:.1f} M MACs"
    assert found[("LiteRT full_integer", 8)] == "never"
