"""The environment record holds what a figure needs to be reproduced."""

from perception.bench.environment import collect_environment, peak_rss_mb


def test_environment_names_the_machine_and_versions():
    env = collect_environment("cpu")
    assert env["device"] == "cpu"
    assert env["cpu"] and env["cpu_cores"] >= 1
    assert env["numpy"] and env["torch"]
    assert env["gpu"] is None or isinstance(env["gpu"], str)


def test_peak_rss_is_plausible():
    assert 10 < peak_rss_mb() < 24 * 1024


def test_memory_and_load_probes():
    from perception.bench.environment import gpu_memory_mb, load_average, reset_gpu_peak, rss_mb

    now = rss_mb()
    assert 10 < now <= peak_rss_mb() + 1
    load = load_average()
    assert load is None or (len(load) == 3 and all(x >= 0 for x in load))
    assert gpu_memory_mb("cpu") is None
    reset_gpu_peak("cpu")  # a no-op off CUDA, not an error
    env = collect_environment("cpu")
    assert env["load_avg"] == load or env["load_avg"] is not None
    assert env["memory_total_mb"] is None or env["memory_total_mb"] > 100


def test_jetson_power_mode_is_read_from_nvpmodel():
    from perception.bench.environment import jetson_power_mode

    assert jetson_power_mode("NV Power Mode: MAXN\n0") == "MAXN (0)"
    assert jetson_power_mode("NVPM WARN: ...\nNV Power Mode: 15W\n2\n") == "15W (2)"
    assert jetson_power_mode(None) is None and jetson_power_mode("garbage") is None
