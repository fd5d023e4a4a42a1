"""Adding a configuration without retraining: computerised adaptive testing.

The items' parameters (discrimination ``a`` and intercept ``b``) are already known from
the trained heads; only the new configuration's ability θ (k-dim) is unknown. We ask
questions one at a time, each time the one with the most Fisher information about θ
(D-optimal: the item that most increases the determinant of the posterior precision, which
by the matrix determinant lemma is the one maximising ``P(1-P)·aᵀΣa``), update θ by MAP
(Newton steps on the Bernoulli log-likelihood plus a Gaussian prior fitted to the existing
configurations' abilities) and stop after ``budget`` questions or once the posterior
standard deviation is below ``sd_tol``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from irtgate.lab.irt.irt_math import sigmoid


class AdaptiveError(ValueError):
    """Adaptive testing cannot run on this input (no usable answers, bad router, ...)."""


@dataclass
class AdaptiveResult:
    theta: np.ndarray  # (k,)
    cov: np.ndarray  # (k, k) posterior covariance (Laplace approximation)
    asked: list[int] = field(default_factory=list)
    sd_trace: list[float] = field(default_factory=list)

    @property
    def n_asked(self) -> int:
        return len(self.asked)

    @property
    def posterior_sd(self) -> float:
        """Root of the mean posterior variance over the k dimensions."""
        return float(np.sqrt(np.trace(self.cov) / self.cov.shape[0]))


def prior_from(abilities: np.ndarray, ridge: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """A Gaussian prior for a new configuration: mean and covariance of the known ones."""
    th = np.asarray(abilities, dtype=np.float64)
    mu = th.mean(axis=0)
    k = th.shape[1]
    cov = np.cov(th, rowvar=False).reshape(k, k) if th.shape[0] > 1 else np.zeros((k, k))
    # Few configurations give a singular covariance; the ridge keeps every direction open.
    return mu, cov + ridge * np.eye(k) * max(float(np.trace(cov)) / k, 1.0)


def estimate_map(
    a: np.ndarray,
    b: np.ndarray,
    y: np.ndarray,
    mu0: np.ndarray,
    prec0: np.ndarray,
    theta0: np.ndarray | None = None,
    iters: int = 30,
) -> tuple[np.ndarray, np.ndarray]:
    """MAP ability for answers ``y`` (soft labels in [0,1]) to items (a, b); and the
    posterior covariance (inverse negative Hessian at the MAP)."""
    theta = np.array(mu0 if theta0 is None else theta0, dtype=np.float64)
    H = prec0
    for _ in range(iters):
        p = sigmoid(a @ theta - b)
        grad = a.T @ (y - p) - prec0 @ (theta - mu0)
        H = (a * (p * (1 - p))[:, None]).T @ a + prec0
        step = np.linalg.solve(H, grad)
        theta = theta + step
        if float(np.abs(step).max()) < 1e-8:
            break
    p = sigmoid(a @ theta - b)
    H = (a * (p * (1 - p))[:, None]).T @ a + prec0
    return theta, np.linalg.inv(H)


def fisher_gain(a: np.ndarray, b: np.ndarray, theta: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Each item's information about θ at the current estimate (D-optimal criterion):
    ``P(1-P)·aᵀΣa``, the growth of the posterior precision's determinant if it were asked."""
    p = sigmoid(a @ theta - b)
    return np.asarray(p * (1 - p) * np.einsum("ij,jk,ik->i", a, cov, a), dtype=np.float64)


