"""The optimisers against the seeds' update rules, the Evaluator's one-run-per-evaluation contract, the
callbacks (what they are given, on which thread, and how an exception in them ends a run), and exact
resume from `state()`.

Recipes keep their optimiser settings but read shallow layers, so every graph here is small.

Tolerances: the figure beside each is the largest error measured on the AVX2 AMD EPYC with both convolution
paths (plain / transposed; one figure where they agree), relative unless marked (abs). A 0 is the same graph
evaluated again in the same session; the update rules are checked against float64 numpy steps from the
engine's own gradients. Every one passed unchanged on the AVX-512 Xeon of earlier rounds.
"""
import dataclasses
import functools
import threading

import numpy as np
import pytest
from scipy.optimize import fmin_l_bfgs_b
from support import synthetic_weights

from legacy_nst import recipes
from legacy_nst.engine import optimisers
from legacy_nst.engine.level import Transfer
from legacy_nst.engine.terms import ADAPTIVE_EPS

SHAPE = (16, 12, 3)
SHALLOW = {"content_layers": ("block2_conv1",), "style_layers": ("block1_conv1", "block2_conv1"),
           "style_layer_weights": (), "content_layer_weights": ()}


@functools.lru_cache(maxsize=None)
def synthetic(network_name, seed=0):
    return synthetic_weights(network_name, seed=seed, layers={"block1_conv1", "block1_conv2", "block2_conv1"})


def recipe(name, **changes):
    return dataclasses.replace(recipes.RECIPES[name], **{**SHALLOW, **changes}).check()


def pictures(seed=0):
    rng = np.random.default_rng(seed)
    content, style = (rng.uniform(0.0, 255.0, SHAPE).astype(np.float32) for _ in range(2))
    return content, style


def make_transfer(r, init_image=None, seed=0):
    content, style = pictures()
    return Transfer(r, content, [style], synthetic(r.network), seed=seed, device="cpu", init_image=init_image)


class Stop(Exception):
    """Raised by a test's callback to end a run where it chooses."""


class Record:
    """The callbacks of one run: every Measurement, and every (iteration, evaluations, image) iteration.

    `stop_evaluation` / `stop_iteration`: raise Stop after recording that evaluation number / iteration.
    `also`: called with each Measurement or iteration tuple, for checks that need the session mid-run."""

    def __init__(self, stop_evaluation=None, stop_iteration=None, also=None):
        self.measurements, self.iterations = [], []
        self.stop_evaluation, self.stop_iteration, self.also = stop_evaluation, stop_iteration, also

    def on_evaluation(self, measurement):
        self.measurements.append(measurement)
        if self.also:
            self.also(measurement)
        if measurement.evaluations == self.stop_evaluation:
            raise Stop(f"evaluation {measurement.evaluations}")

    def on_iteration(self, iteration, evaluations, image):
        self.iterations.append((iteration, evaluations, np.array(image, copy=True)))
        if self.also:
            self.also(self.iterations[-1])
        if iteration == self.stop_iteration:
            raise Stop(f"iteration {iteration}")

    def run(self, transfer, state=None):
        transfer.run(self.on_evaluation, self.on_iteration, state)
        return self


class CountingSession:
    """Stands in for the tf Session and counts `run` calls."""

    def __init__(self, session):
        self.session, self.runs = session, 0

    def run(self, *args, **kwargs):
        self.runs += 1
        return self.session.run(*args, **kwargs)


def objective_values(transfer, x):
    """(total, terms, gradient) of the transfer's objective at RGB image x, straight from its session."""
    o = transfer.objective
    total, terms, grad = transfer.session.run((o.total, o.terms, o.gradient),
                                              {transfer.optimiser.image: np.asarray(x, np.float32)[None]})
    return float(total), terms.astype(np.float64), grad[0].astype(np.float64)


