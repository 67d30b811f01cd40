"""Flags people bring from other neural-style tools, and what to type here.

jcjohnson/neural-style (Lua Torch) spells its flags with one dash (`-content_image a.jpg -gpu -1`); such a
command line is answered with the same run written in this program's flags, in one line, instead of being
half-understood: its counts and sizes do not mean quite the same here (-num_iterations counts L-BFGS
iterations there, evaluations here; -gpu -1 means the CPU), so nothing is run on a guess. Double-dash
spellings of this and anishathalye/neural-style get a hint for the one flag (HINTS).
"""
import re

HINTS = {
    "--original_colors": "keep the photo's colours with --preserve-colors post (or --original-colors)",
    "--style-scales": "use --style-scale S [S ...] (one value, or one per style)",
    "--style_scale": "use --style-scale S [S ...]", "--style_mask": "use --style-masks PATH [PATH ...]",
    "--initial-noiseblend": "use --init-noise-blend F", "--normalize_gradients": "use --normalize-gradients",
    "--lbfgs_num_correction": "use --lbfgs-memory N", "--preserve-colours": "use --preserve-colors MODE",
    "--width": "use --size N (the long side in pixels; the recipe's own rule, see --show-recipe)",
    "--image-size": "use --size N", "--image_size": "use --size N",
    "--num-iterations": "use --iterations N (loss+gradient evaluations)",
    "--num_iterations": "use --iterations N (loss+gradient evaluations)",
    "--print-iterations": "use --print-every N", "--print_iter": "use --print-every N",
    "--checkpoint-iterations": "use --save-every N", "--save_iter": "use --save-every N",
    "--style_image": "use --style PATH", "--content_image": "use --content PATH",
    "--styles": "use --style PATH [PATH ...]", "--output_image": "use --output PATH",
    "--backend": "TensorFlow is the only backend; use --device",
    "--initial": "use --init-image PATH", "--init_image": "use --init-image PATH",
}

# jcjohnson's flag -> (this program's flag, how its value translates: "one", "list" (comma-separated), or
# a dict of values); None: no counterpart, dropped with a note
_SAME = "one"
JCJOHNSON = {
    "content_image": ("--content", _SAME), "style_image": ("--style", "list"),
    "style_blend_weights": ("--style-blend-weights", "list"), "image_size": ("--size", _SAME),
    "content_weight": ("--content-weight", _SAME), "style_weight": ("--style-weight", _SAME),
    "tv_weight": ("--tv-weight", _SAME), "num_iterations": ("--iterations", _SAME),
    "init": ("--init", {"random": "noise", "image": "content"}), "init_image": ("--init-image", _SAME),
    "optimizer": ("--optimizer", _SAME), "learning_rate": ("--learning-rate", _SAME),
    "lbfgs_num_correction": ("--lbfgs-memory", _SAME), "print_iter": ("--print-every", _SAME),
    "save_iter": ("--save-every", _SAME), "output_image": ("--output", _SAME),
    "style_scale": ("--style-scale", _SAME), "original_colors": ("--original-colors", _SAME),
    "pooling": ("--pooling", _SAME), "seed": ("--seed", _SAME), "content_layers": ("--content-layers", "list"),
    "style_layers": ("--style-layers", "list"), "gpu": ("--device", "gpu"),
    "normalize_gradients": ("--normalize-gradients", None),
    "model_file": None, "proto_file": None, "backend": None, "cudnn_autotune": None, "multigpu_strategy": None,
}
_FLAGLESS = {"normalize_gradients", "cudnn_autotune"}  # Torch CmdLine booleans: the flag alone


def device_for_gpu(value):
    """jcjohnson's -gpu N: -1 is the CPU, any other number a GPU."""
    return "cpu" if value.strip() == "-1" else "gpu"


def gpu_hint(value):
    return (f"--gpu {value}: use --device {device_for_gpu(value)}"
            + (" (-1 is jcjohnson's CPU)" if device_for_gpu(value) == "cpu" else ""))


def jcjohnson_hint(argv, prog):
    """One line translating a command line with jcjohnson's single-dash flags, or None if it has none."""
    names = [a[1:] for a in argv if re.fullmatch(r"-[a-z_]+", a) and a[1:] in JCJOHNSON]
    if not names:
        return None
    words, dropped, i = [], [], 0
    while i < len(argv):
        token = argv[i]
        name = token[1:] if re.fullmatch(r"-[a-z_]+", token) else None
        if name not in JCJOHNSON:
            words.append(token)
            i += 1
            continue
        value = None if name in _FLAGLESS or i + 1 >= len(argv) else argv[i + 1]
        i += 1 if value is None else 2
        rule = JCJOHNSON[name]
        if rule is None:
            dropped.append(f"-{name}" + ("" if name != "model_file" else " (give Keras VGG weights with --weights)"))
            continue
        flag, kind = rule
        if kind is None:
            words.append(flag)
        elif kind == "gpu":
            words += [flag, device_for_gpu(value or "0")]
        elif kind == "list":
            words += [flag, *[v for v in (value or "").split(",") if v]]
        elif isinstance(kind, dict):
            words += [flag, kind.get(value, value)]
        else:
            words += [flag, value]
    note = f"; dropped {', '.join(dropped)}" if dropped else ""
    return (f"-{names[0]} is jcjohnson/neural-style's spelling; the same run here: {prog} "
            f"{' '.join(_quoted(w) for w in words)} (--iterations counts loss+gradient evaluations{note})")


def _quoted(word):
    return word if re.fullmatch(r"[\w@%+=:,./-]+", word) else "'" + word.replace("'", "'\\''") + "'"
