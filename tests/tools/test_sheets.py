"""figure_sheet: tiles found by their solid colours, so positions and sizes are measured on the output itself."""
import numpy as np
import pytest
from PIL import Image

from legacy_nst.errors import UserError
from legacy_nst.pictures.sheets import MISSING_FILL, figure_sheet

TILE, PAD, FONT = 40, 4, 12
ROWS, COLS = ["row zero", "row one"], ["col A", "col B", "col C"]
# (height, width) of each cell's source image and a colour no text pixel can have (text is grey: r == g == b)
SHAPES = {(0, 0): (30, 45), (0, 1): (20, 20), (0, 2): (30, 45), (1, 0): (30, 45), (1, 1): (10, 20), (1, 2): (30, 45)}
COLOURS = {key: (40 * i + 30, 200 - 30 * i, (90 * i) % 256) for i, key in enumerate(sorted(SHAPES))}


def solid(shape, colour, dtype=np.uint8):
    return np.broadcast_to(np.array(colour, dtype), (*shape, 3)).copy()


def cells(skip=()):
    return {key: solid(SHAPES[key], COLOURS[key]) for key in SHAPES if key not in skip}


def box(sheet, colour):
    """(top, left, bottom, right), exclusive, of the pixels that have exactly this colour."""
    ys, xs = np.nonzero(np.all(sheet == np.array(colour, np.uint8), axis=-1))
    assert ys.size, f"colour {colour} not found"
    return ys.min(), xs.min(), ys.max() + 1, xs.max() + 1


def has_ink(region):
    return region.size and region.min() < 100


def sheet(**kwargs):
    kwargs.setdefault("cells", cells())
    return figure_sheet(row_labels=ROWS, col_labels=COLS, tile_height=TILE, font_size=FONT, pad=PAD, **kwargs)


def test_grid_tiles_keep_aspect_at_common_height_in_row_column_order():
    out = sheet()
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    boxes = {key: box(out, COLOURS[key]) for key in SHAPES}
    for key, (top, left, bottom, right) in boxes.items():
        h, w = SHAPES[key]
        assert (bottom - top, right - left) == (TILE, round(w * TILE / h)), key
    col_w = [60, 80, 60]  # column B is as wide as its widest tile (10 x 20 -> 40 x 80); the 40 x 40 one centred
    assert boxes[0, 1][1] == boxes[1, 1][1] + 20
    for r in range(2):
        assert len({boxes[r, c][0] for c in range(3)}) == 1
        assert boxes[r, 1][1] - (1 - r) * 20 == boxes[r, 0][1] + col_w[0] + PAD
        assert boxes[r, 2][1] == boxes[r, 0][1] + col_w[0] + col_w[1] + 2 * PAD
    assert boxes[1, 0][0] == boxes[0, 0][0] + TILE + PAD
    assert out.shape[:2] == (boxes[1, 2][2] + PAD, boxes[1, 2][3] + PAD)
    grid_top, grid_left = boxes[0, 0][:2]
    for r, (top, _, bottom, _) in enumerate(boxes[r, 0] for r in range(2)):  # a row label beside each row
        assert has_ink(out[top:bottom, :grid_left - PAD]), f"no label for row {r}"
    for c, left in enumerate(boxes[0, 0][1] + np.cumsum([0] + col_w[:2]) + PAD * np.arange(3)):
        assert has_ink(out[:grid_top, left:left + col_w[c]]), f"no label above column {c}"


def test_float_and_uint8_cells_give_the_same_sheet():
    floats = {key: image.astype(np.float32) for key, image in cells().items()}
    np.testing.assert_array_equal(sheet(cells=floats), sheet())


