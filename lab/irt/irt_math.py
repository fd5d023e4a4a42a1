"""The 2PL MIRT arithmetic behind :class:`irtgate.lab.irt.model.IRTModel`: parameters, the
forward pass, the masked loss with its analytic gradient, and the Adam step.

Kept apart from the model class so the maths can be read (and checked against hand
computations and finite differences in the tests) on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Array = np.ndarray


def sigmoid(z: Array) -> Array:
    # Split by sign so exp never overflows.
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def softplus(u: Array) -> Array:
    out: Array = np.logaddexp(0.0, u)
    return out


@dataclass
class Params:
    """All trainable arrays. ``W1``/``c1`` are empty when the heads are linear."""

    Wa: Array  # (h, k)
    ca: Array  # (k,)
    wb: Array  # (h,)
    cb: Array  # ()
    theta: Array  # (G, k)
    W1: Array = field(default_factory=lambda: np.zeros((0, 0)))
    c1: Array = field(default_factory=lambda: np.zeros(0))

    def names(self) -> tuple[str, ...]:
        base = ("Wa", "ca", "wb", "cb", "theta")
        return (*base, "W1", "c1") if self.W1.size else base

    def arrays(self) -> dict[str, Array]:
        return {n: getattr(self, n) for n in self.names()}

    def copy(self) -> Params:
        return Params(**{n: np.array(v, copy=True) for n, v in self.__dict__.items()})


def heads(p: Params, X: Array) -> tuple[Array, Array]:
    """Discrimination ``a`` (n, k) and difficulty ``b`` (n,) for embeddings ``X`` (n, d)."""
    H = np.maximum(X @ p.W1 + p.c1, 0.0) if p.W1.size else X
    return softplus(H @ p.Wa + p.ca), H @ p.wb + p.cb


def prob(p: Params, X: Array) -> Array:
    a, b = heads(p, X)
    return sigmoid(a @ p.theta.T - b[:, None])


def loss_and_grad(
    p: Params,
    X: Array,
    Y: Array,
    M: Array,
    l2: float,
    l2_theta: float,
    rank_weight: float = 0.0,
) -> tuple[float, dict[str, Array]]:
    """Masked mean BCE (soft labels) + L2 on weights and abilities, and its gradient.

    ``Y`` holds targets in [0, 1] (any value where ``M`` is 0), ``M`` the 0/1 mask.
    """
    hidden = bool(p.W1.size)
    if hidden:
        pre = X @ p.W1 + p.c1
        H = np.maximum(pre, 0.0)
    else:
        H = X
    U = H @ p.Wa + p.ca
    A = softplus(U)
    b = H @ p.wb + p.cb
    Z = A @ p.theta.T - b[:, None]
    n_obs = max(float(M.sum()), 1.0)
    # BCE written with logaddexp so it stays finite for confident wrong predictions.
    bce = (np.logaddexp(0.0, Z) - Y * Z) * M
    reg = l2 * (np.sum(p.Wa**2) + np.sum(p.wb**2) + (np.sum(p.W1**2) if hidden else 0.0))
    reg += l2_theta * np.sum(p.theta**2)
    loss = float(bce.sum() / n_obs + reg)

    dZ = (sigmoid(Z) - Y) * M / n_obs  # (n, G)
    if rank_weight > 0:
        r_loss, r_grad = _rank_term(Z, Y, M)
        loss += rank_weight * r_loss
        dZ += rank_weight * r_grad
    dA = dZ @ p.theta  # (n, k)
    db = -dZ.sum(axis=1)  # (n,)
    dU = dA * sigmoid(U)  # softplus' = sigmoid
    g: dict[str, Array] = {
        "Wa": H.T @ dU + 2 * l2 * p.Wa,
        "ca": dU.sum(axis=0),
        "wb": H.T @ db + 2 * l2 * p.wb,
        "cb": np.asarray(db.sum()),
        "theta": dZ.T @ A + 2 * l2_theta * p.theta,
    }
    if hidden:
        dH = dU @ p.Wa.T + db[:, None] * p.wb[None, :]
        dpre = dH * (pre > 0)
        g["W1"] = X.T @ dpre + 2 * l2 * p.W1
        g["c1"] = dpre.sum(axis=0)
    return loss, g


def _rank_term(Z: Array, Y: Array, M: Array) -> tuple[float, Array]:
    """Listwise cross-entropy between softmax(Z) and the normalised scores, per item.

    Only items whose observed scores differ take part (all right or all wrong says nothing
    about which configuration to pick); unobserved entries are left out of the softmax.
    """
    obs = M > 0
    big = np.where(obs, Y, -np.inf).max(axis=1)
    small = np.where(obs, Y, np.inf).min(axis=1)
    use = (big > small) & (obs.sum(axis=1) >= 2)
    grad = np.zeros_like(Z)
    n_use = int(use.sum())
    if n_use == 0:
        return 0.0, grad
    Zu, Yu, Mu = Z[use], Y[use] * M[use], obs[use]
    Zm = np.where(Mu, Zu, -np.inf)
    Zm = Zm - Zm.max(axis=1, keepdims=True)
    ez = np.where(Mu, np.exp(Zm), 0.0)
    s = ez / ez.sum(axis=1, keepdims=True)
    q = Yu / Yu.sum(axis=1, keepdims=True)
    logs = np.where(Mu, Zm - np.log(ez.sum(axis=1, keepdims=True)), 0.0)
    loss = float(-(q * logs).sum() / n_use)
    grad[use] = (s - q) / n_use
    return loss, grad


class Adam:
    def __init__(self, params: Params, lr: float) -> None:
        self.lr = lr
        self.t = 0
        self.m = {n: np.zeros_like(v) for n, v in params.arrays().items()}
        self.v = {n: np.zeros_like(v) for n, v in params.arrays().items()}

    def step(self, params: Params, grads: dict[str, Array]) -> None:
        self.t += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        for n, g in grads.items():
            self.m[n] = b1 * self.m[n] + (1 - b1) * g
            self.v[n] = b2 * self.v[n] + (1 - b2) * g * g
            mh = self.m[n] / (1 - b1**self.t)
            vh = self.v[n] / (1 - b2**self.t)
            setattr(params, n, getattr(params, n) - self.lr * mh / (np.sqrt(vh) + eps))