def adaptive_test(
    a: np.ndarray,
    b: np.ndarray,
    answer: Callable[[int], float] | np.ndarray,
    mu0: np.ndarray,
    cov0: np.ndarray,
    *,
    budget: int = 60,
    sd_tol: float = 0.0,
    select: str = "fisher",
    seed: int = 0,
) -> AdaptiveResult:
    """Run an adaptive test over the item pool (a (n, k), b (n,)).

    ``answer(i)`` (or ``answer[i]``) is the new configuration's score on item i; items whose
    answer is NaN are skipped. ``select`` is ``fisher`` (D-optimal) or ``random``.
    """
    if select not in ("fisher", "random"):
        raise AdaptiveError(f"select must be 'fisher' or 'random', got {select!r}")
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.shape != (a.shape[0],):
        raise AdaptiveError(
            f"item parameters must be a (n, k) and b (n,), got {a.shape}, {b.shape}"
        )
    if budget < 1:
        raise AdaptiveError("budget must be >= 1")
    get: Callable[[int], float]
    if callable(answer):
        get = answer
    else:
        arr = np.asarray(answer, dtype=np.float64)
        get = lambda i: float(arr[i])  # noqa: E731
    rng = np.random.default_rng(seed)
    prec0 = np.linalg.inv(cov0)
    theta, cov = np.array(mu0, dtype=np.float64), np.array(cov0, dtype=np.float64)
    available = np.ones(a.shape[0], dtype=bool)
    asked: list[int] = []
    ys: list[float] = []
    sds: list[float] = []
    while len(asked) < budget and available.any():
        if select == "fisher":
            gain = fisher_gain(a, b, theta, cov)
            gain[~available] = -np.inf
            i = int(np.argmax(gain))
        else:
            i = int(rng.choice(np.flatnonzero(available)))
        available[i] = False
        y = get(i)
        if not np.isfinite(y):
            continue  # this configuration has no answer for the item: try the next one
        if not 0.0 <= y <= 1.0:
            raise AdaptiveError(f"answer for item {i} is {y}, outside [0, 1]")
        asked.append(i)
        ys.append(y)
        idx = np.array(asked)
        theta, cov = estimate_map(a[idx], b[idx], np.array(ys), mu0, prec0, theta)
        sds.append(float(np.sqrt(np.trace(cov) / cov.shape[0])))
        if sd_tol > 0 and sds[-1] < sd_tol:
            break
    if not asked:
        raise AdaptiveError("no item in the pool has an answer from the new configuration")
    return AdaptiveResult(theta=theta, cov=cov, asked=asked, sd_trace=sds)


# -- on a router directory -----------------------------------------------------------------


