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
