"""Campaign scene names must fit the image key ``"<scene>/<condition>"`` of the exports."""

from __future__ import annotations

import pytest

from annotation_app.spec import parse_spec
from scaling.errors import InputError

SPEC = """
name: keys
scenes:
  - {name: "%s", images: a}
  - {name: other, images: b}
attributes:
  - {name: detail, question: "Which has more detail?"}
"""


def test_scene_names_with_the_key_separator_are_refused():
    assert parse_spec(SPEC % "garden").scenes[0].name == "garden"
    with pytest.raises(InputError) as err:
        parse_spec(SPEC % "garden/day", source="keys.yaml")
    assert str(err.value) == (
        "keys.yaml, field 'scenes[0].name': Value error, scene name 'garden/day' contains '/', "
        "which separates scene and condition in image keys"
    )
