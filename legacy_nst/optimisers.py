"""The three optimisers the sources used, each yielding one `Step` per loss+gradient evaluation.

- L-BFGS: scipy's fmin_l_bfgs_b fed by an `Evaluator` (seed 003's pattern: loss(x) runs the graph once and
  caches the gradient that grads(x) then returns), with seed 003's outer loop of restarts.
- Adam: tf.compat.v1.train.AdamOptimizer on an image variable (seed 000), optional clip to 0..255.
- Normalised gradient descent: x ← x − step · g / (norm(g) + eps), norm = std (seed 002) or rms (seed 004).

Each run fetches everything a step needs (total, terms, gradient, and for Adam the update) at once.
Every optimiser keeps the state needed to resume exactly at a `boundary` step (`state()` / `steps(state)`).
"""
import queue
import threading
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from scipy.optimize import fmin_l_bfgs_b

from .losses import ADAPTIVE_EPS, TERMS

OPTIMIZERS = ("lbfgs", "adam", "gd")
GD_NORMS = ("std", "rms")


@dataclass
class Step:
    """One evaluation: the image the losses were measured on, and whether a resume can start after it."""

    iteration: int  # optimiser iteration (an outer L-BFGS restart, an Adam or descent step)
    evaluations: int  # loss+gradient evaluations so far in this run
    image: np.ndarray  # (H, W, 3) float32 RGB 0..255
    total: float
    terms: dict
    boundary: bool = True


def _terms(values):
    return dict(zip(TERMS, map(float, values)))


class Evaluator:
    """Loss and gradient from ONE session.run; scipy asks for them separately, so the gradient is cached."""

    def __init__(self, session, objective, image, shape):
        self.session, self.image, self.shape = session, image, shape
        self.fetches = (objective.total, objective.terms, objective.gradient)
        self.feed = {}
        self.runs = 0
        self.on_evaluation = None  # called with (image, total, terms) after every run
        self._x = self._grad = None

    def evaluate(self, x):
        image = np.asarray(x, np.float32).reshape(self.shape)
        total, terms, grad = self.session.run(self.fetches, {self.image: image[None], **self.feed})
        self.runs += 1
        self._x, self._grad = np.array(x, copy=True), grad
        if self.on_evaluation is not None:
            self.on_evaluation(image, float(total), _terms(terms))
        return float(total)

    def loss(self, x):
        return self.evaluate(x)

    def grads(self, x):
        if self._x is None or not np.array_equal(self._x, x):
            self.evaluate(x)
        return self._grad.ravel().astype(np.float64)


class _Cancelled(Exception):
    pass


def lockstep(run):
    """Turn `run(report)`, which calls `report(item)` from inside scipy, into a generator of those items.

    `run` works in a thread that waits after each report until the consumer asks for the next item, so
    the two never run at once; closing the generator makes the next report raise and ends the thread."""
    items, go = queue.Queue(maxsize=1), queue.Queue(maxsize=1)

    def report(item):
        items.put(("item", item))
        if not go.get():
            raise _Cancelled

    def worker():
        try:
            items.put(("done", run(report)))
        except _Cancelled:
            pass
        except BaseException as exc:  # handed to the consumer, raised there
            items.put(("error", exc))

    thread = threading.Thread(target=worker, name="lbfgs", daemon=True)
    thread.start()
    try:
        while True:
            kind, payload = items.get()
            if kind == "done":
                return payload
            if kind == "error":
                raise payload
            yield payload
            go.put(True)
    finally:
        if thread.is_alive():
            go.put(False)
            thread.join()


class _FedImage:
    """An optimiser whose image lives in numpy (float64, as the seeds kept it) and is fed to every run."""

    def __init__(self, recipe, x0):
        self.recipe = recipe
        self.image = tf.compat.v1.placeholder(tf.float32, (1,) + x0.shape, name="image")
        self._state = {"iteration": 0, "image": x0.astype(np.float64)}

    def state(self):
        return dict(self._state)


