"""The three optimisers the sources used, each reporting every loss+gradient evaluation through callbacks.

- L-BFGS: scipy's fmin_l_bfgs_b fed by an `Evaluator` (seed 003's pattern: loss(x) runs the graph once and
  caches the gradient that grads(x) then returns), with seed 003's outer loop of restarts.
- Adam: tf.compat.v1.train.AdamOptimizer on an image variable (seed 000), optional clip to 0..255.
- Normalised gradient descent: x ← x − step · g / (norm(g) + eps), norm = std (seed 002) or rms (seed 004).

`run(on_evaluation, on_iteration, state)` calls on_evaluation(Measurement) after every evaluation and
on_iteration(iteration, evaluations, image) after every iteration a resume can start from (an Adam or
descent step, an L-BFGS restart), with the image the optimiser holds then. Both are called on the caller's
thread, from inside scipy for L-BFGS: an exception they raise (an interrupt, a non-finite loss) ends the run
there. Each session.run fetches everything an evaluation needs (total, terms, adjust, gradient, and for Adam
the update) at once. `state()` is what a checkpoint keeps to resume exactly after an iteration.
"""
import functools
from dataclasses import dataclass

import numpy as np
from scipy.optimize import fmin_l_bfgs_b
from threadpoolctl import threadpool_limits

from .runtime import tf
from .terms import adaptive_factors
from ..recipes import term_names


@dataclass(frozen=True)
class Measurement:
    """One evaluation: the image the losses were measured on, the raw terms and the factors applied."""

    iteration: int  # the optimiser iteration it belongs to (an L-BFGS restart, an Adam or descent step)
    evaluations: int  # loss+gradient evaluations so far in this run, this one included
    image: np.ndarray  # (H, W, 3) float32 RGB 0..255
    total: float
    terms: np.ndarray  # raw, in the objective's order (Objective.names)
    adjust: np.ndarray  # per-term factor besides the weight (1, or seed 002's adaptive 1/(L + 1e-10))


def _fetches(objective):
    return objective.total, objective.terms, objective.adjust, objective.gradient


class WholeImageObjective:
    """An Objective's graph evaluated on a fed image, one session.run each: what the fed-image optimisers
    call. tiling.TiledObjective answers the same two calls for images too large for one graph."""

    def __init__(self, session, objective, image):
        self.session, self.objective, self.image = session, objective, image
        self.fetches = _fetches(objective)

    def evaluate(self, image, adjust=None):
        """(total, terms, adjust, gradient (H, W, 3)) of an (H, W, 3) float32 image; `adjust` fed if given."""
        feed = {self.image: image[None]}
        if adjust is not None:
            feed[self.objective.adjust] = adjust
        total, terms, adjust, gradient = self.session.run(self.fetches, feed)
        return float(total), terms, adjust, gradient[0]

    def terms(self, image):
        """The raw terms alone (a forward pass)."""
        return self.session.run(self.objective.terms, {self.image: image[None]})


class BudgetSpent(Exception):
    """The Evaluator was asked for one evaluation more than the budget allows: the driver stops scipy here."""


class Evaluator:
    """Loss and gradient from ONE evaluation; scipy asks for them separately, so the gradient is cached.

    `limit`: the evaluation count (`runs`) the current call may reach; asked for one more, it raises
    BudgetSpent instead of evaluating (scipy itself checks `nfev > maxfun` only at the end of an iteration,
    so a call with maxfun=N makes N + 1 or more)."""

    def __init__(self, evaluation, shape):
        self.evaluation, self.shape = evaluation, shape
        self.adjust = None  # fixed adaptive factors for the current restart (None: the objective's default)
        self.runs = 0
        self.limit = None
        self.iteration = 0
        self.on_evaluation = None  # called with a Measurement after every run
        self._x = self._grad = None

    def evaluate(self, x):
        if self.limit is not None and self.runs >= self.limit:
            raise BudgetSpent()
        image = np.asarray(x, np.float32).reshape(self.shape)
        total, terms, adjust, grad = self.evaluation.evaluate(image, self.adjust)
        self.runs += 1
        self._x, self._grad = np.array(x, copy=True), grad
        if self.on_evaluation is not None:
            self.on_evaluation(Measurement(self.iteration, self.runs, image, total, terms, adjust))
        return total

    def loss(self, x):
        return self.evaluate(x)

    def grads(self, x):
        if self._x is None or not np.array_equal(self._x, x):
            self.evaluate(x)
        return self._grad.ravel().astype(np.float64)


