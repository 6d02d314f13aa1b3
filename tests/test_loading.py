"""The shared loader's own checks: a local path that holds no model, the quantize value, and
`training_info.json` read back (the loading of models themselves is tested in test_remote_code.py)."""

from __future__ import annotations

import json

import pytest

from seq2seq_tools.loading import check_model_path, load_model, read_training_info


def test_a_missing_local_path_and_a_folder_without_config_are_named(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=f"the local path {missing} does not exist"):
        check_model_path(missing)
    with pytest.raises(FileNotFoundError, match=r"is not a model folder \(no config.json\)"):
        check_model_path(tmp_path)
    check_model_path("user/model")  # a Hub id: left to the Hub


def test_a_bad_quantize_value_is_refused_before_anything_loads(tmp_path):
    with pytest.raises(ValueError, match="quantize='int4'; accepted values: none, int8"):
        load_model(tmp_path / "nowhere", quantize="int4")


def test_training_info_round_trips_and_is_empty_without_a_file(tmp_path):
    assert read_training_info(tmp_path) == {}
    (tmp_path / "training_info.json").write_text(json.dumps({"task": "qa", "source_lang": "en"}), encoding="utf-8")
    assert read_training_info(tmp_path) == {"task": "qa", "source_lang": "en"}
    (tmp_path / "training_info.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="not an object"):
        read_training_info(tmp_path)
