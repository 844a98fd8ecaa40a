"""Model presets: one name selects both towers; the registry's facts; refusals.

Nothing is mocked: the presets' real weights cannot be downloaded here, so the
tests that load a model use the tiny random models of ``support.preset_models``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lookalike.cli import cli
from lookalike.collection import open_collection
from lookalike.config import DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL, Settings
from lookalike.errors import ConfigError, ModelMismatchError, ModelNotAvailableError
from lookalike.models import create_embedder
from lookalike.models.families import family_of
from lookalike.models.siglip import SiglipEmbedder
from lookalike.presets import DEFAULT_PRESET, PRESETS, get_preset

REQUIRED = ["seed", "openai-b32", "laion-b32", "datacomp-b32-256", "siglip2-b16", "nllb-siglip-b"]


def test_registry_holds_the_required_presets_with_their_facts() -> None:
    for name in REQUIRED:
        preset = PRESETS[name]
        assert preset.dim > 0 and preset.image_size > 0
        assert preset.licence and preset.library and preset.preprocessing
    seed = PRESETS[DEFAULT_PRESET]
    assert (seed.image_model, seed.text_model) == (DEFAULT_IMAGE_MODEL, DEFAULT_TEXT_MODEL)
    assert PRESETS["laion-b32"].quality["flickr30k_t2i_r1"] == 66.8
    assert PRESETS["siglip2-b16"].family == "siglip" and PRESETS["siglip2-b16"].multilingual


def test_research_only_licences_are_flagged_and_never_the_default() -> None:
    flagged = [p for p in PRESETS.values() if p.research_only]
    assert [p.name for p in flagged] == ["nllb-siglip-b"]
    assert "NC" in flagged[0].licence
    assert not PRESETS[DEFAULT_PRESET].research_only


def test_a_preset_name_selects_both_towers(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, image_model="laion-b32")
    assert settings.image_model == "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
    assert settings.text_model == "clip"
    # the environment's short name works the same way
    env = Settings.load(environ={"LOOKALIKE_MODEL": "SigLIP2-B16"}, env_file=None)
    assert (env.image_model, env.text_model) == ("google/siglip2-base-patch16-224", "clip")


def test_a_chosen_text_model_stands_and_other_names_pass_through(tmp_path: Path) -> None:
    mine = Settings(home=tmp_path, image_model="openai-b32", text_model="/my/text")
    assert (mine.image_model, mine.text_model) == (DEFAULT_IMAGE_MODEL, "/my/text")
    hub = Settings(home=tmp_path, image_model="org/some-clip")
    assert (hub.image_model, hub.text_model) == ("org/some-clip", DEFAULT_TEXT_MODEL)


def test_unknown_preset_lookup_lists_the_names() -> None:
    with pytest.raises(ConfigError, match="laion-b32"):
        get_preset("no-such-preset")


def test_cli_lists_the_presets(tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["models", "--available", "--json", "--home", str(tmp_path)])
    assert out.exit_code == 0, out.output
    rows = {r["name"]: r for r in json.loads(out.output)}
    assert set(REQUIRED) <= set(rows)
    assert rows["nllb-siglip-b"]["research_only"] and not rows["nllb-siglip-b"]["loadable"]
    text = runner.invoke(cli, ["models", "--available", "--home", str(tmp_path)])
    assert "NON-COMMERCIAL" in text.output and "[default, multilingual]" in text.output


def test_open_clip_only_checkpoints_are_refused_with_what_to_do(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, image_model="datacomp-b32-256")
    with pytest.raises(ModelNotAvailableError, match="open_clip.*convert"):
        create_embedder(settings)


def test_siglip_folders_get_the_siglip_runtime(tmp_path: Path, tiny_siglip_dir: Path) -> None:
    settings = Settings(home=tmp_path, image_model=str(tiny_siglip_dir), text_model="clip")
    assert family_of(settings) == "siglip"
    embedder = create_embedder(settings)
    assert isinstance(embedder, SiglipEmbedder) and embedder.fast
    reference = create_embedder(settings.with_overrides(runtime="torch"))
    assert isinstance(reference, SiglipEmbedder) and not reference.fast


def test_the_store_refuses_vectors_of_another_preset_family(
    tmp_path: Path, tiny_hf_clip_dir: Path, tiny_siglip_dir: Path, small_collection: Path
) -> None:
    base = Settings(home=tmp_path / "home", batch_size=8, runtime="torch", text_model="clip")
    with open_collection(
        base.with_overrides(image_model=str(tiny_hf_clip_dir)), create=True
    ) as col:
        report = col.indexer.index([small_collection])
        assert report.indexed == 12
        bound = col.store.model
    assert bound is not None and bound.preprocess == "rgb-on-white/short224-bicubic/center-crop/v1"
    with open_collection(base.with_overrides(image_model=str(tiny_siglip_dir))) as col:
        with pytest.raises(ModelMismatchError):
            col.indexer.index([small_collection])
        assert col.store.count() == 12


def test_a_siglip_folder_pairs_with_its_own_text_tower_by_default(
    tmp_path: Path, tiny_siglip_dir: Path
) -> None:
    settings = Settings(home=tmp_path, image_model=str(tiny_siglip_dir))
    assert settings.text_model == DEFAULT_TEXT_MODEL
    embedder = create_embedder(settings)
    assert isinstance(embedder, SiglipEmbedder) and embedder.text_model == embedder.image_model
    with pytest.raises(ConfigError, match="text_model=clip"):
        create_embedder(settings.with_overrides(text_model="/some/text-model"))
    hub = Settings(home=tmp_path, image_model="org/my-siglip-finetune")
    assert family_of(hub) == "siglip"


def test_models_reports_a_siglip_folder_with_its_own_text_tower(
    tmp_path: Path, tiny_siglip_dir: Path
) -> None:
    runner = CliRunner()
    args = ["models", "--json", "--home", str(tmp_path), "--model", str(tiny_siglip_dir)]
    out = runner.invoke(cli, args)
    assert out.exit_code == 0, out.output
    image, text = json.loads(out.output)
    assert image["loads"] and text["loads"] and text["location"] == image["location"]
    assert text["dim"] == image["dim"] == 32
    assert text["active_runtime"].startswith("onnx")
