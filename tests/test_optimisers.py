"""The optimisers against the seeds' update rules, the Evaluator's one-run-per-evaluation contract, the
lockstep generator's thread handling, and exact resume from `state()`.

Recipes keep their optimiser settings but read shallow layers, so every graph here is small.
"""
import dataclasses
import functools
import threading
import time

import numpy as np
import pytest
from scipy.optimize import fmin_l_bfgs_b

from legacy_nst import optimisers, recipes, weights
from legacy_nst.losses import ADAPTIVE_EPS
from legacy_nst.transfer import Transfer

SHAPE = (16, 12, 3)
SHALLOW = {"content_layers": ("block2_conv1",), "style_layers": ("block1_conv1", "block2_conv1"),
           "style_layer_weights": (), "content_layer_weights": ()}


@functools.lru_cache(maxsize=None)
def synthetic(network_name, seed=0):
    return weights.synthetic_weights(network_name, seed=seed, layers={"block1_conv1", "block1_conv2",
                                                                       "block2_conv1"})


def recipe(name, **changes):
    return dataclasses.replace(recipes.RECIPES[name], **{**SHALLOW, **changes}).check()


def pictures(seed=0):
    rng = np.random.default_rng(seed)
    content, style = (rng.uniform(0.0, 255.0, SHAPE).astype(np.float32) for _ in range(2))
    return content, style


def make_transfer(r, init_image=None, seed=0):
    content, style = pictures()
    return Transfer(r, content, [style], synthetic(r.network), seed=seed, device="cpu", init_image=init_image)


def lbfgs_threads():
    return {t for t in threading.enumerate() if t.name == "lbfgs" and t.is_alive()}


def wait_no_new_threads(before, timeout=5.0):
    deadline = time.monotonic() + timeout
    while lbfgs_threads() - before and time.monotonic() < deadline:
        time.sleep(0.01)
    return lbfgs_threads() - before


def within(seconds, fn):
    """fn() in a helper thread: a lockstep that loses the worker's exception would hang, not fail."""
    outcome = {}

    def target():
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: B902 - handed back to the test
            outcome["error"] = exc

    helper = threading.Thread(target=target, daemon=True)
    helper.start()
    helper.join(seconds)
    assert not helper.is_alive(), f"still running after {seconds} s (a hang)"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


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


# ------------------------------------------------------------------------------------------ L-BFGS


def test_evaluator_runs_once_per_scipy_evaluation():
    r = recipe("keras-lbfgs")
    transfer = make_transfer(r)
    try:
        counting = CountingSession(transfer.session)
        evaluator = optimisers.Evaluator(counting, transfer.objective, transfer.optimiser.image, SHAPE)
        x0 = transfer.content.astype(np.float64).ravel()
        x, value, info = fmin_l_bfgs_b(evaluator.loss, x0, fprime=evaluator.grads, maxfun=7)
        assert info["funcalls"] >= 2
        assert counting.runs == info["funcalls"] == evaluator.runs
        # loss and gradient are those of the objective at the point asked for
        total, _, grad = objective_values(transfer, x.reshape(SHAPE))
        before = counting.runs
        assert evaluator.loss(x) == pytest.approx(total, rel=1e-6)
        np.testing.assert_allclose(evaluator.grads(x), grad.ravel(), rtol=1e-6, atol=1e-9 * np.abs(grad).max())
        assert counting.runs == before + 1  # grads(x) right after loss(x) is the cached gradient
        assert value <= evaluator.loss(x0) + 1e-6 * abs(value)
    finally:
        transfer.close()


