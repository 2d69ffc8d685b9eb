"""The one config source: strict YAML loading with errors naming file and key."""

import pytest

from perception.config import GridConfig, PipelineConfig, from_dict, load_config, to_dict
from perception.errors import ConfigError, InputFileError


def test_defaults_and_grid_size():
    cfg = PipelineConfig()
    assert (cfg.grid.nx, cfg.grid.ny) == (512, 512)


def test_round_trip_through_yaml(tmp_path):
    import yaml

    cfg = from_dict(PipelineConfig, {"grid": {"cell_m": 0.4}, "sync": {"lidar_sweeps": 5}})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg)))
    assert load_config(path) == cfg


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"grid": {"cell_m": -0.2}}, r"c.yaml: grid.cell_m: expected > 0"),
        ({"grid": {"celll_m": 0.2}}, r"c.yaml: unknown key grid.celll_m"),
        ({"gird": {}}, r"unknown key gird"),
        ({"grid": {"cell_m": "big"}}, r"grid.cell_m: expected a number, got str"),
        ({"grid": {"cell_m": 0.3}}, r"grid.cell_m: the x span"),
        ({"grid": {"z_min": 3.0, "z_max": 1.0}}, r"grid.z_max: expected > z_min"),
        ({"grid": [1, 2]}, r"grid: expected a mapping"),
    ],
)
def test_bad_values_name_the_file_and_key(tmp_path, data, match):
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_missing_file():
    with pytest.raises(InputFileError):
        load_config("/nonexistent/c.yaml")


def test_grid_is_frozen():
    g = GridConfig()
    with pytest.raises(AttributeError):
        g.cell_m = 1.0  # type: ignore[misc]