@pytest.fixture
def scipy_calls(monkeypatch):
    """Every fmin_l_bfgs_b call the L-BFGS optimiser makes: (x0, kwargs, returned x, info)."""
    calls = []

    def recording(func, x0, **kwargs):
        start = np.array(x0, copy=True)
        x, value, info = fmin_l_bfgs_b(func, x0, **kwargs)
        calls.append((start, kwargs, np.array(x, copy=True), info))
        return x, value, info

    monkeypatch.setattr(optimisers, "fmin_l_bfgs_b", recording)
    return calls


# ------------------------------------------------------------------------------------------ L-BFGS


def counted_evaluator(transfer):
    """(a session counting its runs, the Evaluator of the transfer's objective on it)."""
    counting = CountingSession(transfer.session)
    objective = optimisers.WholeImageObjective(counting, transfer.objective, transfer.optimiser.image)
    return counting, optimisers.Evaluator(objective, SHAPE)


def test_evaluator_runs_once_per_scipy_evaluation():
    r = recipe("keras-lbfgs")
    with make_transfer(r) as transfer:
        counting, evaluator = counted_evaluator(transfer)
        measured, asked = [], []
        evaluator.on_evaluation = measured.append

        def loss(x):
            asked.append(np.array(x, copy=True))
            return evaluator.loss(x)

        x0 = transfer.content.astype(np.float64).ravel()
        x, value, info = fmin_l_bfgs_b(loss, x0, fprime=evaluator.grads, maxfun=7)
        assert info["funcalls"] >= 2
        assert counting.runs == info["funcalls"] == evaluator.runs == len(measured) == len(asked)
        # one Measurement per evaluation, numbered on, of the point scipy asked about
        assert [m.evaluations for m in measured] == list(range(1, len(measured) + 1))
        for m, point in zip(measured, asked):
            np.testing.assert_array_equal(m.image, point.astype(np.float32).reshape(SHAPE))
        # loss and gradient are those of the objective at the point asked for
        total, _, grad = objective_values(transfer, x.reshape(SHAPE))
        before = counting.runs
        assert evaluator.loss(x) == pytest.approx(total, rel=1e-6)  # measured 0
        # measured 0
        np.testing.assert_allclose(evaluator.grads(x), grad.ravel(), rtol=1e-6, atol=1e-9 * np.abs(grad).max())
        assert counting.runs == before + 1  # grads(x) right after loss(x) is the cached gradient
        assert value <= evaluator.loss(x0) + 1e-6 * abs(value)


def test_evaluator_grads_at_a_new_point_evaluates():
    r = recipe("keras-lbfgs")
    with make_transfer(r) as transfer:
        counting, evaluator = counted_evaluator(transfer)
        x = transfer.content.astype(np.float64).ravel()
        evaluator.loss(x)
        y = x + 1.0
        g = evaluator.grads(y)
        assert counting.runs == 2 and g.dtype == np.float64 and g.shape == y.shape
        # measured 0
        np.testing.assert_allclose(g, objective_values(transfer, y.reshape(SHAPE))[2].ravel(), rtol=1e-6,
                                   atol=1e-9 * np.abs(g).max())