def test_evaluator_grads_at_a_new_point_evaluates():
    r = recipe("keras-lbfgs")
    transfer = make_transfer(r)
    try:
        counting = CountingSession(transfer.session)
        evaluator = optimisers.Evaluator(counting, transfer.objective, transfer.optimiser.image, SHAPE)
        x = transfer.content.astype(np.float64).ravel()
        evaluator.loss(x)
        y = x + 1.0
        g = evaluator.grads(y)
        assert counting.runs == 2 and g.dtype == np.float64 and g.shape == y.shape
        np.testing.assert_allclose(g, objective_values(transfer, y.reshape(SHAPE))[2].ravel(), rtol=1e-6,
                                   atol=1e-9 * np.abs(g).max())
    finally:
        transfer.close()


def test_lbfgs_restarts_yield_a_boundary_per_restart():
    """Seed 003's outer loop: iterations=3 restarts of fmin_l_bfgs_b(maxfun), one Step per evaluation,
    then a boundary Step carrying the restart's result."""
    r = recipe("keras-lbfgs", iterations=3, maxfun=5)
    transfer = make_transfer(r)
    try:
        counting = CountingSession(transfer.session)
        transfer.optimiser.evaluator.session = counting
        steps = list(transfer.steps())
        boundaries = [s for s in steps if s.boundary]
        assert [s.iteration for s in boundaries] == [0, 1, 2]
        assert steps[-1].boundary
        evaluations = [s for s in steps if not s.boundary]
        assert counting.runs == len(evaluations)  # one session.run per evaluation
        assert [s.evaluations for s in evaluations] == list(range(1, len(evaluations) + 1))
        start = transfer.content.astype(np.float64)
        seen = 0
        for restart in range(3):
            mine = [s for s in evaluations if s.iteration == restart]
            assert 1 <= len(mine)
            seen += len(mine)
            boundary = boundaries[restart]
            assert boundary.evaluations == seen
            # each restart starts where the previous one ended
            np.testing.assert_array_equal(mine[0].image, start.astype(np.float32))
            total, terms, _ = objective_values(transfer, boundary.image)
            assert boundary.total == pytest.approx(total, rel=1e-6)
            assert boundary.terms == pytest.approx(dict(zip(("content", "style", "tv"), terms)), rel=1e-6)
            assert boundary.total <= mine[0].total
            start = boundary.image
        state = transfer.state()
        assert state["iteration"] == 3
        np.testing.assert_array_equal(state["image"].astype(np.float32), boundaries[-1].image)
        # every evaluation Step reports what it was measured on
        step = evaluations[len(evaluations) // 2]
        total, _, _ = objective_values(transfer, step.image)
        assert step.total == pytest.approx(total, rel=1e-6)
    finally:
        transfer.close()


def test_lbfgs_bounds_keep_pixels_in_range():
    r = recipe("preview", maxfun=8, iterations=1, style_weight=1e3)
    assert r.lbfgs_bounds
    transfer = make_transfer(r)
    try:
        steps = list(transfer.steps())
        for s in steps:
            assert s.image.min() >= 0.0 and s.image.max() <= 255.0
        final = transfer.state()["image"]
        assert final.min() >= 0.0 and final.max() <= 255.0
        assert np.any(final == 0.0) or np.any(final == 255.0)  # the bounds were active
    finally:
        transfer.close()


def test_lbfgs_adaptive_objective_is_fixed_within_a_restart():
    """With seed 002's adaptive weights under L-BFGS, adjust is taken at each restart's start image."""
    r = recipe("hvass-vgg16", optimizer="lbfgs", iterations=2, maxfun=4, content_layers=("2",),
               style_layers=("0", "2"))
    assert r.adaptive
    transfer = make_transfer(r, init_image=pictures()[0].astype(np.float64))
    try:
        steps = list(transfer.steps())
        w = np.array([r.content_weight, r.style_weight, r.tv_weight])
        start = transfer.content
        for restart in range(2):
            _, start_terms, _ = objective_values(transfer, start)
            adjust = 1.0 / (start_terms + ADAPTIVE_EPS)
            for s in (s for s in steps if s.iteration == restart and not s.boundary):
                terms = np.array([s.terms[k] for k in ("content", "style", "tv")])
                assert s.total == pytest.approx(float(np.sum(w * adjust * terms)), rel=1e-5)
            start = [s for s in steps if s.boundary][restart].image
    finally:
        transfer.close()


# --------------------------------------------------------------------------------------- lockstep


def test_lockstep_runs_to_completion_and_returns():
    log = []

    def run(report):
        for i in range(5):
            log.append(("worker", i))
            report(i)
        return "result"

    def consume():
        result = yield from optimisers.lockstep(run)
        return result

    before = lbfgs_threads()
    items, gen = [], consume()
    while True:
        try:
            item = next(gen)
        except StopIteration as stop:
            assert stop.value == "result"
            break
        log.append(("consumer", item))
        items.append(item)
    assert items == list(range(5))
    # strictly alternating: the worker never runs ahead of the consumer
    assert log == [(who, i) for i in range(5) for who in ("worker", "consumer")]
    assert not wait_no_new_threads(before)


def test_lockstep_worker_waits_for_the_consumer():
    progress = []

    def run(report):
        for i in range(100):
            report(i)
            progress.append(i)

    gen = optimisers.lockstep(run)
    assert next(gen) == 0
    time.sleep(0.1)
    assert progress == []  # still blocked inside report(0)
    assert next(gen) == 1
    time.sleep(0.1)
    assert progress == [0]
    gen.close()


def test_closing_lockstep_early_stops_the_worker():
    before = lbfgs_threads()
    reached, cleaned = [], []

    def run(report):
        try:
            for i in range(1000):
                report(i)
                reached.append(i)
        finally:
            cleaned.append(True)

    gen = optimisers.lockstep(run)
    assert [next(gen) for _ in range(3)] == [0, 1, 2]
    assert lbfgs_threads() - before  # the worker exists while the consumer holds the generator
    gen.close()
    assert not lbfgs_threads() - before  # close() joins: nothing is left alive, at once
    assert cleaned == [True]
    assert reached == [0, 1]  # report(2) raised instead of returning


def test_lockstep_worker_exception_propagates():
    before = lbfgs_threads()

    class Boom(RuntimeError):
        pass

    def run(report):
        report("a")
        report("b")
        raise Boom("from scipy's side")

    gen = optimisers.lockstep(run)
    assert next(gen) == "a"
    assert next(gen) == "b"
    with pytest.raises(Boom, match="scipy's side"):
        within(10, lambda: next(gen))
    assert not wait_no_new_threads(before)


def test_lockstep_exception_before_first_item():
    before = lbfgs_threads()

    def run(report):
        raise ValueError("no items at all")

    with pytest.raises(ValueError, match="no items"):
        within(10, lambda: list(optimisers.lockstep(run)))
    assert not wait_no_new_threads(before)


def test_closing_lbfgs_steps_early_leaves_no_thread():
    before = lbfgs_threads()
    r = recipe("keras-lbfgs", iterations=3, maxfun=10)
    transfer = make_transfer(r)
    try:
        gen = transfer.steps()
        first = [next(gen) for _ in range(3)]
        assert not any(s.boundary for s in first)
        assert lbfgs_threads() - before
        gen.close()
        assert not lbfgs_threads() - before
        assert transfer.state()["iteration"] == 0
    finally:
        transfer.close()


def test_error_inside_an_lbfgs_evaluation_propagates():
    before = lbfgs_threads()
    r = recipe("keras-lbfgs", iterations=2, maxfun=10)
    transfer = make_transfer(r)
    try:
        evaluator = transfer.optimiser.evaluator

        class Broken:
            def __init__(self, session):
                self.session, self.runs = session, 0

            def run(self, *args, **kwargs):
                self.runs += 1
                if self.runs == 3:
                    raise FloatingPointError("evaluation 3 failed")
                return self.session.run(*args, **kwargs)

        evaluator.session = Broken(transfer.session)
        seen = []
        with pytest.raises(FloatingPointError, match="evaluation 3"):
            within(60, lambda: seen.extend(transfer.steps()))
        assert len(seen) == 2
        assert not wait_no_new_threads(before)
    finally:
        transfer.close()


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
    transfer = make_transfer(r)
    try:
        o = transfer.objective
        x = transfer.content.astype(np.float64)
        steps, grads, states = transfer.steps(), [], []
        for i in range(2):
            image = transfer.session.run(transfer.optimiser.image)[0]
            total, g = transfer.session.run((o.total, o.gradient))
            grads.append(g[0].astype(np.float64))
            step = next(steps)
            # the step reports the image the loss was measured on, before the update
            np.testing.assert_array_equal(step.image, image)
            assert step.total == pytest.approx(float(total), rel=1e-6)
            assert step.iteration == i
            states.append(transfer.state())
        for state, (x_ref, m_ref, v_ref) in zip(states, tf1_adam(x, grads, r.learning_rate, r.beta1, r.beta2,
                                                                 r.epsilon, clip)):
            np.testing.assert_allclose(state["image"], x_ref, rtol=1e-5, atol=1e-3)
            np.testing.assert_allclose(state["m"][0], m_ref, rtol=1e-4, atol=1e-6 * np.abs(m_ref).max())
            np.testing.assert_allclose(state["v"][0], v_ref, rtol=1e-4, atol=1e-6 * np.abs(v_ref).max())
        moved = np.abs(states[-1]["image"] - x).max()
        assert moved > 1.0
        unclipped = list(tf1_adam(x, grads, r.learning_rate, r.beta1, r.beta2, r.epsilon, False))[-1][0]
        if clip:
            assert unclipped.min() < 0 or unclipped.max() > 255  # the clip had work to do
    finally:
        transfer.close()


def test_seed_002_normalised_descent_step():
    """x ← clip(x − step · g / (std(g) + 1e-8), 0, 255), step 10."""
    r = recipe("hvass-vgg16", iterations=1, content_layers=("2",), style_layers=("0", "1", "2"))
    assert (r.learning_rate, r.gd_norm, r.gd_eps, r.clip) == (10.0, "std", 1e-8, True)
    x0 = np.random.default_rng(1).uniform(0.0, 255.0, SHAPE)
    transfer = make_transfer(r, init_image=x0)
    try:
        total, _, g = objective_values(transfer, x0)
        (step,) = list(transfer.steps())
        unclipped = x0 - 10.0 * g / (np.std(g) + 1e-8)
        expected = np.clip(unclipped, 0.0, 255.0)
        assert np.any(unclipped != expected)  # the clip had work to do
        np.testing.assert_allclose(transfer.state()["image"], expected, rtol=1e-6, atol=1e-4)
        np.testing.assert_array_equal(step.image, x0.astype(np.float32))
        assert step.total == pytest.approx(total, rel=1e-6)
    finally:
        transfer.close()


def test_seed_004_rms_descent_step():
    """x ← x − 0.01 · g / (sqrt(mean(g²)) + 1e-5), no clip."""
    r = recipe("keras-gd-noise", iterations=2, style_layers=("block2_conv1", "block1_conv1"),
               style_layer_weights=(1 / 2, 1 / 3), content_layers=("block1_conv1",))
    assert (r.learning_rate, r.gd_norm, r.gd_eps, r.clip) == (0.01, "rms", 1e-5, False)
    x0 = np.random.default_rng(2).uniform(-5.0, 260.0, SHAPE)  # outside 0..255 stays outside: no clip
    transfer = make_transfer(r, init_image=x0)
    try:
        x = x0
        steps = transfer.steps()
        for _ in range(2):
            _, _, g = objective_values(transfer, x)
            x = x - 0.01 * g / (np.sqrt(np.mean(g * g)) + 1e-5)
            next(steps)
            np.testing.assert_allclose(transfer.state()["image"], x, rtol=1e-7, atol=1e-6)
        assert transfer.state()["image"].min() < 0.0
    finally:
        transfer.close()


def test_gd_noise_init_is_seed_004s_uniform_in_preprocessed_space():
    """Not an update, but the start seed 004's descent relies on: U[0, 1) in BGR − mean space."""
    r = recipe("keras-gd-noise", iterations=1, style_layers=("block2_conv1",), style_layer_weights=(1.0,),
               content_layers=("block1_conv1",))
    transfer = make_transfer(r, seed=3)
    try:
        x0 = transfer.state()["image"]
        preprocessed = x0[..., ::-1] - np.array([103.939, 116.779, 123.68])
        assert preprocessed.min() >= 0.0 and preprocessed.max() < 1.0
    finally:
        transfer.close()


# ------------------------------------------------------------------------------------------- resume


def run_straight(r, init_image=None):
    transfer = make_transfer(r, init_image=init_image)
    try:
        steps = list(transfer.steps())
        return steps, transfer.state()
    finally:
        transfer.close()


def run_resumed(r, stop_after, init_image=None):
    """Run until `stop_after(step)` says so, take state(), continue in a brand-new Transfer."""
    first = make_transfer(r, init_image=init_image)
    try:
        gen, before = first.steps(), []
        for step in gen:
            before.append(step)
            if stop_after(step):
                break
        gen.close()
        state = first.state()
    finally:
        first.close()
    second = make_transfer(r, init_image=None if init_image is None else init_image + 17.0)  # start is ignored
    try:
        after = list(second.steps(state))
        return before, after, second.state()
    finally:
        second.close()


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(np.asarray(b[key], np.float64), np.asarray(a[key], np.float64), rtol=1e-6,
                                   atol=1e-6, err_msg=key)


@pytest.mark.parametrize("name, changes", [
    ("hvass-vgg16", {"content_layers": ("2",), "style_layers": ("0", "2")}),
    ("keras-gd-noise", {}),
    ("tf-eager-blog", {"clip": True}),
    ("tf-eager-blog", {}),
])
def test_resume_descent_and_adam(name, changes):
    r = recipe(name, iterations=5, **changes)
    straight, final = run_straight(r)
    before, after, resumed = run_resumed(r, lambda step: step.iteration == 1)
    assert [s.iteration for s in before] == [0, 1]
    assert [s.iteration for s in after] == [2, 3, 4]
    assert resumed["iteration"] == final["iteration"] == 5
    assert_same_state(final, resumed)
    for s, t in zip(straight[2:], after):
        np.testing.assert_allclose(t.image, s.image, rtol=1e-6, atol=1e-6)
        assert t.total == pytest.approx(s.total, rel=1e-6)
        assert (t.iteration, t.evaluations) == (s.iteration, s.evaluations)
    # resuming really continued (not restarted): the image moved on from the saved one
    assert np.abs(resumed["image"] - before[-1].image).max() > 0


def test_resume_lbfgs_at_a_restart_boundary():
    r = recipe("keras-lbfgs", iterations=3, maxfun=5)
    straight, final = run_straight(r)
    before, after, resumed = run_resumed(r, lambda step: step.boundary)
    assert before[-1].boundary and before[-1].iteration == 0
    assert [s.iteration for s in after if s.boundary] == [1, 2]
    assert resumed["iteration"] == final["iteration"] == 3
    np.testing.assert_allclose(resumed["image"], final["image"], rtol=1e-6, atol=1e-6)
    straight_tail = [s for s in straight if s.iteration >= 1]
    assert len(after) == len(straight_tail)
    for s, t in zip(straight_tail, after):
        assert t.total == pytest.approx(s.total, rel=1e-6)
        # the resumed run counts on: the same iteration, evaluation number and kind of step as straight
        assert (t.iteration, t.evaluations, t.boundary) == (s.iteration, s.evaluations, s.boundary)
