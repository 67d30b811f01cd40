"""stylize() in a real Jupyter kernel (issue 24.2), executed with nbclient and judged by the notebook's outputs:
live progress (one display of the image and the loss curve, replaced in place, and a progress bar) and a
short repr of the result (plain text and HTML), not the whole history.

One small run: the preview recipe at 48 px, 10 evaluations, the genuine partial VGG19."""
import base64
import json

import nbformat
from nbclient import NotebookClient
from support import ROOT, write_pair


def _cell_outputs(notebook, index):
    return notebook.cells[index].outputs


def test_stylize_shows_live_progress_and_a_short_result_in_jupyter(real_weights, tmp_path):
    content, style = write_pair(tmp_path, shape=(36, 48))
    setup = f"import sys; sys.path.insert(0, {str(ROOT)!r})\nfrom legacy_nst import stylize"
    # interval 0: every evaluation replaces the display (stylize's default is at most every 2 s)
    call = ("from legacy_nst.ui.notebook import NotebookProgress\nlive = NotebookProgress(interval=0)\n"
            f"out = stylize({str(content)!r}, {str(style)!r}, recipe='preview', weights={str(real_weights)!r}, "
            "size=48, iterations=10, progress=live)\nprint('updates', live.updates)")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(setup), nbformat.v4.new_code_cell(call),
                                               nbformat.v4.new_code_cell("out"),
                                               nbformat.v4.new_code_cell("out.result")])
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    run_outputs = _cell_outputs(notebook, 1)
    displays = [o for o in run_outputs if o.output_type == "display_data"]
    assert len(displays) == 1, [o.output_type for o in run_outputs]  # one display, replaced in place
    live = displays[0]
    assert base64.b64decode(live.data["image/png"]).startswith(b"\x89PNG")
    # the display now shows the end of the run, though it was created at evaluation 1: it was updated
    assert live.data["text/plain"].startswith("level 1 done: 10 evaluations")
    printed = "".join(o.get("text", "") for o in run_outputs if o.output_type == "stream")
    updates = int(printed.split("updates ")[1].split()[0])
    assert updates == 10  # evaluations 2..10 and the level's end replaced the first display
    # the progress bar: a tqdm widget where ipywidgets is installed, else tqdm's text bar
    widget = any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in run_outputs)
    assert widget or "10/10" in printed, json.dumps([dict(o) for o in run_outputs])[:2000]

    result, = _cell_outputs(notebook, 2)
    assert result.output_type == "execute_result"
    text = result.data["text/plain"]
    assert text.startswith("<Stylized preview: 48×36 px, 10 evaluations in") and len(text) < 200
    assert "<img src=\"data:image/png;base64," in result.data["text/html"] and "10 evaluations" in result.data["text/html"]
    assert base64.b64decode(result.data["image/png"]).startswith(b"\x89PNG")
    raw, = _cell_outputs(notebook, 3)
    assert raw.data["text/plain"].startswith("<Result preview: finished, 10 evaluations") and len(raw.data["text/plain"]) < 300


def test_stylize_outside_jupyter_stays_quiet(real_weights, tmp_path, capsys):
    from legacy_nst import stylize
    from legacy_nst.ui.notebook import in_jupyter

    assert not in_jupyter()
    content, style = write_pair(tmp_path, shape=(36, 48))
    out = stylize(str(content), str(style), weights=str(real_weights), size=48, iterations=3)
    assert capsys.readouterr().err == "" and repr(out).startswith("<Stylized preview: 48×36 px, 3 evaluations")
