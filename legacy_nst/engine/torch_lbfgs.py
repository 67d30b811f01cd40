"""Torch's L-BFGS without a line search: Torch7's `optim.lbfgs` (jcjohnson/neural-style) and PyTorch's
`torch.optim.LBFGS` (the authors' notebook; PyTorch ported it from optim.lbfgs) with `lineSearch` unset.

Each iteration takes the L-BFGS direction d from the last `lbfgs_memory` pairs (s = t·d, y = g − g_old,
kept only when yᵀs > 1e-10, the initial Hessian yᵀs / yᵀy) and steps x ← x + t·d with the fixed step
t = learningRate, except the very first, t = min(1, 1/‖g‖₁) · learningRate. There is no line search: the
loss value never steers the steps (only the sources' tolerance tests read it, and both recipes leave them
unreachable: jcjohnson sets tolFun = tolX = −1; see docs/quirks.md for the notebook's). So one evaluation
precedes each update and a run of N evaluations makes N updates; the last is not evaluated (optim.lbfgs:
`if nIter ~= maxIter then f, g = opfunc(x)`). PyTorch's repeated `optimizer.step(closure)` calls keep the
history in the optimiser's state, so the notebook's 26 calls of 20 are this same sequence of 520.

Arithmetic in float32, as the sources' FloatTensors; the pairs are kept as float32 arrays (2 · 100 pairs of
a 512 × 384 image: 0.6 GB, what Torch held too).
"""
import numpy as np

from .optimisers import Measurement, _FedImage

CURVATURE_FLOOR = 1e-10  # optim.lbfgs: a pair is kept only if yᵀs > 1e-10


class TorchLBFGS(_FedImage):
    """Torch's fixed-step L-BFGS driven by the evaluation (the graph, or the tiled objective)."""

    name = "torch-lbfgs"

    def run(self, on_evaluation, on_iteration, state=None):
        self._state = dict(state or self._state)
        s = self._state
        rate, memory = np.float32(self.recipe.learning_rate), self.recipe.lbfgs_memory
        x = np.asarray(s["image"], np.float32).ravel().copy()
        pairs_s, pairs_y = list(s.get("pairs_s", ())), list(s.get("pairs_y", ()))
        d, g_old = s.get("direction"), s.get("gradient")
        step, hdiag = np.float32(s.get("step", 0.0)), np.float32(s.get("hdiag", 1.0))
        self._pairs = (pairs_s, pairs_y)
        for i in range(int(s["iteration"]), self.recipe.iterations):
            image = x.reshape(self.shape)
            total, terms, adjust, g = self.evaluation.evaluate(image)
            on_evaluation(Measurement(i, i + 1, image.copy(), total, terms, adjust))
            g = np.asarray(g, np.float32).ravel()
            if i == 0:
                d = -g
                pairs_s, pairs_y, hdiag = [], [], np.float32(1.0)
                step = min(np.float32(1.0), np.float32(1.0) / np.abs(g).sum()) * rate
            else:
                y, s_k = g - g_old, d * step
                ys = np.dot(y, s_k)
                if ys > CURVATURE_FLOOR:
                    if len(pairs_s) == memory:
                        pairs_s.pop(0), pairs_y.pop(0)
                    pairs_s.append(s_k)
                    pairs_y.append(y)
                    hdiag = ys / np.dot(y, y)
                d = self._direction(g, pairs_s, pairs_y, hdiag)
                step = rate
            g_old = g
            x = x + step * d
            self._state = {"iteration": i + 1, "evaluations": i + 1, "image": x.reshape(self.shape),
                           "direction": d, "gradient": g_old, "step": step, "hdiag": hdiag}
            self._pairs = (pairs_s, pairs_y)
            on_iteration(i, i + 1, x.reshape(self.shape).copy())

    def state(self):
        """What a checkpoint keeps to resume exactly: the image, d, g_old, t, the pairs (built only here, since
        copying 2 · 100 image-sized vectors at every iteration would cost more than the iteration)."""
        pairs_s, pairs_y = getattr(self, "_pairs", ((), ()))
        n = int(np.prod(self.shape))
        return {**self._state, "pairs_s": np.array(pairs_s, np.float32).reshape(len(pairs_s), n),
                "pairs_y": np.array(pairs_y, np.float32).reshape(len(pairs_y), n)}

    @staticmethod
    def _direction(g, pairs_s, pairs_y, hdiag):
        """The two-loop recursion, in optim.lbfgs's order: −H·g."""
        ro = [np.float32(1.0) / np.dot(y, s) for s, y in zip(pairs_s, pairs_y)]
        q = -g
        al = [np.float32(0.0)] * len(pairs_s)
        for k in range(len(pairs_s) - 1, -1, -1):
            al[k] = np.dot(pairs_s[k], q) * ro[k]
            q = q - al[k] * pairs_y[k]
        r = q * hdiag
        for k in range(len(pairs_s)):
            be = np.dot(pairs_y[k], r) * ro[k]
            r = r + (al[k] - be) * pairs_s[k]
        return r