class _FedImage:
    """An optimiser whose image lives in numpy (float64, as the seeds kept it) and is fed to every evaluation:
    of a graph (attach) or of anything with WholeImageObjective's two calls (bind; the tiled objective)."""

    def __init__(self, recipe, x0):
        self.recipe = recipe
        self.shape = x0.shape
        self._state = {"iteration": 0, "evaluations": 0, "image": x0.astype(np.float64)}

    @functools.cached_property
    def image(self):
        """The placeholder an Objective reads (built in the graph that asks for it; a tiled run has none)."""
        return tf.compat.v1.placeholder(tf.float32, (1,) + self.shape, name="image")

    def attach(self, session, objective):
        self.bind(WholeImageObjective(session, objective, self.image))

    def bind(self, evaluation):
        self.evaluation = evaluation

    def state(self):
        return dict(self._state)


class LBFGS(_FedImage):
    """fmin_l_bfgs_b restarted until the evaluation budget is spent, `lbfgs_maxfun` each (seed 003's loop).

    Each call makes exactly its share of the budget (the Evaluator's limit), ending on the last iterate
    scipy accepted; with `lbfgs_call_overshoot` (seed 003) each call runs on to scipy's own stop, the end of
    the first iteration past maxfun, as the source's calls did. `state()` between two restarts resumes
    exactly; in the middle of a call it holds the last accepted iterate (`warm` = 1): scipy keeps its
    curvature pairs inside the call, so a resume from there is a warm restart of L-BFGS from that image."""

    name = "lbfgs"

    def bind(self, evaluation):
        super().bind(evaluation)
        self.evaluator = Evaluator(evaluation, self.shape)

    def _adjust(self, x):
        return adaptive_factors(self.evaluation.terms(x.astype(np.float32)))

    def state(self):
        state = dict(self._state)
        if state.get("warm"):  # evaluations spent since the accepted iterate count against the budget
            state["evaluations"] = self.evaluator.runs
        return state

    def run(self, on_evaluation, on_iteration, state=None):
        recipe = self.recipe
        self._state = dict(state or self._state)
        self.evaluator.runs = int(self._state["evaluations"])  # a resumed run counts on
        self.evaluator.on_evaluation = on_evaluation
        x = self._state["image"]
        # scipy converts a list of pairs to arrays itself; one array pair per side is built once here
        bounds = [(0.0, 255.0)] * x.size if recipe.lbfgs_bounds else None
        tolerances = {} if recipe.lbfgs_stop_early else {"factr": 0.0, "pgtol": 0.0}
        # scipy's L-BFGS-B does its O(n·m) bookkeeping in many small BLAS calls; OpenBLAS spreads each over
        # all cores and waits for them, which cost 250 ms per evaluation at 320 × 240 × 3 (m = 10) against
        # 43 ms on one thread (bench/lbfgs_overhead.py). TensorFlow's own thread pools are not BLAS's.
        with threadpool_limits(limits=1, user_api="blas"):
            self._restarts(on_iteration, x, bounds, tolerances)

    def _restarts(self, on_iteration, x, bounds, tolerances):
        recipe = self.recipe
        per_call = recipe.lbfgs_maxfun or recipe.iterations
        for restart in range(int(self._state["iteration"]), recipe.restarts):
            if recipe.adaptive_weights:  # a fixed objective for the whole restart
                self.evaluator.adjust = self._adjust(x)
            self.evaluator.iteration = restart
            # a resume inside a call spends what is left of that call's share
            start = int(self._state.get("call_start", self.evaluator.runs))
            maxfun = min(per_call, recipe.iterations - restart * per_call) - (self.evaluator.runs - start)
            self.evaluator.limit = None if recipe.lbfgs_call_overshoot else self.evaluator.runs + maxfun

            def accepted(xk, restart=restart, start=start):
                self._state = {"iteration": restart, "evaluations": self.evaluator.runs,
                               "image": np.array(xk, np.float64).reshape(x.shape), "call_start": start, "warm": 1}

            accepted(x)  # until scipy accepts a step, the call's start is its last accepted iterate
            try:
                x_flat, _, _ = fmin_l_bfgs_b(self.evaluator.loss, x.ravel(), fprime=self.evaluator.grads,
                                             m=recipe.lbfgs_memory, maxfun=max(1, maxfun), bounds=bounds,
                                             callback=accepted, **tolerances)
                x = x_flat.reshape(x.shape)
            except BudgetSpent:  # the budget ends inside a line search: the last accepted iterate stands
                x = self._state["image"]
            self._state = {"iteration": restart + 1, "evaluations": self.evaluator.runs, "image": x}
            on_iteration(restart, self.evaluator.runs, x.astype(np.float32))