def test_lbfgs_restarts_report_every_evaluation_and_each_restart(scipy_calls):
    """Seed 003's outer loop: iterations=15 evaluations in restarts of fmin_l_bfgs_b(maxfun=5); one
    Measurement per evaluation, then on_iteration once per restart with the image scipy returned."""
    r = recipe("keras-lbfgs", iterations=15, lbfgs_maxfun=5)
    assert r.restarts == 3
    with make_transfer(r) as transfer:
        counting = CountingSession(transfer.session)
        transfer.optimiser.evaluation.session = counting
        record = Record().run(transfer)
        measured = record.measurements
        assert len(scipy_calls) == 3 and [kwargs["maxfun"] for _, kwargs, _, _ in scipy_calls] == [5, 5, 5]
        assert counting.runs == len(measured) == sum(info["funcalls"] for *_, info in scipy_calls)
        assert [m.evaluations for m in measured] == list(range(1, len(measured) + 1))
        assert [(i, e) for i, e, _ in record.iterations] == [
            (k, sum(info["funcalls"] for *_, info in scipy_calls[:k + 1])) for k in range(3)]
        start = transfer.content.astype(np.float64)
        for restart, ((iteration, evaluations, image), (x0, _, returned, _)) in enumerate(
                zip(record.iterations, scipy_calls)):
            mine = [m for m in measured if m.iteration == restart]
            assert len(mine) >= 1 and mine[-1].evaluations == evaluations
            # each restart starts where the previous one ended, and reports the image scipy returned
            np.testing.assert_array_equal(x0, start.ravel())
            np.testing.assert_array_equal(mine[0].image, start.astype(np.float32))
            np.testing.assert_array_equal(image, returned.astype(np.float32).reshape(SHAPE))
            assert any(np.array_equal(m.image, image) for m in mine)  # scipy returns a point it evaluated
            total, _, _ = objective_values(transfer, image)
            assert total <= mine[0].total
            start = returned.reshape(SHAPE)
        state = transfer.state()
        assert (state["iteration"], state["evaluations"]) == (3, len(measured))
        np.testing.assert_array_equal(state["image"], start)
        # every Measurement reports what it was measured on, the terms in the objective's order
        for m in (measured[0], measured[len(measured) // 2], measured[-1]):
            total, terms, _ = objective_values(transfer, m.image)
            assert m.total == pytest.approx(total, rel=1e-6)  # measured 0
            np.testing.assert_allclose(m.terms, terms, rtol=1e-6)  # measured 0
            np.testing.assert_array_equal(m.adjust, [1.0, 1.0, 1.0])
        assert transfer.term_names == ("content", "style", "tv")


def test_lbfgs_maxfun_zero_is_one_call_with_the_whole_budget(scipy_calls):
    r = recipe("keras-lbfgs", iterations=9, lbfgs_maxfun=0, lbfgs_stop_early=False)
    assert r.restarts == 1
    with make_transfer(r) as transfer:
        record = Record().run(transfer)
    assert len(scipy_calls) == 1 and scipy_calls[0][1]["maxfun"] == 9
    assert [i for i, _, _ in record.iterations] == [0]
    assert {m.iteration for m in record.measurements} == {0}
    assert len(record.measurements) >= 9  # no early stop: the budget is spent (scipy ends past maxfun)


def test_an_lbfgs_budget_of_n_evaluations_runs_exactly_n():
    """Issue 20.8: scipy ends a call only at the end of the first iteration past maxfun (40 ran 41, 120 with
    maxfun 20 ran 127); the driver stops each call at exactly its share and keeps the last accepted iterate.
    Seed 003's own calls overshoot (lbfgs_call_overshoot, its recipe's faithful default)."""
    exact = recipe("keras-lbfgs", iterations=10, lbfgs_maxfun=4, lbfgs_stop_early=False, lbfgs_call_overshoot=False)
    with make_transfer(exact) as transfer:
        record = Record().run(transfer)
        assert [m.evaluations for m in record.measurements] == list(range(1, 11))
        assert [(i, e) for i, e, _ in record.iterations] == [(0, 4), (1, 8), (2, 10)]
        for restart, (_, _, image) in enumerate(record.iterations):
            mine = [m for m in record.measurements if m.iteration == restart]
            accepted = [m for m in mine if np.array_equal(m.image, image)]
            assert accepted and accepted[-1].total <= mine[0].total  # an iterate scipy accepted, not a trial
        assert transfer.state()["evaluations"] == 10
    faithful = dataclasses.replace(exact, lbfgs_call_overshoot=True)
    with make_transfer(faithful) as transfer:
        record = Record().run(transfer)
        assert len(record.measurements) > 10  # 5 or more per call of maxfun=4, as the source's calls made


def test_lbfgs_memory_and_tolerances_reach_scipy(scipy_calls):
    r = recipe("keras-lbfgs", iterations=4, lbfgs_maxfun=4, lbfgs_memory=3, lbfgs_stop_early=False)
    with make_transfer(r) as transfer:
        Record().run(transfer)
    (_, kwargs, _, _), = scipy_calls
    assert (kwargs["m"], kwargs["factr"], kwargs["pgtol"], kwargs["bounds"]) == (3, 0.0, 0.0, None)


def test_lbfgs_bounds_keep_pixels_in_range():
    r = recipe("preview", iterations=8, style_weight=1e3)
    assert r.lbfgs_bounds and r.lbfgs_maxfun == 0
    with make_transfer(r) as transfer:
        record = Record().run(transfer)
        for m in record.measurements:
            assert m.image.min() >= 0.0 and m.image.max() <= 255.0
        final = transfer.state()["image"]
        assert final.min() >= 0.0 and final.max() <= 255.0
        assert np.any(final == 0.0) or np.any(final == 255.0)  # the bounds were active


def test_lbfgs_adaptive_objective_is_fixed_within_a_restart():
    """With seed 002's adaptive weights under L-BFGS, adjust is taken at each restart's start image."""
    r = recipe("hvass-vgg16", optimizer="lbfgs", iterations=8, lbfgs_maxfun=4, content_layers=("2",),
               style_layers=("0", "2"))
    assert r.adaptive_weights and r.restarts == 2
    with make_transfer(r, init_image=pictures()[0].astype(np.float64)) as transfer:
        record = Record().run(transfer)
        w = np.array([r.content_weight, r.style_weight, r.tv_weight])
        start = transfer.content
        for restart in range(2):
            _, start_terms, _ = objective_values(transfer, start)
            adjust = 1.0 / (start_terms + ADAPTIVE_EPS)
            mine = [m for m in record.measurements if m.iteration == restart]
            assert len(mine) >= 2
            for m in mine:
                np.testing.assert_allclose(m.adjust, adjust, rtol=1e-5)  # measured 2.6e-8 plain / 3.4e-8 transposed
                assert m.total == pytest.approx(float(np.sum(w * adjust * m.terms)), rel=1e-5)  # measured 4.1e-8
            start = record.iterations[restart][2]


# -------------------------------------------------------------------------------------- callbacks


def test_exception_from_on_evaluation_stops_lbfgs_mid_run():
    """An interrupt or a non-finite loss raised from a callback leaves scipy at once and reaches the caller;
    the restart it interrupted is not finished, so state() is a warm one: the last iterate scipy accepted
    (here still the restart's start) with the evaluations spent so far."""
    r = recipe("keras-lbfgs", iterations=30, lbfgs_maxfun=10)
    with make_transfer(r) as transfer:
        counting = CountingSession(transfer.session)
        transfer.optimiser.evaluation.session = counting
        record = Record(stop_evaluation=3)
        with pytest.raises(Stop, match="evaluation 3"):
            record.run(transfer)
        assert [m.evaluations for m in record.measurements] == [1, 2, 3]
        assert counting.runs == 3  # nothing evaluated after the exception
        assert record.iterations == []
        state = transfer.state()
        assert (state["iteration"], state["evaluations"], state["warm"], state["call_start"]) == (0, 3, 1, 0)
        np.testing.assert_array_equal(state["image"], transfer.content.astype(np.float64))


def test_exception_from_on_iteration_stops_lbfgs_after_that_restart(scipy_calls):
    r = recipe("keras-lbfgs", iterations=30, lbfgs_maxfun=10)
    with make_transfer(r) as transfer:
        record = Record(stop_iteration=1)
        with pytest.raises(Stop, match="iteration 1"):
            record.run(transfer)
        assert len(scipy_calls) == 2  # the third restart never started
        assert [i for i, _, _ in record.iterations] == [0, 1]
        assert {m.iteration for m in record.measurements} == {0, 1}
        state = transfer.state()
        assert (state["iteration"], state["evaluations"]) == (2, len(record.measurements))
        np.testing.assert_array_equal(state["image"].astype(np.float32), record.iterations[-1][2])


def test_error_inside_an_lbfgs_evaluation_propagates():
    r = recipe("keras-lbfgs", iterations=20, lbfgs_maxfun=10)
    with make_transfer(r) as transfer:

        class Broken:
            def __init__(self, session):
                self.session, self.runs = session, 0

            def run(self, *args, **kwargs):
                self.runs += 1
                if self.runs == 3:
                    raise FloatingPointError("evaluation 3 failed")
                return self.session.run(*args, **kwargs)

        transfer.optimiser.evaluation.session = Broken(transfer.session)
        record = Record()
        with pytest.raises(FloatingPointError, match="evaluation 3"):
            record.run(transfer)
        assert len(record.measurements) == 2 and record.iterations == []


@pytest.mark.parametrize("name, changes", [
    ("keras-lbfgs", {"iterations": 10, "lbfgs_maxfun": 5}),
    ("tf-eager-blog", {"iterations": 3}),
    ("keras-gd-noise", {"iterations": 3}),
])
def test_callbacks_run_on_the_callers_thread_and_no_thread_is_started(name, changes):
    """No worker thread any more: both callbacks run on the thread that called run(), and the run leaves
    the same Python threads alive as before it."""
    r = recipe(name, **changes)
    with make_transfer(r) as transfer:
        caller, before = threading.current_thread(), set(threading.enumerate())
        seen = []
        record = Record(also=lambda _: seen.append((threading.current_thread(), set(threading.enumerate()))))
        record.run(transfer)
        assert len(seen) == len(record.measurements) + len(record.iterations) >= 4
        assert all(thread is caller and alive == before for thread, alive in seen)
        assert set(threading.enumerate()) == before


# ------------------------------------------------------------------------------ one step, as seeded


def tf1_adam(x, grads, lr, beta1, beta2, eps, clip):
    """tf.compat.v1.train.AdamOptimizer's update, step by step (m, v from 0; t from 1)."""
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    for t, g in enumerate(grads, start=1):
        lr_t = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        x = x - lr_t * m / (np.sqrt(v) + eps)
        if clip:
            x = np.clip(x, 0.0, 255.0)
        yield x, m, v


@pytest.mark.parametrize("clip", [False, True])
def test_adam_steps_are_tf1_adam(clip):
    """Seed 000: Adam(lr 5, beta1 0.99, epsilon 0.1, beta2 default), optionally clipped to 0..255."""
    r = recipe("tf-eager-blog", iterations=2, clip=clip)
    assert (r.learning_rate, r.beta1, r.beta2, r.epsilon) == (5.0, 0.99, 0.999, 0.1)
    with make_transfer(r) as transfer:
        x = transfer.content.astype(np.float64)
        grads, states, expected = [], [], []

        def during(event):
            if isinstance(event, optimisers.Measurement):
                # the objective where the Measurement says it was measured (the image before the update)
                total, _, g = objective_values(transfer, event.image)
                expected.append(total)
                grads.append(g)
            else:
                states.append(transfer.state())

        record = Record(also=during).run(transfer)
        measured = record.measurements
        assert [(m.iteration, m.evaluations) for m in measured] == [(0, 1), (1, 2)]
        assert [(i, e) for i, e, _ in record.iterations] == [(0, 1), (1, 2)]
        np.testing.assert_array_equal(measured[0].image, transfer.content)  # init = content
        for m, total in zip(measured, expected):
            assert m.total == pytest.approx(total, rel=1e-6)  # measured 0
        for (_, _, image), state, m in zip(record.iterations, states, measured[1:]):
            # on_iteration gets the image after the update, which the next step measures
            np.testing.assert_array_equal(image, state["image"])
            np.testing.assert_array_equal(m.image, image)
        for state, (x_ref, m_ref, v_ref) in zip(states, tf1_adam(x, grads, r.learning_rate, r.beta1, r.beta2,
                                                                 r.epsilon, clip)):
            np.testing.assert_allclose(state["image"], x_ref, rtol=1e-5, atol=1e-3)  # measured 3.0e-5 (abs)
            # measured 5.7e-6 plain / 3.4e-6 transposed
            np.testing.assert_allclose(state["m"][0], m_ref, rtol=1e-4, atol=1e-6 * np.abs(m_ref).max())
            # measured 1.3e-5
            np.testing.assert_allclose(state["v"][0], v_ref, rtol=1e-4, atol=1e-6 * np.abs(v_ref).max())
        moved = np.abs(states[-1]["image"] - x).max()
        assert moved > 1.0
        unclipped = list(tf1_adam(x, grads, r.learning_rate, r.beta1, r.beta2, r.epsilon, False))[-1][0]
        if clip:
            assert unclipped.min() < 0 or unclipped.max() > 255  # the clip had work to do


def test_seed_002_normalised_descent_step():
    """x ← clip(x − step · g / (std(g) + 1e-8), 0, 255), step 10 (with the current adaptive factors: the
    post's lag is pinned against its code in test_fidelity)."""
    r = recipe("hvass-vgg16", iterations=1, content_layers=("2",), style_layers=("0", "1", "2"),
               adaptive_weights_lag=False)
    assert (r.learning_rate, r.descent_norm, r.descent_eps, r.clip) == (10.0, "std", 1e-8, True)
    x0 = np.random.default_rng(1).uniform(0.0, 255.0, SHAPE)
    with make_transfer(r, init_image=x0) as transfer:
        total, _, g = objective_values(transfer, x0)
        record = Record().run(transfer)
        (m,) = record.measurements
        unclipped = x0 - 10.0 * g / (np.std(g) + 1e-8)
        expected = np.clip(unclipped, 0.0, 255.0)
        assert np.any(unclipped != expected)  # the clip had work to do
        # measured 2.8e-14 plain / 7.1e-15 transposed (abs)
        np.testing.assert_allclose(transfer.state()["image"], expected, rtol=1e-6, atol=1e-4)
        np.testing.assert_array_equal(m.image, x0.astype(np.float32))
        assert (m.iteration, m.evaluations) == (0, 1)
        assert m.total == pytest.approx(total, rel=1e-6)  # measured 0
        ((iteration, evaluations, image),) = record.iterations
        assert (iteration, evaluations) == (0, 1)
        np.testing.assert_array_equal(image, transfer.state()["image"].astype(np.float32))


def test_seed_004_rms_descent_step():
    """x ← x − 0.01 · g / (sqrt(mean(g²)) + 1e-5), no clip."""
    r = recipe("keras-gd-noise", iterations=2, style_layers=("block2_conv1", "block1_conv1"),
               style_layer_weights=(1 / 2, 1 / 3), content_layers=("block1_conv1",))
    assert (r.learning_rate, r.descent_norm, r.descent_eps, r.clip) == (0.01, "rms", 1e-5, False)
    x0 = np.random.default_rng(2).uniform(-5.0, 260.0, SHAPE)  # outside 0..255 stays outside: no clip
    with make_transfer(r, init_image=x0) as transfer:
        states = []
        record = Record(also=lambda e: None if isinstance(e, optimisers.Measurement)
                        else states.append(transfer.state())).run(transfer)
        assert len(states) == len(record.measurements) == 2
        x = x0
        for state, m in zip(states, record.measurements):
            np.testing.assert_array_equal(m.image, x.astype(np.float32))
            _, _, g = objective_values(transfer, x)
            x = x - 0.01 * g / (np.sqrt(np.mean(g * g)) + 1e-5)
            # measured 0 plain / 5.6e-17 transposed (abs)
            np.testing.assert_allclose(state["image"], x, rtol=1e-7, atol=1e-6)
        assert transfer.state()["image"].min() < 0.0


def test_gd_noise_init_is_seed_004s_uniform_in_preprocessed_space():
    """Not an update, but the start seed 004's descent relies on: U[0, 1) in BGR − mean space."""
    r = recipe("keras-gd-noise", iterations=1, style_layers=("block2_conv1",), style_layer_weights=(1.0,),
               content_layers=("block1_conv1",))
    with make_transfer(r, seed=3) as transfer:
        x0 = transfer.state()["image"]
        preprocessed = x0[..., ::-1] - np.array([103.939, 116.779, 123.68])
        assert preprocessed.min() >= 0.0 and preprocessed.max() < 1.0


# ------------------------------------------------------------------------------------------- resume


def run_straight(r):
    with make_transfer(r) as transfer:
        return Record().run(transfer), transfer.state()


def run_resumed(r, stop_iteration):
    """Stop by raising from on_iteration at `stop_iteration`, take state(), continue in a brand-new Transfer."""
    before = Record(stop_iteration=stop_iteration)
    with make_transfer(r) as first:
        with pytest.raises(Stop):
            before.run(first)
        state = first.state()
    # a different start image: a resume must ignore it
    with make_transfer(r, init_image=pictures(seed=5)[0].astype(np.float64)) as second:
        return before, Record().run(second, state), second.state()


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(np.asarray(b[key]), np.asarray(a[key]), err_msg=key)


def assert_same_measurements(straight, resumed):
    assert len(straight) == len(resumed)
    for s, t in zip(straight, resumed):
        assert (t.iteration, t.evaluations, t.total) == (s.iteration, s.evaluations, s.total)
        np.testing.assert_array_equal(t.image, s.image)
        np.testing.assert_array_equal(t.terms, s.terms)
        np.testing.assert_array_equal(t.adjust, s.adjust)


def assert_same_iterations(straight, resumed):
    assert [(i, e) for i, e, _ in straight] == [(i, e) for i, e, _ in resumed]
    for (_, _, s), (_, _, t) in zip(straight, resumed):
        np.testing.assert_array_equal(t, s)


@pytest.mark.parametrize("name, changes", [
    ("hvass-vgg16", {"content_layers": ("2",), "style_layers": ("0", "2")}),
    ("keras-gd-noise", {}),
    ("tf-eager-blog", {"clip": True}),
    ("tf-eager-blog", {}),
    ("jcjohnson", {}),  # torch-lbfgs: its pairs, direction and step in the state
    ("gatys-code", {}),
])
def test_resume_descent_and_adam(name, changes):
    r = recipe(name, iterations=5, **changes)
    straight, final = run_straight(r)
    before, after, resumed = run_resumed(r, stop_iteration=1)
    assert [m.iteration for m in before.measurements] == [0, 1]
    assert [m.iteration for m in after.measurements] == [2, 3, 4]
    assert resumed["iteration"] == final["iteration"] == 5
    assert_same_state(final, resumed)
    assert_same_measurements(straight.measurements[2:], after.measurements)
    assert_same_iterations(straight.iterations[2:], after.iterations)
    # resuming really continued (not restarted): the image moved on from the saved one
    assert np.abs(resumed["image"] - before.iterations[-1][2]).max() > 0


def test_resume_lbfgs_at_a_restart():
    r = recipe("keras-lbfgs", iterations=15, lbfgs_maxfun=5)
    straight, final = run_straight(r)
    before, after, resumed = run_resumed(r, stop_iteration=0)
    assert [i for i, _, _ in before.iterations] == [0]
    assert [i for i, _, _ in after.iterations] == [1, 2]
    assert resumed["iteration"] == final["iteration"] == 3
    assert_same_state(final, resumed)
    # the resumed run counts on: the same iteration, evaluation number and values as the straight run
    assert_same_measurements([m for m in straight.measurements if m.iteration >= 1], after.measurements)
    assert_same_iterations(straight.iterations[1:], after.iterations)