class LBFGS(_FedImage):
    """fmin_l_bfgs_b restarted `iterations` times with `maxfun` evaluations each (seed 003's outer loop)."""

    name = "lbfgs"

    def attach(self, session, objective):
        self.session, self.objective = session, objective
        self.evaluator = Evaluator(session, objective, self.image, self._state["image"].shape)

    def _adjust(self, x):
        terms = self.session.run(self.objective.terms, {self.image: x.astype(np.float32)[None]})
        return 1.0 / (terms + ADAPTIVE_EPS)

    def steps(self, state=None):
        recipe = self.recipe
        self._state = dict(state or self._state)
        self.evaluator.runs = int(self._state.get("evaluations", 0))  # a resumed run counts on
        x = self._state["image"]
        shape = x.shape
        bounds = [(0.0, 255.0)] * x.size if recipe.lbfgs_bounds else None
        tolerances = {} if recipe.lbfgs_stop_early else {"factr": 0.0, "pgtol": 0.0}
        for restart in range(self._state["iteration"], recipe.iterations):
            if recipe.adaptive:  # a fixed objective for the whole restart
                self.evaluator.feed = {self.objective.adjust: self._adjust(x)}
            seen = {}

            def run(report, x=x, restart=restart, seen=seen):
                def on_evaluation(image, total, terms):
                    seen[hash(image.tobytes())] = (total, terms)
                    report(Step(restart, self.evaluator.runs, image, total, terms, boundary=False))

                self.evaluator.on_evaluation = on_evaluation
                return fmin_l_bfgs_b(self.evaluator.loss, x.ravel(), fprime=self.evaluator.grads,
                                     maxfun=recipe.maxfun, bounds=bounds, **tolerances)

            x_flat, min_val, _ = yield from lockstep(run)
            x = x_flat.reshape(shape)
            image = x.astype(np.float32)
            total, terms = seen.get(hash(image.tobytes()), (float(min_val), None))
            if terms is None:
                terms = _terms(self.session.run(self.objective.terms, {self.image: image[None]}))
            self._state = {"iteration": restart + 1, "image": x, "evaluations": self.evaluator.runs}
            yield Step(restart, self.evaluator.runs, image, total, terms, boundary=True)


class NormalisedDescent(_FedImage):
    """x ← x − step · g / (norm(g) + eps), then optionally clip to 0..255."""

    name = "gd"

    def attach(self, session, objective):
        self.session = session
        self.fetches = (objective.total, objective.terms, objective.gradient)

    def update(self, x, g):
        r = self.recipe
        norm = np.std(g) if r.gd_norm == "std" else np.sqrt(np.mean(np.square(g)))
        x = x - g * (r.learning_rate / (norm + r.gd_eps))
        return np.clip(x, 0.0, 255.0) if r.clip else x

    def steps(self, state=None):
        self._state = dict(state or self._state)
        x = self._state["image"]
        for i in range(self._state["iteration"], self.recipe.iterations):
            image = x.astype(np.float32)
            total, terms, g = self.session.run(self.fetches, {self.image: image[None]})
            x = self.update(x, g[0].astype(np.float64))
            self._state = {"iteration": i + 1, "image": x}
            yield Step(i, i + 1, image, float(total), _terms(terms))


class Adam:
    """tf.compat.v1.train.AdamOptimizer on the image; one run reads x, evaluates, updates (and clips)."""

    name = "adam"

    def __init__(self, recipe, x0):
        self.recipe = recipe
        self.variable = tf.compat.v1.Variable(x0[None].astype(np.float32), name="image", use_resource=True)
        self.image = self.variable.read_value()
        self._iteration = 0

    def attach(self, session, objective):
        r = self.recipe
        self.session = session
        optimizer = tf.compat.v1.train.AdamOptimizer(r.learning_rate, r.beta1, r.beta2, r.epsilon)
        update = optimizer.apply_gradients([(objective.gradient, self.variable)])
        if r.clip:
            with tf.control_dependencies([update]):
                update = self.variable.assign(tf.clip_by_value(self.variable.read_value(), 0.0, 255.0))
        self.fetches = (update, self.image, objective.total, objective.terms)
        beta1_power, beta2_power = optimizer._get_beta_accumulators()
        self.slots = {"image": self.variable, "m": optimizer.get_slot(self.variable, "m"),
                      "v": optimizer.get_slot(self.variable, "v"),
                      "beta1_power": beta1_power, "beta2_power": beta2_power}
        session.run(tf.compat.v1.variables_initializer(list(self.slots.values())))

    def state(self):
        values = self.session.run(self.slots)
        values["image"] = values["image"][0]
        return {"iteration": self._iteration, **values}

    def steps(self, state=None):
        if state is not None:
            # Graph mode for load(): outside the graph, with eager on, it tries an eager assign and fails.
            with self.session.graph.as_default():
                for key, variable in self.slots.items():
                    value = state[key][None] if key == "image" else state[key]
                    variable.load(value, self.session)
            self._iteration = state["iteration"]
        for i in range(self._iteration, self.recipe.iterations):
            _, image, total, terms = self.session.run(self.fetches)
            self._iteration = i + 1
            yield Step(i, i + 1, image[0], float(total), _terms(terms))


OPTIMIZER_CLASSES = {cls.name: cls for cls in (LBFGS, Adam, NormalisedDescent)}
