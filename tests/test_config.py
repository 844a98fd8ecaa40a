"""Settings precedence: defaults < config file < .env < environment < explicit overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from lookalike.config import DEFAULT_IMAGE_MODEL, Settings
from lookalike.errors import ConfigError


def test_precedence(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('collection = "fromfile"\nbatch_size = 4\nport = 9000\n')
    env_file = tmp_path / ".env"
    env_file.write_text(
        "LOOKALIKE_BATCH_SIZE=8\nLOOKALIKE_PORT=9100\nES_HOST=http://es:9200\nES_PWD=s3cret\n"
    )
    environ = {"LOOKALIKE_HOME": str(home), "LOOKALIKE_PORT": "9200"}
    s = Settings.load({"collection": None}, environ=environ, env_file=env_file)
    assert s.home == home
    assert s.collection == "fromfile"  # file; the None override means "not given"
    assert s.batch_size == 8  # .env beats the file
    assert s.port == 9200  # the real environment beats .env
    assert (s.store, s.es_password) == ("http://es:9200", "s3cret")  # the seed's names
    assert s.image_model == DEFAULT_IMAGE_MODEL
    s2 = Settings.load({"port": 1234, "collection": "cli"}, environ=environ, env_file=env_file)
    assert (s2.port, s2.collection) == (1234, "cli")


def test_model_env_names(tmp_path: Path) -> None:
    s = Settings.load(
        environ={
            "LOOKALIKE_HOME": str(tmp_path),
            "LOOKALIKE_MODEL": "/m",
            "LOOKALIKE_TEXT_MODEL": "clip",
        },
        env_file=None,
    )
    assert (s.image_model, s.text_model) == ("/m", "clip")


@pytest.mark.parametrize(
    ("environ", "field"),
    [
        ({"LOOKALIKE_PORT": "eighty"}, "port"),
        ({"LOOKALIKE_BATCH_SIZE": "0"}, "batch_size"),
        ({"LOOKALIKE_COLLECTION": "../../etc"}, "collection"),
        ({"LOOKALIKE_ES_VERIFY_CERTS": "maybe"}, "es_verify_certs"),
    ],
)
def test_bad_values_name_the_field(tmp_path: Path, environ: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.load(environ={"LOOKALIKE_HOME": str(tmp_path), **environ}, env_file=None)
    assert err.value.field == field


def test_bad_config_file(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("nonsense = 1\n")
    with pytest.raises(ConfigError, match="nonsense"):
        Settings.load(environ={"LOOKALIKE_HOME": str(tmp_path)}, env_file=None)
    (tmp_path / "config.toml").write_text("this is [not toml\n")
    with pytest.raises(ConfigError, match="cannot read config file"):
        Settings.load(environ={"LOOKALIKE_HOME": str(tmp_path)}, env_file=None)
