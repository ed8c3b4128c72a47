"""R's GLM family objects for glmer: binomial, poisson, Gamma, inverse.gaussian, gaussian and
MASS's negative binomial, with their links.

Each family gives what lme4's ``glmFamily`` uses: ``linkfun``, ``linkinv``, ``mu_eta``,
``variance``, ``dev_resids`` and ``aic``, R's ``validmu``/``valideta`` and ``initialize`` (the
response forms: 0/1 numbers, a two-level factor, a proportion with weights, ``cbind(successes,
failures)``). ``linkinv``, ``mu_eta`` and ``variance`` are lme4's C++ versions, which keep the
mean inside its range by machine epsilon (logit's inverse in [eps, 1 - eps], ``exp`` at least eps,
binomial's variance at least eps), because glmer's PIRLS uses those, not R's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import DataError, ModelError

EPS = np.finfo(float).eps


@dataclass(frozen=True)
class Link:
    """A link function with its inverse and derivative d mu / d eta (lme4's versions)."""

    name: str
    linkfun: Callable[[np.ndarray], np.ndarray]
    linkinv: Callable[[np.ndarray], np.ndarray]
    mu_eta: Callable[[np.ndarray], np.ndarray]
    valideta: Callable[[np.ndarray], bool] = lambda eta: True
    #: eta -> (linkinv, mu_eta) in one pass where the two share their work (the logit's exp)
    inv_mu_eta: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None


def _clamp01(p: np.ndarray) -> np.ndarray:
    """p within [eps, 1 - eps] (np.clip's numbers, without its per-call overhead)."""
    return np.minimum(np.maximum(p, EPS), 1.0 - EPS)


def _cloglog_inv(eta: np.ndarray) -> np.ndarray:
    return _clamp01(-np.expm1(-np.exp(eta)))


def _cloglog_mu_eta(eta: np.ndarray) -> np.ndarray:
    return np.maximum(EPS, np.exp(eta - np.exp(eta)))


def _logit(mu: np.ndarray) -> np.ndarray:
    from scipy.special import logit  # imported on first use: an lmer fit needs no scipy.special

    return logit(mu)


def _logit_inv(eta: np.ndarray) -> np.ndarray:
    return _logit_inv_mu_eta(eta)[0]


def _logit_mu_eta(eta: np.ndarray) -> np.ndarray:
    """exp(-|eta|) / (1 + exp(-|eta|))^2, at least eps (lme4's logitMuEta), exp taken once."""
    t = np.exp(-np.abs(eta))
    return np.maximum(EPS, t / (1.0 + t) ** 2)


#: below this |eta| the logistic mean and its derivative are inside [eps, 1 - eps] and above eps
#: (1 / (1 + exp(-36)) rounds below 1 - eps), so clamping them would change nothing
_LOGIT_FREE = 36.0


def _logit_inv_mu_eta(eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The logistic mean clamped to [eps, 1 - eps] and ``_logit_mu_eta``, from one ``exp(-|eta|)``
    (scipy's expit costs several times an exp): with t = exp(-|eta|), mu = 1 / (1 + t) for eta >= 0,
    t / (1 + t) below, and mu_eta = t / (1 + t)^2. The clamps only where some |eta| needs them."""
    a = np.abs(eta)
    t = np.exp(-a)
    r = 1.0 / (1.0 + t)
    tr = t * r
    mu = np.where(eta >= 0, r, tr)
    mu_eta = tr * r
    if not np.max(a, initial=0.0) < _LOGIT_FREE:  # also where eta has a nan
        return _clamp01(mu), np.maximum(EPS, mu_eta)
    return mu, mu_eta


def _probit(mu: np.ndarray) -> np.ndarray:
    from scipy.special import ndtri

    return ndtri(mu)


def _probit_inv(eta: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return np.minimum(1.0 - EPS, ndtr(eta))


def _finite_nonzero(eta: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(eta)) and np.all(eta != 0))


def _finite_positive(eta: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(eta)) and np.all(eta > 0))


LINKS: dict[str, Link] = {
    "logit": Link("logit", _logit, _logit_inv, _logit_mu_eta, inv_mu_eta=_logit_inv_mu_eta),
    "probit": Link("probit", _probit, _probit_inv,
                   lambda e: np.exp(-0.5 * e * e) / np.sqrt(2.0 * np.pi)),
    "cauchit": Link("cauchit", lambda mu: np.tan(np.pi * (mu - 0.5)),
                    lambda e: np.minimum(1.0 - EPS, 0.5 + np.arctan(e) / np.pi),
                    lambda e: 1.0 / (np.pi * (1.0 + e * e))),
    "cloglog": Link("cloglog", lambda mu: np.log(-np.log1p(-mu)), _cloglog_inv, _cloglog_mu_eta),
    "log": Link("log", np.log, lambda e: np.maximum(EPS, np.exp(e)), lambda e: np.maximum(EPS, np.exp(e))),
    "identity": Link("identity", lambda mu: mu, lambda e: e, lambda e: np.ones_like(e)),
    "inverse": Link("inverse", lambda mu: 1.0 / mu, lambda e: 1.0 / e, lambda e: -1.0 / (e * e), _finite_nonzero),
    "sqrt": Link("sqrt", np.sqrt, lambda e: e * e, lambda e: 2.0 * e, _finite_positive),
    "1/mu^2": Link("1/mu^2", lambda mu: 1.0 / (mu * mu), lambda e: 1.0 / np.sqrt(e), lambda e: -1.0 / (2.0 * e**1.5),
                   _finite_positive),
}


@dataclass(frozen=True)
class Initialized:
    """What a family's ``initialize`` leaves: the response as a vector, the binomial totals n,
    the prior weights, the starting mean, and R's warnings."""

    y: np.ndarray
    n: np.ndarray
    weights: np.ndarray
    mustart: np.ndarray
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Family:
    """An R family object (``binomial(link = "probit")``...)."""

    family: str
    link: Link
    variance: Callable[[np.ndarray], np.ndarray]
    dev_resids: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
    aic_fn: Callable[..., float]
    validmu: Callable[[np.ndarray], bool]
    init: Callable[[np.ndarray, np.ndarray], Initialized]
    theta: float | None = None  # the negative binomial's shape
    aic_prep: Callable[..., Callable[[np.ndarray, float], float]] | None = None  # see aic_for
    dev_prep: Callable[..., Callable[[np.ndarray], np.ndarray]] | None = None  # see dev_for

    @property
    def link_name(self) -> str:
        return self.link.name

    def linkfun(self, mu: np.ndarray) -> np.ndarray:
        return self.link.linkfun(mu)

    def linkinv(self, eta: np.ndarray) -> np.ndarray:
        return self.link.linkinv(eta)

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        return self.link.mu_eta(eta)

    def dev_for(self, y: np.ndarray, wt: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """``dev_resids(y, mu, wt)`` as a function of mu for one response, with what depends on
        the response alone prepared once (a 0/1 binomial response: one log per observation)."""
        if self.dev_prep is not None:
            return self.dev_prep(y, wt)
        return lambda mu: self.dev_resids(y, mu, wt)

    def valideta(self, eta: np.ndarray) -> bool:
        return self.link.valideta(eta)

    def aic(self, y: np.ndarray, n: np.ndarray, mu: np.ndarray, wt: np.ndarray, dev: float) -> float:
        """R's ``family$aic``: -2 log-likelihood (+ 2 for a dispersion), as lme4's glmFamily computes it."""
        return float(self.aic_fn(y, n, mu, wt, dev))

    def aic_for(self, y: np.ndarray, n: np.ndarray, wt: np.ndarray) -> Callable[[np.ndarray, float], float]:
        """``aic`` as a function of (mu, dev) for one response: what depends on the response alone
        (the binomial's log choose, Poisson's log y!) computed once, as PIRLS asks for it at every
        evaluation. The same numbers as ``aic``."""
        if self.aic_prep is not None:
            return self.aic_prep(y, n, wt)
        return lambda mu, dev: self.aic(y, n, mu, wt, dev)

    def initialize(self, y: np.ndarray, weights: np.ndarray) -> Initialized:
        return self.init(y, weights)

    @property
    def has_scale(self) -> bool:
        """Whether the family has a free dispersion (lme4's useSc): Gamma, inverse.gaussian, gaussian."""
        return self.family in ("Gamma", "inverse.gaussian", "gaussian")

    def __str__(self) -> str:
        return f"\nFamily: {self.family} \nLink function: {self.link.name} \n"


# ------------------------------------------------------------------ distributions
def _ylogy(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """y log(y / mu), 0 where y is 0 (lme4's Y_log_Y): y / mu is taken as 1 there."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return y * np.log(np.divide(y, mu, out=np.ones_like(mu), where=y != 0))


def _binomial_variance(mu: np.ndarray) -> np.ndarray:
    return np.maximum(EPS, mu * (1.0 - mu))


def _binomial_dev(y, mu, wt):
    return 2.0 * wt * (_ylogy(y, mu) + _ylogy(1.0 - y, 1.0 - mu))


def _binomial_dev_prep(y: np.ndarray, wt: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``_binomial_dev`` for one response: for a 0/1 response, ``-2 wt log(mu)`` where y is 1 and
    ``-2 wt log(1 - mu)`` where it is 0 (one log per observation; the same terms to rounding)."""
    if not np.all((y == 0.0) | (y == 1.0)):
        return lambda mu: _binomial_dev(y, mu, wt)
    one, scale = y == 1.0, -2.0 * wt

    def dev(mu: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return scale * np.log(np.where(one, mu, 1.0 - mu))

    return dev


def _binomial_aic(y, n, mu, wt, dev):
    return _binomial_logpmf_aic(y, n, wt)(mu, dev)


def _binomial_aic_prep(y: np.ndarray, n: np.ndarray, wt: np.ndarray) -> Callable[[np.ndarray, float], float]:
    """``_binomial_aic`` as a function of (mu, dev) for one response, dev the sum of its deviance
    residuals at mu: where every count is on the support with ``(wt / m) k = wt y`` and
    ``(wt / m)(m - k) = wt (1 - y)`` (to rounding), the aic is ``dev`` plus a constant,
    ``-2 sum (wt / m) log choose(m, k) - 2 sum wt (y log y + (1 - y) log(1 - y))``, as the
    log-likelihood's ``y log mu + (1 - y) log(1 - mu)`` is the deviance's up to those terms (0
    for a 0/1 response with unit weights). Elsewhere, or at a mean outside [0, 1], the sum itself."""
    from scipy.special import gammaln, xlogy

    full = _binomial_logpmf_aic(y, n, wt)
    m = n if np.any(n > 1) else wt
    k, size = np.floor(np.rint(m * y)), np.rint(m)
    if not (np.all(m > 0) and np.all((k >= 0) & (k <= size))):
        return full
    scale = wt / m
    if not (np.allclose(scale * k, wt * y, rtol=1e-14, atol=0.0)
            and np.allclose(scale * (size - k), wt * (1.0 - y), rtol=1e-14, atol=0.0)):
        return full
    combiln = gammaln(size + 1) - (gammaln(k + 1) + gammaln(size - k + 1))
    const = -2.0 * float(np.sum(scale * combiln)) - 2.0 * float(np.sum(wt * (xlogy(y, y) + xlogy(1.0 - y, 1.0 - y))))

    def aic(mu: np.ndarray, dev: float) -> float:
        if not (np.min(mu) >= 0.0 and np.max(mu) <= 1.0):  # also false for a nan
            return full(mu, dev)
        return dev + const

    return aic


def _binomial_logpmf_aic(y: np.ndarray, n: np.ndarray, wt: np.ndarray) -> Callable[[np.ndarray, float], float]:
    """The binomial's aic, -2 sum (wt / m) log dbinom(m y, m, mu), as a function of (mu, dev):
    scipy's ``binom.logpmf`` (log choose + xlogy(k, mu) + xlog1py(m - k, -mu), -inf off the
    support, nan for a bad size) with its log choose computed once."""
    from scipy.special import gammaln, xlog1py, xlogy

    m = n if np.any(n > 1) else wt
    size = np.rint(m)
    k = np.floor(np.rint(m * y))
    good = size >= 0
    support = good & (k >= 0) & (k <= size)
    combiln = gammaln(size + 1) - (gammaln(k + 1) + gammaln(size - k + 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(m > 0, wt / np.where(m > 0, m, 1.0), 0.0)
    rest, off_support, counted = size - k, np.where(good, -np.inf, np.nan), m > 0

    def aic(mu: np.ndarray, dev: float) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            logpmf = np.where(support, combiln + xlogy(k, mu) + xlog1py(rest, -mu), off_support)
            valid = (mu >= 0) & (mu <= 1)  # False for nan
            if not valid.all():
                logpmf[~valid] = np.nan
            ll = scale * logpmf
        return -2.0 * float(np.sum(np.where(counted, ll, 0.0)))

    return aic


def _binomial_init(y: np.ndarray, weights: np.ndarray) -> Initialized:
    y = np.asarray(y, dtype=float)
    if y.ndim == 2:  # cbind(successes, failures)
        warn = ["non-integer counts in a binomial glm!"] if np.any(np.abs(y - np.rint(y)) > 1e-3) else []
        if np.any(y < 0):
            raise DataError("negative counts in cbind(successes, failures): a binomial response needs counts >= 0")
        n = y[:, 0] + y[:, 1]
        prop = np.divide(y[:, 0], n, out=np.zeros_like(n), where=n != 0)
        return Initialized(prop, n, weights * n, (n * prop + 0.5) / (n + 1.0), warn)
    y = np.where(weights == 0, 0.0, y)
    if np.any((y < 0) | (y > 1)):
        raise DataError("y values must be 0 <= y <= 1 (a binomial response is 0/1, a proportion with weights, "
                        "a two-level factor or cbind(successes, failures))")
    m = weights * y
    warn = ["non-integer #successes in a binomial glm!"] if np.any(np.abs(m - np.rint(m)) > 1e-3) else []
    return Initialized(y, np.ones_like(y), weights, (weights * y + 0.5) / (weights + 1.0), warn)


def _poisson_dev(y, mu, wt):
    return 2.0 * wt * (_ylogy(y, mu) - (y - mu))


def _poisson_aic(y, n, mu, wt, dev):
    return _poisson_aic_prep(y, n, wt)(mu, dev)


def _poisson_aic_prep(y: np.ndarray, n: np.ndarray, wt: np.ndarray) -> Callable[[np.ndarray, float], float]:
    """Poisson's aic, -2 sum wt log dpois(y, mu), as a function of (mu, dev): scipy's
    ``poisson.logpmf`` (xlogy(y, mu) - log y! - mu, -inf off the support) with log y! once."""
    from scipy.special import gammaln, xlogy

    support = (y >= 0) & (np.floor(y) == y)
    lfact = gammaln(np.floor(y) + 1)

    def aic(mu: np.ndarray, dev: float) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            logpmf = np.where(support, xlogy(y, mu) - lfact - mu, -np.inf)
            valid = mu >= 0  # False for nan
            if not valid.all():
                logpmf[~valid] = np.nan
        return -2.0 * float(np.sum(logpmf * wt))

    return aic


def _counts_init(name: str, offset_zero: Callable[[np.ndarray], np.ndarray]):
    def init(y: np.ndarray, weights: np.ndarray) -> Initialized:
        y = np.asarray(y, dtype=float)
        if np.any(y < 0):
            raise DataError(f"negative values not allowed for the {name} family")
        return Initialized(y, np.ones_like(y), weights, offset_zero(y))

    return init


def _positive_init(message: str):
    def init(y: np.ndarray, weights: np.ndarray) -> Initialized:
        y = np.asarray(y, dtype=float)
        if np.any(y <= 0):
            raise DataError(message)
        return Initialized(y, np.ones_like(y), weights, y.copy())

    return init


def _gamma_dev(y, mu, wt):
    with np.errstate(divide="ignore"):
        return -2.0 * wt * (np.log(np.where(y == 0, 1.0, y / mu)) - (y - mu) / mu)


def _gamma_aic(y, n, mu, wt, dev):
    from scipy import stats  # imported on first use, as scipy.stats is slow to import

    disp = dev / np.sum(wt)
    return -2.0 * float(np.sum(wt * stats.gamma.logpdf(y, 1.0 / disp, scale=mu * disp))) + 2.0


def _ig_dev(y, mu, wt):
    return wt * (y - mu) ** 2 / (y * mu * mu)


def _ig_aic(y, n, mu, wt, dev):
    s = np.sum(wt)
    return float(s * (np.log(dev / s * 2.0 * np.pi) + 1.0) + 3.0 * np.sum(np.log(y) * wt) + 2.0)


def _gaussian_aic(y, n, mu, wt, dev):
    nn = len(mu)
    return float(nn * (np.log(2.0 * np.pi * dev / nn) + 1.0) + 2.0 - np.sum(np.log(wt)))


def _gaussian_init(y: np.ndarray, weights: np.ndarray) -> Initialized:
    return Initialized(np.asarray(y, dtype=float), np.ones(len(y)), weights, np.asarray(y, dtype=float).copy())


def _positive_mu(mu: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(mu)) and np.all(mu > 0))


# family name -> (links allowed by R, default link, variance, dev.resids, aic, validmu, initialize)
_FAMILIES = {
    "binomial": (("logit", "probit", "cloglog", "cauchit", "log"), "logit", _binomial_variance, _binomial_dev,
                 _binomial_aic, lambda mu: bool(np.all(np.isfinite(mu)) and np.all((mu > 0) & (mu < 1))),
                 _binomial_init),
    "poisson": (("log", "identity", "sqrt"), "log", lambda mu: mu, _poisson_dev, _poisson_aic, _positive_mu,
                _counts_init("'Poisson'", lambda y: y + 0.1)),
    "Gamma": (("inverse", "identity", "log"), "inverse", lambda mu: mu * mu, _gamma_dev, _gamma_aic, _positive_mu,
              _positive_init("non-positive values not allowed for the 'Gamma' family")),
    "inverse.gaussian": (("1/mu^2", "inverse", "identity", "log"), "1/mu^2", lambda mu: mu**3, _ig_dev, _ig_aic,
                         lambda mu: True,
                         _positive_init("positive values only are allowed for the 'inverse.gaussian' family")),
    "gaussian": (("inverse", "log", "identity"), "identity", lambda mu: np.ones_like(mu),
                 lambda y, mu, wt: wt * (y - mu) ** 2, _gaussian_aic, lambda mu: True, _gaussian_init),
}


def make_family(name: str, link: str | None = None) -> Family:
    """R's ``<name>(link = <link>)``, with R's error for a link the family does not allow."""
    if name not in _FAMILIES:
        known = ", ".join(list(_FAMILIES) + ["negative binomial (glmer_nb)"])
        raise ModelError(f"unknown family {name!r}: use one of {known}")
    links, default, variance, dev, aic, validmu, init = _FAMILIES[name]
    prep = {"binomial": _binomial_aic_prep, "poisson": _poisson_aic_prep}.get(name)
    dev_prep = _binomial_dev_prep if name == "binomial" else None
    link = default if link is None else link
    if link not in links:
        raise ModelError(f"link \"{link}\" not available for {name} family; available links are "
                         + ", ".join(f"'{k}'" for k in links))
    return Family(name, LINKS[link], variance, dev, aic, validmu, init, aic_prep=prep, dev_prep=dev_prep)


def binomial(link: str = "logit") -> Family:
    """R's ``binomial(link)``: logit (default), probit, cloglog, cauchit or log."""
    return make_family("binomial", link)


def poisson(link: str = "log") -> Family:
    """R's ``poisson(link)``: log (default), identity or sqrt."""
    return make_family("poisson", link)


def Gamma(link: str = "inverse") -> Family:
    """R's ``Gamma(link)``: inverse (default), identity or log."""
    return make_family("Gamma", link)


def inverse_gaussian(link: str = "1/mu^2") -> Family:
    """R's ``inverse.gaussian(link)``: 1/mu^2 (default), inverse, identity or log."""
    return make_family("inverse.gaussian", link)


def gaussian(link: str = "identity") -> Family:
    """R's ``gaussian(link)``: identity (default; glmer then refers you to lmer), log or inverse."""
    return make_family("gaussian", link)


def negative_binomial(theta: float, link: str = "log") -> Family:
    """MASS's ``negative.binomial(theta, link)`` (glmer.nb's family): variance mu + mu^2/theta."""
    if link not in ("log", "sqrt", "identity"):
        raise ModelError(f"link \"{link}\" not available for the negative binomial family; available links are "
                         "'log', 'sqrt', 'identity'")
    th = float(theta)

    def dev(y, mu, wt):
        return 2.0 * wt * (_ylogy(y, mu) - (y + th) * np.log((y + th) / (mu + th)))

    def aic(y, n, mu, wt, d):
        from scipy.special import gammaln

        return 2.0 * float(np.sum(wt * (y + th) * np.log(mu + th) - y * np.log(mu) + gammaln(y + 1)
                                  - th * np.log(th) + gammaln(th) - gammaln(th + y)))

    init = _counts_init("negative binomial", lambda y: y + (y == 0) / 6.0)
    return Family(f"Negative Binomial({_format_theta(th)})", LINKS[link], lambda mu: mu + mu * mu / th, dev, aic,
                  _positive_mu, init, theta=th)


def _format_theta(theta: float) -> str:
    """MASS writes the shape in the family name with format(round(theta, 4))."""
    from ..rbase.printing import format_number

    return format_number(round(theta, 4), 7)


def as_family(family) -> Family:
    """A Family from what glmer's ``family`` argument accepts: a Family, a family's name
    (``"binomial"``), or one of the constructors above (``pylme.poisson``)."""
    if isinstance(family, Family):
        return family
    if isinstance(family, str):
        return make_family(family.replace("inverse_gaussian", "inverse.gaussian"))
    if callable(family):
        out = family()
        if isinstance(out, Family):
            return out
    raise ModelError(f"family must be a family name ('binomial', 'poisson', ...) or a family object such as "
                     f"pylme.binomial(link='probit'), not {family!r}")