def test_inputs_strip_and_title_move_the_grid_down_rigidly():
    plain = sheet()
    inputs = [("content", solid((20, 30), (250, 0, 0))), ("style", solid((40, 40), (0, 0, 250)))]
    with_inputs = sheet(inputs=inputs)
    grown = with_inputs.shape[0] - plain.shape[0]
    assert FONT <= grown - TILE - PAD <= 2 * FONT  # the strip: one line of labels, the images, a gap
    assert with_inputs.shape[1] == plain.shape[1]  # the strip (60 + 40 px) is narrower than the grid
    np.testing.assert_array_equal(with_inputs[grown:], plain)  # the grid and its labels, moved down unchanged
    content, style = box(with_inputs, (250, 0, 0)), box(with_inputs, (0, 0, 250))
    assert (content[2] - content[0], content[3] - content[1]) == (TILE, 60)
    assert (style[2] - style[0], style[3] - style[1]) == (TILE, TILE)
    assert content[0] == style[0] and style[1] == content[3] + PAD
    assert content[1] == box(plain, COLOURS[0, 0])[1]  # the strip starts where the grid starts
    assert has_ink(with_inputs[:content[0], content[1]:content[3]])
    assert has_ink(with_inputs[:style[0], style[1]:style[3]])

    titled = sheet(inputs=inputs, title="Figure 3")
    grown = titled.shape[0] - with_inputs.shape[0]
    assert FONT <= grown - PAD <= 3 * FONT
    np.testing.assert_array_equal(titled[grown:], with_inputs)
    assert has_ink(titled[:grown])


@pytest.mark.parametrize("with_inputs", [False, True])
def test_reference_beside_the_sheet_at_the_same_height(tmp_path, with_inputs):
    inputs = [("content", solid((20, 30), (250, 0, 0)))] if with_inputs else ()
    plain = sheet(inputs=inputs)
    path = tmp_path / "paper_figure.png"
    Image.fromarray(solid((100, 50), (0, 250, 250))).save(path)
    for reference in (str(path), solid((100, 50), (0, 250, 250)).astype(np.float32)):
        out = sheet(inputs=inputs, reference=reference)
        top, left, bottom, right = box(out, (0, 250, 250))
        assert out.shape[0] == plain.shape[0]
        np.testing.assert_array_equal(out[:, :plain.shape[1] - PAD], plain[:, :-PAD])  # the sheet is untouched
        assert bottom == box(plain, COLOURS[1, 2])[2]  # level with the last row
        assert FONT <= top - PAD - PAD <= 2 * FONT  # from the top margin down, less one line of label and a gap
        assert abs((right - left) - (bottom - top) / 2) <= 1  # aspect 1:2 kept
        assert left == plain.shape[1] - PAD + 3 * PAD and out.shape[1] == right + PAD
        assert has_ink(out[:top, left:right])  # the "paper" label


def test_missing_cells_are_grey_tiles_with_their_reason():
    reason = "not run: needs block4 weights"
    out = sheet(cells=cells(skip={(1, 2), (0, 0)}), missing={(1, 2): reason})
    full = sheet()
    fill = np.all(out == np.array(MISSING_FILL, np.uint8), axis=-1)
    for key in ((1, 2), (0, 0)):  # where the tile would have been, the same size, grey with dark text in it
        top, left, bottom, right = box(full, COLOURS[key])
        tile = out[top:bottom, left:right]
        assert fill[top:bottom, left:right].mean() > 0.5
        assert has_ink(tile)
        assert not fill[top - 1, left:right].any() and not fill[bottom, left:right].any()
    t, l, b, r = box(full, COLOURS[1, 2])
    other = sheet(cells=cells(skip={(1, 2), (0, 0)}), missing=[((1, 2), "diverged")])
    assert not np.array_equal(other[t:b, l:r], out[t:b, l:r])  # the reason, not a fixed text, is drawn
    t, l, b, r = box(full, COLOURS[0, 0])
    default = sheet(cells=cells(skip={(1, 2), (0, 0)}))
    np.testing.assert_array_equal(default[t:b, l:r], out[t:b, l:r])  # no reason given: the same default text


def test_a_column_with_no_results_takes_the_typical_width():
    out = sheet(cells={key: c for key, c in cells().items() if key[1] != 1})
    a, c = box(out, COLOURS[0, 0]), box(out, COLOURS[0, 2])
    assert c[1] - a[3] == PAD + 60 + PAD  # the median tile width (all others are 60)


def test_bad_arguments():
    with pytest.raises(ValueError, match="outside"):
        sheet(cells={(2, 0): solid((4, 4), (1, 2, 3))})
    with pytest.raises(UserError, match="no such file"):
        sheet(reference="/nonexistent/figure2.png")