def router_item_params(router: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Discrimination (n, k) and intercept b (n,) from a loaded router's graph.

    The graph reports difficulty ``b − a·θ̄``; θ̄ is the mean ability of the configurations it
    was trained with (calibration adds configurations but keeps θ̄).
    """
    diff, disc, _ = router.predict_full(X)
    d = disc.astype(np.float64)
    return d, diff.astype(np.float64) + d @ card_abilities(router.card, trained_only=True).mean(0)


def card_abilities(card: Any, *, trained_only: bool = False) -> np.ndarray:
    """The configurations' abilities (rows); ``trained_only`` leaves out calibrated ones."""
    try:
        cfgs = card["configurations"]
        if trained_only:
            cfgs = [c for c in cfgs if "calibration" not in c]
        return np.array([c["ability"] for c in cfgs], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as e:
        raise AdaptiveError(f"router card has no usable abilities ({e})") from e


def mean_discrimination(card: Any) -> np.ndarray | None:
    """ā, the mean discrimination the card's ``strength`` (ā·θ) was computed with, recovered
    from the trained configurations' strengths; None where the card has none."""
    cfgs = [c for c in card["configurations"] if "calibration" not in c]
    s = [c.get("strength") for c in cfgs]
    if len(cfgs) < 2 or not all(isinstance(v, int | float) for v in s):
        return None
    theta = np.array([c["ability"] for c in cfgs], dtype=np.float64)
    abar, *_ = np.linalg.lstsq(theta, np.array(s, dtype=np.float64), rcond=None)
    return np.asarray(abar, dtype=np.float64)


def add_configuration(
    src: Path,
    dst: Path,
    name: str,
    theta: np.ndarray,
    cost: float | None,
    extra: dict[str, Any],
    fields: dict[str, Any] | None = None,
) -> None:
    """Copy router ``src`` to ``dst`` with one more configuration of ability ``theta``.

    ``extra`` becomes the configuration's ``calibration`` record; ``fields`` (model, family,
    budget) sit beside its name."""
    import yaml

    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as e:
        raise RuntimeError(
            "writing the extended router needs the 'onnx' package: pip install 'irtgate[train]'"
        ) from e

    from irtgate.signals.irt.runtime import CARD_FILE, HEADS_FILE

    proto = onnx.load(str(src / HEADS_FILE))
    inits = {t.name: t for t in proto.graph.initializer}

    def replace(tname: str, arr: np.ndarray) -> None:
        new = numpy_helper.from_array(arr, tname)
        inits[tname].CopyFrom(new)

    tT = numpy_helper.to_array(inits["thetaT"])
    replace("thetaT", np.concatenate([tT, theta.reshape(-1, 1).astype(tT.dtype)], axis=1))
    for tname in ("kp_scores", "kp_mask"):  # the new configuration has no neighbour scores
        if tname in inits:
            arr = numpy_helper.to_array(inits[tname])
            replace(tname, np.concatenate([arr, np.zeros((arr.shape[0], 1), arr.dtype)], 1))
    if "fam_table" in inits:
        # No per-family record for the new configuration: weight 0 keeps the model's P.
        table = numpy_helper.to_array(inits["fam_table"])
        replace("fam_table", np.concatenate([table, np.zeros((table.shape[0], 1), table.dtype)], 1))
        for tname, v in (("fam_alpha", 0.0), ("fam_one_minus_alpha", 1.0)):
            arr = numpy_helper.to_array(inits[tname])
            replace(tname, np.concatenate([arr, np.array([v], arr.dtype)]))
    out = proto.graph.output
    for o in out:
        if o.name == "p_correct":
            dims = o.type.tensor_type.shape.dim
            dims[1].dim_value = tT.shape[1] + 1
    onnx.checker.check_model(proto)
    card = yaml.safe_load((src / CARD_FILE).read_text(encoding="utf-8"))
    if any(c["name"] == name for c in card["configurations"]):
        raise AdaptiveError(f"configuration {name!r} is already in the router")
    abar = mean_discrimination(card)
    card["configurations"].append(
        {
            "name": name,
            **(fields or {}),
            "expected_cost": cost,
            "strength": None if abar is None else round(float(abar @ theta), 4),
            "ability_norm": round(float(np.linalg.norm(theta)), 4),
            "ability": [round(float(v), 4) for v in theta],
            "calibration": extra,
        }
    )
    dst.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(dst / HEADS_FILE))
    with (dst / CARD_FILE).open("w", encoding="utf-8") as f:
        yaml.safe_dump(card, f, sort_keys=False, allow_unicode=True, width=100)


def calibrate_from_file(
    router_dir: Path,
    name: str,
    answers: Path,
    *,
    budget: int = 60,
    sd_tol: float = 0.0,
    out: Path | None = None,
    cost: float | None = None,
    log: Callable[[str], None] = print,
) -> AdaptiveResult:
    """Adaptive testing with a new configuration's answers from a routing data file."""
    from irtgate.lab.encoders.cache import embed_corpus
    from irtgate.lab.irt.data import load_routing_data
    from irtgate.signals.irt.runtime import IRTRouter

    router = IRTRouter.load(router_dir)
    data = load_routing_data([answers])
    if name not in data.configs:
        raise AdaptiveError(f"{answers} has no scores for configuration {name!r}")
    y = data.scores[:, data.configs.index(name)]
    keep = ~np.isnan(y)
    if not keep.any():
        raise AdaptiveError(f"{answers}: configuration {name!r} has no known score")
    prompts: Sequence[str] = [p for p, k in zip(data.prompts, keep, strict=True) if k]
    X = embed_corpus(router.encoder_name, prompts, progress=False)
    a, b = router_item_params(router, X)
    mu0, cov0 = prior_from(card_abilities(router.card))
    res = adaptive_test(a, b, y[keep], mu0, cov0, budget=budget, sd_tol=sd_tol)
    log(f"asked {res.n_asked} of {int(keep.sum())} items; posterior sd {res.posterior_sd:.3f}")
    if out is not None:
        add_configuration(
            router_dir,
            out,
            name,
            res.theta,
            cost,
            {
                "questions": res.n_asked,
                "posterior_sd": round(res.posterior_sd, 4),
                "answers_file": answers.name,
            },
        )
        log(f"wrote {out}")
    return res
