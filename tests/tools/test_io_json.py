"""The one JSON reader (``_io.read_json``) and the one sanitiser (``_io.to_plain``)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ptychopinn._io import parse_json, read_json, read_text, to_plain
from ptychopinn.errors import BundleError, ConfigError, DataError


@pytest.mark.parametrize("content, expect, problem", [
    (None, None, "thing file not found"),
    (b"\xff\xfe[1]", None, "not UTF-8 text (byte 0; thing file)"),
    (b"{not json", None, "not JSON (line 1, column 2: Expecting property name enclosed in double quotes; thing file)"),
    (b"[1, 2]", dict, "must hold a JSON object; got list"),
    (b"{}", list, "must hold a JSON list; got dict"),
])
def test_read_json_failures_are_one_typed_line_naming_the_file(tmp_path, content, expect, problem):
    path = tmp_path / "x.json"
    if content is not None:
        path.write_bytes(content)
    for error in (DataError, ConfigError, BundleError):
        with pytest.raises(error) as ei:
            read_json(path, "thing file", error=error, expect=expect)
        assert str(ei.value) == f"{path}: {problem}"
    with pytest.raises(DataError):  # the default
        read_json(path, "thing file", expect=expect)


def test_read_json_reads_and_read_text_of_a_directory_is_an_error(tmp_path):
    (tmp_path / "ok.json").write_text('{"a": [1, NaN]}')
    doc = read_json(tmp_path / "ok.json", expect=dict)
    assert doc["a"][0] == 1 and math.isnan(doc["a"][1])
    with pytest.raises(ConfigError, match="cannot read config file"):
        read_text(tmp_path, "config file", error=ConfigError)
    assert parse_json("[1]", "where", expect=list) == [1]


def test_to_plain_nonfinite_modes():
    obj = {"a": float("nan"), "b": np.float32("inf"), "c": [-np.inf, 1.5, np.int64(2)], "d": (np.bool_(True), None)}
    assert to_plain(obj) == {"a": None, "b": None, "c": [None, 1.5, 2], "d": [True, None]}
    assert to_plain(obj, nonfinite="string") == {"a": "nan", "b": "inf", "c": ["-inf", 1.5, 2], "d": [True, None]}
    kept = to_plain(obj, nonfinite="keep")
    assert json.dumps(kept) == '{"a": NaN, "b": Infinity, "c": [-Infinity, 1.5, 2], "d": [true, null]}'
    assert to_plain(complex(float("nan"), 1.0), nonfinite="string") == {"real": "nan", "imag": 1.0}
    with pytest.raises(ValueError, match="nonfinite"):
        to_plain(1.0, nonfinite="drop")
