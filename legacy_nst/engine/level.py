"""One level of a run (one size of its schedule): compute the targets once, build one graph, let the optimiser run.

`Transfer(...)` holds one level's graph and session (a context manager); `run(on_evaluation, on_iteration)`
reports every evaluation and every finished iteration to the caller, who decides what to print, save and
keep (as in anishathalye/neural-style). Nothing here writes files or knows about a terminal.
"""
import numpy as np

from . import DEVICES, untileable
from .network import VGG, default_conv
from .optimisers import OPTIMIZER_CLASSES, WholeImageObjective
from .runtime import tf
from .start import initial_image
from .terms import Objective, StyleTarget, gram, layer_masks
from .tiling import TiledObjective
from ..errors import UserError
from ..recipes import term_names, term_weights
from ..vgg.architecture import deepest_layer


def check_device(device):
    if device not in DEVICES:
        raise UserError(f"unknown device {device!r}; use auto, cpu or gpu")
    if device == "gpu" and not tf.config.list_physical_devices("GPU"):
        raise UserError("--device gpu: TensorFlow sees no GPU here; use --device cpu or auto")


def session_config(device, threads=None):
    """The session's settings; `threads` (None: one per core) sizes its own pool as runtime.fix_threads has
    sized the process's kernels' pool."""
    check_device(device)
    config = tf.compat.v1.ConfigProto(device_count={"GPU": 0} if device == "cpu" else {})
    config.intra_op_parallelism_threads = threads or 0
    # The VGG graph is one chain: running two ops at once only makes their oneDNN kernels share the cores
    # (bench/README.md). The session's own inter-op pool, or TF uses the first session's in the process.
    config.inter_op_parallelism_threads = 1
    config.use_per_session_threads = True
    return config


class _Level:
    """What the run loop needs of one level, untiled or tiled: its terms, the optimiser's run and state."""

    @property
    def term_names(self):
        return term_names(self.recipe)

    @property
    def term_weights(self):
        return term_weights(self.recipe)

    def evaluate(self, image, adjust=None):
        """(total, terms, adjust, gradient (H, W, 3)) of the objective at an (H, W, 3) RGB image, as the
        optimiser evaluates it (terms and adjust in the order of term_names); `adjust` is fed if given."""
        return self._evaluation.evaluate(np.asarray(image, np.float32), adjust)

    def run(self, on_evaluation, on_iteration, state=None):
        """Optimise to the end of the budget (or until a callback raises); `state` resumes a checkpoint."""
        self.optimiser.run(on_evaluation, on_iteration, state)

    def state(self):
        return self.optimiser.state()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class Transfer(_Level):
    """One run's graph, session and optimiser. Targets are computed here, once, then held fixed."""

    def __init__(self, recipe, content, styles, params, blend=None, seed=0, device="auto", init_image=None,
                 masks=None, threads=None):
        """`masks`: None, or one (H, W) mask per style at the content's size (None for an unmasked style):
        each masked style then gets its own guided-Gram term instead of the blend."""
        self.recipe = recipe
        self.content, self.styles = content, styles
        blend = np.asarray(blend if blend is not None else [1.0] * len(styles), np.float64)
        blend = blend / blend.sum()
        x0 = initial_image(recipe, content, styles, seed) if init_image is None else init_image
        self.graph = tf.Graph()
        with self.graph.as_default():
            deepest = deepest_layer(recipe.network, recipe.layers)
            vgg = VGG(recipe.network, params, deepest, recipe.pooling, conv=default_conv(device))
            probe = tf.compat.v1.placeholder(tf.float32, (1, None, None, 3), name="probe")
            probe_features = vgg(probe)
            grams = {layer: gram(probe_features[layer], recipe.gram_norm) for layer in recipe.style_layers}
            self.session = tf.compat.v1.Session(graph=self.graph, config=session_config(device, threads))
            content_targets = self.session.run({l: probe_features[l][0:1] for l in recipe.content_layers},
                                               {probe: content[None]})
            style_grams = [self.session.run(grams, {probe: style[None]}) for style in styles]
            if masks is None:  # the sources' blend: one target, the weighted sum of the styles' Grams
                style_targets = [StyleTarget(1.0, {layer: sum(w * g[layer] for w, g in zip(blend, style_grams))
                                                   for layer in recipe.style_layers})]
            else:
                full = np.ones(content.shape[:2], np.float32)
                style_targets = [StyleTarget(w, g, layer_masks(full if m is None else m, recipe.network,
                                                                recipe.style_layers, recipe.mask_mode))
                                 for w, g, m in zip(blend, style_grams, masks)]
            self.optimiser = OPTIMIZER_CLASSES[recipe.optimizer](recipe, x0)
            self.objective = Objective(vgg, self.optimiser.image, recipe, content_targets, style_targets)
            self.objective.initialise(self.session)
            self.optimiser.attach(self.session, self.objective)
            # the optimiser's own evaluation where it has one, so that its fetches are prepared only once
            self._evaluation = getattr(self.optimiser, "evaluation", None) or WholeImageObjective(
                self.session, self.objective, self.optimiser.image)
        self.graph.finalize()

    def close(self):
        self.session.close()


class TiledTransfer(_Level):
    """Transfer for an image too large for one graph: the same optimiser fed by tiling.TiledObjective, whose
    loss and gradient equal the untiled ones (tests/engine/test_tiling.py); targets are computed in tiles too."""

    def __init__(self, recipe, content, styles, params, blend=None, seed=0, device="auto", init_image=None,
                 tile=512, threads=None):
        reason = untileable(recipe)
        if reason:
            raise UserError(f"{recipe.name} cannot run in tiles: {reason}")
        self.recipe = recipe
        self.content, self.styles = content, styles
        self.objective = TiledObjective(recipe, params, tile, config=session_config(device, threads),
                                        conv=default_conv(device))
        self.objective.hold(*self.objective.targets(content, styles, blend))
        x0 = initial_image(recipe, content, styles, seed) if init_image is None else init_image
        self.optimiser = OPTIMIZER_CLASSES[recipe.optimizer](recipe, x0)
        self.optimiser.bind(self.objective)
        self._evaluation = self.objective

    def close(self):
        self.objective.close()
