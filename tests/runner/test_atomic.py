"""atomic_path: temporary names stay short enough for any legal final name, and carry the writer's tag."""
import os

import pytest

from legacy_nst.atomic import STEM_BYTES, atomic_path

NAME_MAX = os.pathconf("/", "PC_NAME_MAX")  # 255 on Linux file systems


@pytest.mark.parametrize("stem", ["s" * 236, "é" * 120], ids=["236-ascii", "240-bytes-utf8"])
def test_longest_legal_names_can_be_written(stem, tmp_path):
    path = tmp_path / f"{stem}.png"
    assert len(os.fsencode(path.name)) <= NAME_MAX
    with atomic_path(path) as tmp:
        name = os.path.basename(tmp)
        assert len(os.fsencode(name)) <= NAME_MAX
        assert name.startswith(".") and name.endswith(".part.png")
        assert os.fsencode(name).decode("utf-8") == name  # the stem was cut at a character boundary
        assert len(os.fsencode(name)) <= 1 + STEM_BYTES + 1 + 12 + len(".part.png")
        with open(tmp, "w") as f:
            f.write("ok")
    assert path.read_text() == "ok" and os.listdir(tmp_path) == [path.name]


def test_tag_is_part_of_the_temporary_name(tmp_path):
    with atomic_path(tmp_path / "f.h5", tag="cafe0123-42") as tmp:
        assert os.path.basename(tmp).startswith(".f.cafe0123-42.") and tmp.endswith(".part.h5")
    assert os.listdir(tmp_path) == ["f.h5"]
