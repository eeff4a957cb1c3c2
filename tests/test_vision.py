"""The optional image path: unset by default, and a broken configuration degrades to
the text request instead of failing the worker."""

from __future__ import annotations

import pytest
from conftest import make_settings

from triage.llm import ModelUnavailable, default_model_path
from triage.services import build_vision
from triage.vision import ImageDescriber


def test_vision_is_off_by_default_and_a_missing_file_is_reported(tmp_path):
    assert build_vision(make_settings("redis://unused")) is None
    missing = make_settings("redis://unused", vision_model_path=tmp_path / "no.gguf",
                            vision_projector_path=tmp_path / "no-mmproj.gguf")  # fmt: skip
    assert build_vision(missing) is None
    with pytest.raises(ModelUnavailable):
        ImageDescriber(tmp_path / "no.gguf", tmp_path / "no-mmproj.gguf").load()


def test_a_projector_that_is_not_one_is_refused_by_llama_cpp(settings, tmp_path):
    projector = tmp_path / "mmproj.gguf"
    projector.write_bytes(b"GGUF not really a projector")
    describer = ImageDescriber(default_model_path(settings.instance_dir), projector)
    with pytest.raises(ModelUnavailable):
        describer.load()
    assert describer.describe(b"\x89PNG") is None  # never loaded: no description, no crash