class ScaledStepDescent(_FedImage):
    """x ← x − step · g / (norm(g) + eps), then optionally clip to 0..255: the step scaled by the gradient's
    spread (Hvass's step_size_scaled; named apart from the unit-mean VGG `normalise` and `normalize_gradients`).

    With `adaptive_weights_lag` (seed 002) the gradient of step i is taken with the adaptive factors of step
    i − 1, fed to the objective, and step 0 with the adj variables' initial 1e-10: in the post's graph the
    assign ops run in the same session.run as the gradient, which reads the values of the previous run."""

    name = "descent"
    INITIAL_ADJ = 1e-10  # the post's tf.Variable(1e-10) for each adj factor

    def update(self, x, g):
        r = self.recipe
        norm = np.std(g) if r.descent_norm == "std" else np.sqrt(np.mean(np.square(g)))
        x = x - g * (r.learning_rate / (norm + r.descent_eps))
        return np.clip(x, 0.0, 255.0) if r.clip else x

    def run(self, on_evaluation, on_iteration, state=None):
        self._state = dict(state or self._state)
        x = self._state["image"]
        lag = self.recipe.adaptive_weights and self.recipe.adaptive_weights_lag
        previous = self._state.get("adjust", np.full(len(term_names(self.recipe)), self.INITIAL_ADJ))
        for i in range(int(self._state["iteration"]), self.recipe.iterations):
            image = x.astype(np.float32)
            total, terms, adjust, g = self.evaluation.evaluate(image, previous if lag else None)
            on_evaluation(Measurement(i, i + 1, image, total, terms, adjust))
            previous = adaptive_factors(terms)  # what the post's assign ops store in this run
            x = self.update(x, g.astype(np.float64))
            self._state = {"iteration": i + 1, "evaluations": i + 1, "image": x}
            if lag:
                self._state["adjust"] = previous
            on_iteration(i, i + 1, x.astype(np.float32))


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
        with tf.control_dependencies([update]):
            updated = self.variable.read_value()
        self.fetches = (updated, self.image, objective.total, objective.terms, objective.adjust)
        beta1_power, beta2_power = optimizer._get_beta_accumulators()
        self.slots = {"image": self.variable, "m": optimizer.get_slot(self.variable, "m"),
                      "v": optimizer.get_slot(self.variable, "v"),
                      "beta1_power": beta1_power, "beta2_power": beta2_power}
        session.run(tf.compat.v1.variables_initializer(list(self.slots.values())))
        # Assign ops built now, while the graph is open (Variable.load would print a deprecation warning)
        self.loads = {}
        for key, variable in self.slots.items():
            value = tf.compat.v1.placeholder(variable.dtype, variable.shape, name=f"load_{key}")
            self.loads[key] = (value, variable.assign(value))

    def state(self):
        values = self.session.run(self.slots)
        values["image"] = values["image"][0]
        return {"iteration": self._iteration, "evaluations": self._iteration, **values}

    def run(self, on_evaluation, on_iteration, state=None):
        if state is not None:
            self.session.run([assign for _, assign in self.loads.values()],
                             {value: state[key][None] if key == "image" else state[key]
                              for key, (value, _) in self.loads.items()})
            self._iteration = int(state["iteration"])
        for i in range(self._iteration, self.recipe.iterations):
            updated, image, total, terms, adjust = self.session.run(self.fetches)
            self._iteration = i + 1
            on_evaluation(Measurement(i, i + 1, image[0], float(total), terms, adjust))
            on_iteration(i, i + 1, updated[0])


from .torch_lbfgs import TorchLBFGS  # noqa: E402 (its own module, built on _FedImage above)

OPTIMIZER_CLASSES = {cls.name: cls for cls in (LBFGS, Adam, ScaledStepDescent, TorchLBFGS)}
