"""The library API (`Job` → `run()` → `Result`, events, `stylize`) and what a new user tripped on (issue 8).

Synthetic VGG19 weights in the Keras layout and 40 × 48 images, the preview recipe (blocks 1-3), so a run
takes about a second."""
import io
import re
import subprocess
import sys

import numpy as np
import pytest
from support import ROOT, SHARED, log_rows, run_main, write_pair

from legacy_nst import (Evaluation, IterationFinished, Job, LevelFinished, LevelStarted, Output, Saved, UserError,
                        images, recipes, run, stylize)
from legacy_nst.runner.events import Result
from legacy_nst.ui.console import Console


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return write_pair(tmp_path_factory.mktemp("pair"))


def preview_job(pair, weights, **changes):
    content, style = pair
    settings = dict(content=content, styles=[style], recipe="preview", weights=str(weights),
                    overrides={"size": 32, "iterations": 6})
    settings.update(changes)
    return Job(**settings)


def test_run_returns_the_image_history_and_events_in_order(pair, vgg19_h5, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    events = []
    result = run(preview_job(pair, vgg19_h5), events.append)
    assert isinstance(result, Result) and result.finished and result.stopped == "finished"
    assert result.image.shape == (27, 32, 3) and result.image.dtype == np.float32
    assert result.term_names == ("content", "style")  # preview has no TV term, so none is reported
    kinds = [type(e) for e in events]
    assert kinds[0] is LevelStarted and kinds[-1] is LevelFinished
    evaluations = [e for e in events if isinstance(e, Evaluation)]
    assert len(evaluations) == result.evaluations == len(result.history) >= 6
    assert [e.evaluations for e in evaluations] == list(range(1, len(evaluations) + 1))
    assert kinds.count(IterationFinished) == 1  # preview: one L-BFGS call, one resumable iteration
    for e, row in zip(evaluations, result.history):
        # measured 6.6e-8 plain / 2.1e-8 transposed (AVX2 EPYC); passed on AVX-512 in earlier rounds
        assert sum(e.weighted.values()) == pytest.approx(e.total, rel=1e-5)  # weighted terms add up
        # measured 0 (AVX2 EPYC)
        assert e.weighted["style"] == pytest.approx(0.1 * e.terms["style"], rel=1e-6)  # style_weight 0.1
        assert row["style_raw"] == e.terms["style"] and row["total"] == e.total
    best = min(result.history, key=lambda r: r["total"])["total"]
    assert result.best_total == best  # preview keeps the lowest-loss image
    assert list(tmp_path.iterdir()) == []  # no output path: nothing written


def test_output_settings_write_files_and_saved_events(pair, vgg19_h5, tmp_path):
    events = []
    job = preview_job(pair, vgg19_h5, output=Output(str(tmp_path / "r.png"), save_every=3, grid=(1, 1)))
    result = run(job, events.append)
    saved = {e.kind for e in events if isinstance(e, Saved)}
    assert saved == {"snapshot", "checkpoint", "result", "grid", "log", "plot", "settings"}
    assert (tmp_path / "r_at_evaluation_3.png").is_file() and (tmp_path / "r_at_evaluation_6.png").is_file()
    assert result.files["result"] == str(tmp_path / "r.png")
    assert not list(tmp_path.glob(".*.lock"))  # the claim is released


def test_an_exception_from_on_event_stops_the_run_and_keeps_the_best_image(pair, vgg19_h5, tmp_path):
    def on_event(event):
        if isinstance(event, Evaluation) and event.evaluations == 3:
            raise KeyboardInterrupt

    result = run(preview_job(pair, vgg19_h5, output=Output(str(tmp_path / "r.png"))), on_event)
    assert result.stopped == "interrupted" and not result.finished
    assert len(result.history) == 3 and result.image is not None
    assert "interrupted at evaluation 3" in result.message and "r.partial.png" in result.message
    assert (tmp_path / "r.partial.png").is_file() and not (tmp_path / "r.png").exists()


def test_stylize_displays_inline(pair, vgg19_h5):
    out = stylize(str(pair[0]), str(pair[1]), weights=str(vgg19_h5), size=32, iterations=4)
    assert out.image.size == (32, 27) and out.image.mode == "RGB"
    assert out._repr_png_().startswith(b"\x89PNG")
    assert len(out.history) >= 4 and out.result.finished


def test_transfer_is_a_context_manager(pair, vgg19_h5):
    from legacy_nst.engine.level import Transfer
    from legacy_nst.runner.sizing import size_images
    from legacy_nst.vgg import weights

    recipe = recipes.override(recipes.get("preview"), size=32, iterations=2)
    content, styles = size_images(recipe, images.load_image(str(pair[0])), [images.load_image(str(pair[1]))])
    params = weights.load_weights(vgg19_h5, "vgg19", recipe.layers)
    with Transfer(recipe, content, styles, params, device="cpu") as transfer:
        session = transfer.session
        transfer.run(lambda m: None, lambda *a: None)
    with pytest.raises(RuntimeError, match="closed Session"):
        session.run(transfer.objective.total, {transfer.optimiser.image: content[None]})


def _readme_example():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "the README has a python example"
    return blocks[0]


def test_the_readme_notebook_example_runs_as_a_script(tmp_path):
    code = _readme_example().replace("../shared/", f"{SHARED}/")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = sorted(p.name for p in tmp_path.glob("*.png"))
    assert written, f"the example wrote no image: {proc.stdout[-2000:]}"


# --------------------------------------------------------------------- what a new user tripped on
def test_help_and_list_recipes_do_not_import_tensorflow():
    probe = ("import sys\nfrom legacy_nst.ui import cli\n"
             "for argv in (['--help'], ['--list-recipes'], ['--show-recipe', 'preview']):\n"
             "    try:\n        cli.main(argv)\n    except SystemExit:\n        pass\n"
             "print('TF', 'tensorflow' in sys.modules, file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "TF False" in proc.stderr, proc.stderr[-2000:]


def test_list_recipes_shows_the_budget_a_user_understands(capsys):
    code, out, _ = run_main(["--list-recipes"], capsys)
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "1000 evals" in lines["gatys2016"] and "120 evals" in lines["preview"]
    assert "20×15 evals" in lines["keras-lbfgs"] and "1000 steps" in lines["tf-eager-blog"]


def test_tv_weight_on_a_recipe_without_tv_is_refused(pair, vgg19_h5, tmp_path, capsys):
    code, _, err = run_main(["--recipe", "preview", "--tv-weight", "1e6", "--content", pair[0], "--style", pair[1],
                             "--weights", vgg19_h5, "--output", tmp_path / "o.png"], capsys)
    assert code == 2 and "tv_weight" in err and "tv_form=l2" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
    turned_on = recipes.override(recipes.get("preview"), tv_weight=1e-3, tv_form="l2")
    assert turned_on.tv_form == "l2"


def test_changing_the_layers_resets_their_weights():
    equal = recipes.override(recipes.get("preview"), style_layers=("block1_conv1", "block2_conv1"))
    assert equal.style_layer_weights == (1.0, 1.0)  # preview's weights were all 1: they stay 1
    unequal = recipes.override(recipes.get("keras-gd-noise"), style_layers=("block1_conv1",))
    assert unequal.style_layer_weights == ()  # 1/(i+2) was for the recipe's own layers: 1/len now
    with pytest.raises(UserError, match="style_layer_weights has 1 values for 2 layers"):
        recipes.override(recipes.get("preview"), style_layers=("block1_conv1", "block2_conv1"),
                         style_layer_weights=(1.0,))


def test_fields_are_parsed_by_their_annotations():
    assert recipes.parse_field("size", "none") is None and recipes.parse_field("size", "64") == 64
    assert recipes.parse_field("style_layer_weights", "1, 0.5") == (1.0, 0.5)
    assert recipes.parse_field("content_layers", "conv4_2 conv5_2") == ("conv4_2", "conv5_2")
    assert recipes.parse_field("lbfgs_bounds", "yes") is True
    with pytest.raises(UserError, match="expected int or none"):
        recipes.parse_field("size", "big")


@pytest.mark.parametrize("flag, hint", [("--original_colors", "--preserve-colors"), ("--width", "--size"),
                                        ("--num-iterations", "--iterations"), ("--style-scales", "--style-scale"),
                                        ("--initial-noiseblend", "--init-noise-blend")])
def test_flags_from_other_tools_get_a_hint(flag, hint, capsys):
    code, _, err = run_main([flag, "1"], capsys)
    assert code == 2 and flag in err and hint in err and err.count("\n") == 1


def test_jcjohnsons_single_dash_command_line_is_answered_with_the_same_run_here(capsys):
    """Issue 24.6: `-content_image` & co. were a bare 'unrecognized arguments'. A jcjohnson command line gets
    one line with the same run in this program's flags (-gpu -1 is his CPU), and nothing runs on a guess."""
    code, out, err = run_main(["-content_image", "my photo.jpg", "-style_image", "a.jpg,b.jpg", "-image_size", "512",
                               "-gpu", "-1", "-output_image", "o.png", "-num_iterations", "500", "-init", "random",
                               "-normalize_gradients", "-content_layers", "relu4_2", "-backend", "cudnn"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert ("the same run here: legacy-nst --content 'my photo.jpg' --style a.jpg b.jpg --size 512 --device cpu "
            "--output o.png --iterations 500 --init noise --normalize-gradients --content-layers relu4_2") in err
    assert "dropped -backend" in err and "evaluations" in err
    code, _, err = run_main(["-content_image", "c.jpg", "-gpu", "0"], capsys)
    assert code == 2 and "--device gpu" in err


@pytest.mark.parametrize("value, device", [("-1", "cpu"), ("0", "gpu"), ("2", "gpu")])
def test_gpu_hint_follows_jcjohnsons_meaning_of_minus_one(value, device, capsys):
    code, _, err = run_main(["--gpu", value], capsys)
    assert code == 2 and f"--gpu {value}: use --device {device}" in err and err.count("\n") == 1


def test_a_weight_file_given_to_network_points_to_weights(capsys):
    code, _, err = run_main(["--network", "vgg19.mat"], capsys)
    assert code == 2 and "--weights vgg19.mat" in err and err.count("\n") == 1
    code, _, err = run_main(["--network", "vgg20"], capsys)
    assert code == 2 and "choose vgg16 or vgg19" in err


def test_help_lists_every_output_and_says_how_save_every_resumes(capsys):
    code, out, _ = run_main(["--help"], capsys)
    text = " ".join(out.split())
    for name in ("STEM_losses.png", "STEM_at_evaluation_N.EXT", "STEM_levelL_at_evaluation_N.EXT",
                 "STEM.checkpoint.npz"):
        assert name in text
    assert "warm restart" in text and "a checkpoint past it is refused" in text


@pytest.mark.parametrize("command", ["batch", "figure"])
def test_workers_help_says_when_they_help(command, capsys):
    """Issue 24.7: nothing said that --workers or Ray gain little on 2 cores (bench/README.md's figures)."""
    code, out, _ = run_main([command, "--help"], capsys)
    text = " ".join(out.split())
    assert code == 0 and "only with cores one" in text


def test_flags_from_other_tools_that_work_here(pair, capsys):
    from legacy_nst.ui.cli import build_parser, make_job

    args = build_parser().parse_args(["--optimizer", "adam", "--learning-rate", "2", "--init", "random",
                                      "--print-every", "5", "--content", str(pair[0]), "--style", str(pair[1])])
    job = make_job(args)
    assert job.overrides == {"optimizer": "adam", "learning_rate": 2.0, "init": "noise"}
    assert job.output.print_every == 5


def test_repeated_style_flags_use_every_style(pair):
    from legacy_nst.ui.cli import build_parser, make_job

    args = build_parser().parse_args(["--style", str(pair[1]), "--style", str(pair[0]), "--content", str(pair[0])])
    assert [s.image for s in make_job(args).styles] == [str(pair[1]), str(pair[0])]


def _base(pair, weights, out, *extra):
    return ["--recipe", "preview", "--size", 32, "--iterations", 4, "--content", pair[0], "--style", pair[1],
            "--weights", weights, "--output", out, "--quiet", *extra]


def test_resume_for_another_content_or_size_is_refused(pair, vgg19_h5, tmp_path, capsys):
    code, _, err = run_main(_base(pair, vgg19_h5, tmp_path / "a.png", "--save-every", 2), capsys)
    assert code == 0, err
    checkpoint = tmp_path / "a.checkpoint.npz"
    other = write_pair(tmp_path / "other", shape=(40, 48))[1]  # a different image of the same size
    code, _, err = run_main(_base((other, pair[1]), vgg19_h5, tmp_path / "b.png", "--resume", checkpoint), capsys)
    assert code == 2 and "the content image" in err and "different run" in err, err
    code, _, err = run_main(_base(pair, vgg19_h5, tmp_path / "c.png", "--size", 40, "--resume", checkpoint), capsys)
    assert code == 2 and "image sizes" in err, err
    # output settings are not the algorithm: another --save-every resumes fine (and may grow the budget)
    code, _, err = run_main(_base(pair, vgg19_h5, tmp_path / "a.png", "--save-every", 3, "--iterations", 6,
                                  "--resume", checkpoint, "--overwrite"), capsys)
    assert code == 0, err


def test_the_log_and_the_printed_lines_label_raw_and_weighted_terms(pair, vgg19_h5, tmp_path, capsys):
    code, _, err = run_main(_base(pair, vgg19_h5, tmp_path / "a.png")[:-1], capsys)  # not --quiet
    assert code == 0
    assert "(weighted); raw terms: content" in err
    row = log_rows(tmp_path / "a_losses.csv")[-1]
    assert set(row) >= {"total", "content_raw", "content_weighted", "style_raw", "style_weighted"}


def test_another_extension_of_the_same_stem_is_refused_and_a_resume_clears_the_partial(pair, vgg19_h5, tmp_path,
                                                                                      capsys):
    code, _, err = run_main(_base(pair, vgg19_h5, tmp_path / "a.png"), capsys)
    assert code == 0
    code, _, err = run_main(_base(pair, vgg19_h5, tmp_path / "a.jpg"), capsys)
    assert code == 2 and "a_losses.csv exists" in err and "--overwrite" in err
    (tmp_path / "x.partial.png").write_bytes(b"left by an interrupted run")
    code, _, err = run_main(_base(pair, vgg19_h5, tmp_path / "x.png"), capsys)
    assert code == 0 and not (tmp_path / "x.partial.png").exists()  # superseded by the finished result


def test_the_demo_pair_is_drawn_at_the_size_run():
    content, style = images.demo_pair(300)
    assert content.shape == (225, 300, 3) and style.shape == (225, 300, 3)
    small = images.resize(images.demo_pair(100)[0], (225, 300), "lanczos")
    assert np.abs(small - content).mean() > 2  # an upscaled small drawing is not the same picture


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _evaluation(n, total=10.0):
    return Evaluation(0, 0, n, total, {"content": 1.0, "style": 90.0}, {"content": 1.0, "style": 9.0}, 0.1,
                      np.zeros((2, 2, 3), np.float32))


def test_console_prints_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    console = Console(print_every=2, stream=stream)
    console(LevelStarted(0, 1, (27, 32), 4, ("content", "style"), {"content": 1.0, "style": 0.1}))
    for n in range(1, 5):
        console(_evaluation(n))
    lines = stream.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == ["evaluation 1/4", "evaluation 2/4", "evaluation 4/4"]


def test_console_bar_never_overshoots_its_total():
    stream = _Terminal()
    console = Console(print_every=0, stream=stream)
    console(LevelStarted(0, 1, (27, 32), 4, ("content", "style"), {"content": 1.0, "style": 0.1}))
    for n in range(1, 7):  # L-BFGS may finish its line search past the budget
        console(_evaluation(n))
        assert console.bar.n <= console.bar.total
    assert console.bar.total == 6
    console.close()
