"""The evaluator of formula expressions: a formula is data, never code.

An expression such as ``I(Days^2)``, ``log(x, base = 2)``, ``poly(x, 2)`` or
``relevel(factor(g), "b")`` is a syntax tree (pylme.description.rsyntax) evaluated here against the data's
columns, with R's meaning of every operator and of the functions in ``FUNCTIONS``, a fixed table;
nothing is looked up in Python, imported, opened or executed, and a call to any other function
is a FormulaError that names it and lists the table. Names are data columns (``T``, ``F`` and
``pi`` R's constants where no column has that name); function names live apart from them, so a
column called ``log`` leaves ``log()`` alone.

Values are R's: numeric arrays, ``Logical`` (with NA), character arrays, ``Factor``, and
``Basis`` (the matrix of ``poly``, ``scale``, ``bs``, ``ns``, whose columns R names by appending
``1``, ``2``, ... to the label). The data-dependent functions keep what they learned in
``states`` (keyed by the call's label) so that new data is transformed as the fitted data was.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from . import bases
from .factors import Factor, Logical, column_value, cut, factor, labels_of, relevel, to_factor
from .rsyntax import Node, chain, deparse

_SOFT_CONSTANTS = {"T": True, "F": False, "pi": float(np.pi)}


@dataclass(frozen=True)
class Basis:
    """A numeric matrix value (n x k) and the suffixes R gives its columns (none: one column
    named by the label alone, as ``scale(x)``)."""

    values: np.ndarray
    suffixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RFunction:
    """A function a formula may call: R's formal arguments, its meaning, and our implementation
    (given the evaluator, the matched arguments and the call's label, the key of its state)."""

    formals: tuple[str, ...]
    meaning: str
    impl: Callable = field(repr=False)


class Evaluator:
    """Evaluates syntax trees against the columns of ``frame``; ``states`` holds (and receives)
    what data-dependent functions learned."""

    def __init__(self, frame: pd.DataFrame, states: dict | None = None):
        self.frame = frame
        self.n = len(frame)
        self.states = {} if states is None else states

    # ------------------------------------------------------------ dispatch
    def value(self, node: Node):
        op = node.op
        if op == "num":
            return node.value
        if op == "str":
            return node.text
        if op == "const":
            return _constant(node.text)
        if op == "name":
            return self.column(node.text)
        if op == "paren":
            return self.value(node.args[0])
        if op == "call":
            return self.call(node)
        if op in ("+", "-"):
            return self.sum(node)
        if op in ("u-", "u+"):
            x = self.numeric(self.value(node.args[0]), node)
            return -x if op == "u-" else x
        if op == "u!":
            return _not(self.logical(self.value(node.args[0]), node))
        if op in _ARITHMETIC:
            a, b = (self.numeric(self.value(x), node) for x in node.args)
            with np.errstate(all="ignore"):  # R: x/0 is Inf, 0/0 NaN, without a word
                return _ARITHMETIC[op](a, b)
        if op in _COMPARISON:
            return self.compare(node)
        if op in ("&", "|"):
            a, b = (self.logical(self.value(x), node) for x in node.args)
            return _and(a, b) if op == "&" else _or(a, b)
        if op == "%in%":
            return self.member(node)
        raise FormulaError(_operator_message(node))

    def column(self, name: str):
        if name in self.frame.columns:
            return column_value(self.frame[name])
        if name in _SOFT_CONSTANTS:
            return _SOFT_CONSTANTS[name]
        raise DataError(f"column {name!r} not found in data; available: {', '.join(map(str, self.frame.columns))}")

    def call(self, node: Node):
        fn = FUNCTIONS.get(node.text)
        if fn is None:
            raise FormulaError(
                f"unknown function {node.text}() in '{deparse(node)}': a formula may call only "
                + ", ".join(f"{k}()" for k in sorted(FUNCTIONS, key=str.lower))
            )
        label = deparse(node)
        try:
            return fn.impl(self, _Args(self, node, fn.formals), label)
        except (ArithmeticError, ValueError, TypeError, IndexError) as exc:
            if isinstance(exc, (FormulaError, DataError)):
                raise
            raise FormulaError(f"cannot evaluate '{label}': {exc}") from exc

    def sum(self, node: Node):
        parts = chain(node)
        total = self.numeric(self.value(parts[0][1]), node)
        for op, operand in parts[1:]:
            x = self.numeric(self.value(operand), node)
            with np.errstate(all="ignore"):
                total = total + x if op == "+" else total - x
        return total

    # ------------------------------------------------------------ coercions (R's)
    def numeric(self, value, node: Node):
        """A number or numeric vector for arithmetic (logicals as 0/1), or a FormulaError."""
        if isinstance(value, Logical):
            return self.rows(value.values, node)
        if isinstance(value, (bool, np.bool_)):
            return float(value)
        if isinstance(value, (int, float, np.integer, np.floating)):
            return float(value)
        if isinstance(value, np.ndarray) and value.dtype != object:
            return self.rows(value.astype(float), node)
        if isinstance(value, Basis):
            raise FormulaError(f"'{deparse(node)}': a matrix term ({_kind(value)}) cannot be used in arithmetic")
        raise FormulaError(f"'{deparse(node)}': arithmetic is not meaningful for {_kind(value)} values (as in R)")

    def logical(self, value, node: Node):
        """A Logical (numbers: TRUE when not 0), or a FormulaError."""
        if isinstance(value, Logical):
            return value
        if isinstance(value, (bool, np.bool_)):
            return Logical(np.array([float(value)]))
        x = self.numeric(value, node)
        x = np.atleast_1d(np.asarray(x, dtype=float))
        return Logical(np.where(np.isnan(x), np.nan, (x != 0).astype(float)))

    def rows(self, x: np.ndarray, node: Node) -> np.ndarray:
        """``x`` if it has one value, or one per row (R would recycle other lengths silently)."""
        if np.ndim(x) == 1 and np.size(x) not in (1, self.n):
            raise FormulaError(f"'{deparse(node)}': a vector of {np.size(x)} values where one per row ({self.n}) "
                               "is needed")
        return x

    def compare(self, node: Node) -> Logical:
        a, b = (self.value(x) for x in node.args)
        op = node.op
        if _is_text(a) or _is_text(b):
            if op not in ("==", "!="):
                raise FormulaError(f"'{deparse(node)}': {op} is not meaningful for factors or strings (only == and !=)")
            la, lb = self.rows(_labels(a), node), self.rows(_labels(b), node)
            missing = np.array([x is None for x in la]) | np.array([x is None for x in lb])
            result = (la == lb) if op == "==" else (la != lb)
            return Logical(np.where(missing, np.nan, result.astype(float)))
        x, y = self.numeric(a, node), self.numeric(b, node)
        with np.errstate(invalid="ignore"):
            result = _COMPARISON[op](x, y)
        missing = np.isnan(x) | np.isnan(y)
        return Logical(np.atleast_1d(np.where(missing, np.nan, np.asarray(result, dtype=float))))

    def member(self, node: Node) -> Logical:
        """``x %in% table``: by labels, as R's match() does; never NA."""
        x, table = (self.value(a) for a in node.args)
        lt = set(_labels(table))
        return Logical(np.array([float(v in lt) for v in self.rows(_labels(x), node)]))


def _is_text(value) -> bool:
    return isinstance(value, (Factor, str)) or (isinstance(value, np.ndarray) and value.dtype == object)


def _labels(value) -> np.ndarray:
    """R's as.character of a value, as an array (None for NA)."""
    if isinstance(value, (Factor, Logical)):
        return labels_of(value)
    if isinstance(value, str):
        return np.array([value], dtype=object)
    if value is None:
        return np.array([], dtype=object)
    if isinstance(value, (bool, np.bool_)):
        return np.array(["TRUE" if value else "FALSE"], dtype=object)
    if np.ndim(value) == 0:
        return labels_of(np.array([float(value)]))
    return labels_of(value)


# ---------------------------------------------------------------- arguments
class _Args:
    """A call's arguments matched to the formals as R matches them: exact names, then unique
    prefixes (of the formals before ``...``), then positions; values evaluated when asked."""

    def __init__(self, ev: Evaluator, node: Node, formals: tuple[str, ...]):
        self.ev, self.node = ev, node
        self.label = deparse(node)
        before = formals[: formals.index("...")] if "..." in formals else formals
        named: dict[str, Node] = {}
        positional: list[Node] = []
        for a in node.args:
            if a.op != "arg":
                positional.append(a)
                continue
            key = a.text if a.text in formals and a.text != "..." else self._partial(a.text, before)
            if key in named:
                raise FormulaError(f"'{self.label}': argument {key!r} given twice")
            named[key] = a.args[0]
        free = [f for f in before if f not in named]
        self.dots: list[Node] = []
        for a in positional:
            if free:
                named[free.pop(0)] = a
            elif "..." in formals:
                self.dots.append(a)
            else:
                raise FormulaError(f"'{self.label}': unused argument {deparse(a)}")
        self.named = named

    def _partial(self, key: str, before: tuple[str, ...]) -> str:
        hits = [f for f in before if f.startswith(key)]
        if len(hits) != 1:
            raise FormulaError(f"'{self.label}': unused argument {key} = (the arguments of {self.node.text}() are "
                               f"{', '.join(f for f in self.formals_shown())})")
        return hits[0]

    def formals_shown(self) -> tuple[str, ...]:
        return FUNCTIONS[self.node.text].formals

    def has(self, name: str) -> bool:
        return name in self.named

    def get(self, name: str, default=None):
        """The value of argument ``name`` (``default`` when not given; R's NULL is None)."""
        return self.ev.value(self.named[name]) if name in self.named else default

    def vector(self, name: str = "x"):
        """A data argument: a value with one entry per row (a column, or an expression of columns)."""
        if name not in self.named:
            raise FormulaError(f"'{self.label}': argument {name!r} is missing")
        value = self.ev.value(self.named[name])
        if isinstance(value, Factor):
            size = len(value.codes)
        elif isinstance(value, (Logical, Basis)):
            size = len(value.values)
        else:
            size = np.size(value) if np.ndim(value) == 1 else -1
        if size != self.ev.n:
            raise FormulaError(f"'{self.label}': {name} must have one value per row of the data, not be a constant")
        return value

    def numeric_vector(self, name: str = "x") -> np.ndarray:
        """A numeric data argument, one number per row."""
        value = self.vector(name)
        if isinstance(value, (Factor, Basis)) or _is_text(value):
            raise FormulaError(f"'{self.label}': {self.node.text}() is not meaningful for {_kind(value)} values "
                               "(as in R)")
        return np.asarray(self.ev.numeric(value, self.node), dtype=float)

    def numeric(self, name: str = "x"):
        """A numeric argument of an element-wise function: a number, or one per row."""
        if name not in self.named:
            raise FormulaError(f"'{self.label}': argument {name!r} is missing")
        value = self.ev.value(self.named[name])
        if isinstance(value, Factor):
            raise FormulaError(f"'{self.label}': {self.node.text}() is not meaningful for factors (as in R)")
        return self.ev.numeric(value, self.node)

    def flag(self, name: str, default: bool) -> bool:
        value = self.get(name, default)
        if isinstance(value, Logical) and value.values.size == 1 and not np.isnan(value.values[0]):
            value = bool(value.values[0])
        if not isinstance(value, (bool, np.bool_)):
            raise FormulaError(f"'{self.label}': {name} must be TRUE or FALSE")
        return bool(value)

    def number(self, name: str, default=None, whole: bool = False):
        """A finite number (a whole one if ``whole``), or ``default`` when not given."""
        value = self.get(name, default)
        if value is None:
            return None
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
        if not ok or (whole and value != int(value)):
            raise FormulaError(f"'{self.label}': {name} must be a {'whole ' if whole else ''}finite number")
        return int(value) if whole else float(value)

    def numbers(self, name: str):
        """Finite numbers (knots, breaks), or None when not given."""
        value = self.get(name)
        if value is None:
            return None
        if isinstance(value, (bool, np.bool_, Logical, Factor, Basis)) or _is_text(value):
            raise FormulaError(f"'{self.label}': {name} must be numbers")
        x = np.atleast_1d(np.asarray(value, dtype=float))
        if x.ndim != 1 or not np.all(np.isfinite(x)):
            raise FormulaError(f"'{self.label}': {name} must be finite numbers")
        return x

    def reject(self, *names: str) -> None:
        for name in names:
            if name in self.named:
                raise FormulaError(f"'{self.label}': argument {name!r} of {self.node.text}() is not supported")

    def state(self, label: str, learn: Callable):
        """What this call learned from the fitted data (learned now if this is the fit)."""
        if label not in self.ev.states:
            self.ev.states[label] = learn()
        return self.ev.states[label]


# ---------------------------------------------------------------- operators
_ARITHMETIC = {"*": np.multiply, "/": np.divide, "^": np.power, "%%": np.mod, "%/%": np.floor_divide}
_COMPARISON = {"==": np.equal, "!=": np.not_equal, "<": np.less, ">": np.greater, "<=": np.less_equal,
               ">=": np.greater_equal}


def _not(a: Logical) -> Logical:
    return Logical(1.0 - a.values)


def _and(a: Logical, b: Logical) -> Logical:
    x, y = np.broadcast_arrays(a.values, b.values)
    return Logical(np.where((x == 0) | (y == 0), 0.0, np.where(np.isnan(x) | np.isnan(y), np.nan, 1.0)))


def _or(a: Logical, b: Logical) -> Logical:
    x, y = np.broadcast_arrays(a.values, b.values)
    return Logical(np.where((x == 1) | (y == 1), 1.0, np.where(np.isnan(x) | np.isnan(y), np.nan, 0.0)))


def _constant(text: str):
    if text in ("TRUE", "FALSE"):
        return text == "TRUE"
    if text == "NULL":
        return None
    return {"Inf": np.inf, "NaN": np.nan}.get(text, np.nan)  # NA, NA_real_, ...


def _operator_message(node: Node) -> str:
    op = node.op
    if op in ("&&", "||"):
        return (f"'{deparse(node)}': {op} compares single values (an error for a column in R); "
                f"write {op[0]} for element-wise logic")
    if op == ":":
        return f"'{deparse(node)}': ':' inside a function call is R's sequence operator, which a formula cannot use"
    if op in ("~", "u~"):
        return f"'{deparse(node)}': a formula inside a function call is not supported"
    if op == "arg":
        return f"'{deparse(node)}': a named argument outside a function call"
    return f"'{deparse(node)}': the operator {op} is not supported in a model formula"


def _kind(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, Factor):
        return "factor"
    if isinstance(value, Basis):
        return "matrix"
    if isinstance(value, str) or (isinstance(value, np.ndarray) and value.dtype == object):
        return "character"
    return type(value).__name__


# ---------------------------------------------------------------- the function table
def _identity(ev: Evaluator, args: _Args, label: str):
    if "x" not in args.named:
        raise FormulaError(f"'{label}': argument 'x' is missing")
    return ev.value(args.named["x"])


def _math(fn: Callable) -> Callable:
    def impl(ev: Evaluator, args: _Args, label: str):
        with np.errstate(all="ignore"):
            return fn(args.numeric())

    return impl


def _log(ev: Evaluator, args: _Args, label: str):
    x = args.numeric()
    base = args.number("base")
    with np.errstate(all="ignore"):
        if base is None:
            return np.log(x)
        if base == 10:
            return np.log10(x)
        if base == 2:
            return np.log2(x)
        return np.log(x) / np.log(base)


def _parallel(fn: Callable, fn_na: Callable) -> Callable:
    def impl(ev: Evaluator, args: _Args, label: str):
        if not args.dots:
            raise FormulaError(f"'{label}': no arguments")
        values = [ev.numeric(ev.value(a), args.node) for a in args.dots]
        pick = fn_na if args.flag("na.rm", False) else fn
        out = values[0]
        for v in values[1:]:
            out = pick(out, v)
        return np.broadcast_to(out, (ev.n,)).astype(float) if np.ndim(out) == 0 else out

    return impl


def _as_numeric(ev: Evaluator, args: _Args, label: str):
    value = args.vector()
    if isinstance(value, Factor):
        return np.where(value.codes >= 0, value.codes + 1.0, np.nan)
    if _is_text(value):
        return pd.to_numeric(pd.Series(value), errors="coerce").to_numpy(dtype=float)
    return args.numeric_vector()


def poly_arguments(args: _Args, label: str) -> tuple[int, bool]:
    """poly()'s degree and raw, checked (one variable only)."""
    args.reject("coefs", "simple")
    if len(args.dots) > 1 or (args.dots and args.has("degree")):
        raise FormulaError(f"'{label}': poly() of several variables is not supported; write one poly() per variable")
    if args.dots:
        args.named["degree"] = args.dots[0]
    degree = args.number("degree", 1, whole=True)
    if degree < 1:
        raise FormulaError(f"'{label}': the degree must be at least 1")
    return degree, args.flag("raw", False)


def _poly(ev: Evaluator, args: _Args, label: str):
    degree, raw = poly_arguments(args, label)
    x = args.numeric_vector()
    if raw:
        values = bases.poly_raw(x, degree)
    else:
        values = bases.poly_apply(x, args.state(label, lambda: bases.poly_state(x, degree)))
    return _basis(values)


def scale_arguments(args: _Args, label: str) -> tuple:
    """scale()'s center and scale: TRUE, FALSE or one number each."""
    center, scale = (args.get(k, True) for k in ("center", "scale"))
    for k, v in (("center", center), ("scale", scale)):
        if not isinstance(v, (bool, np.bool_)) and not (isinstance(v, float) and np.isfinite(v)):
            raise FormulaError(f"'{label}': {k} must be TRUE, FALSE or one finite number")
    return center, scale


def _scale(ev: Evaluator, args: _Args, label: str):
    x = args.numeric_vector()
    center, scale = scale_arguments(args, label)
    return Basis(bases.scale_apply(x, args.state(label, lambda: bases.scale_state(x, center, scale)))[:, None])


def spline_arguments(args: _Args, label: str, natural: bool) -> dict:
    """bs()/ns()'s df, knots, degree, intercept and boundary knots, checked (the keywords of
    pylme.description.bases.spline_state after x)."""
    bounds = args.numbers("Boundary.knots")
    if bounds is not None and bounds.size != 2:
        raise FormulaError(f"'{label}': Boundary.knots must be two numbers")
    return dict(df=args.number("df", whole=True), knots=args.numbers("knots"),
                degree=3 if natural else args.number("degree", 3, whole=True),
                intercept=args.flag("intercept", False), boundary=bounds, natural=natural)


def _spline(natural: bool) -> Callable:
    def impl(ev: Evaluator, args: _Args, label: str):
        x = args.numeric_vector()
        learn = lambda: bases.spline_state(x, **spline_arguments(args, label, natural))  # noqa: E731
        return _basis(bases.spline_apply(x, args.state(label, learn)))

    return impl


def _basis(values: np.ndarray) -> Basis:
    """A matrix value: its columns named 1, 2, ... after the label (one column: the label alone)."""
    k = values.shape[1]
    return Basis(values, tuple(str(j + 1) for j in range(k)) if k > 1 else ())


def _factor(ev: Evaluator, args: _Args, label: str):
    args.reject("exclude")
    ordered = args.flag("ordered", False) if args.has("ordered") else None
    return factor(args.vector(), _constants(args, "levels"), _constants(args, "labels"), ordered)


def _ordered(ev: Evaluator, args: _Args, label: str):
    return factor(args.vector(), _constants(args, "levels"), _constants(args, "labels"), True)


def _constants(args: _Args, name: str):
    """Levels or labels: constants (numbers or strings), or None when not given."""
    value = args.get(name)
    if value is not None and not (isinstance(value, (str, int, float)) or (
            isinstance(value, np.ndarray) and value.ndim == 1)):
        raise FormulaError(f"'{args.label}': {name} must be constants, e.g. c(\"a\", \"b\")")
    return value


def _as_factor(ev: Evaluator, args: _Args, label: str):
    value = args.vector()
    if isinstance(value, Basis):
        raise FormulaError(f"'{label}': a matrix cannot be a factor")
    return value if isinstance(value, Factor) else to_factor(value, drop_unused=False)


def _as_ordered(ev: Evaluator, args: _Args, label: str):
    fac = _as_factor(ev, args, label)
    return Factor(fac.codes, fac.levels, True)


def _relevel(ev: Evaluator, args: _Args, label: str):
    ref = args.get("ref")
    if not isinstance(ref, (str, float)) or (isinstance(ref, float) and not np.isfinite(ref)):
        raise FormulaError(f"'{label}': 'ref' must be one level (its label, or its position)")
    return relevel(_as_factor(ev, args, label), ref)


def _cut(ev: Evaluator, args: _Args, label: str):
    labels = args.get("labels")
    if labels is not False:
        labels = _constants(args, "labels")
    breaks = args.numbers("breaks")
    if breaks is None:
        raise FormulaError(f"'{label}': argument 'breaks' is missing")
    dig = args.number("dig.lab", 3, whole=True)
    if not 1 <= dig <= 22:
        raise FormulaError(f"'{label}': dig.lab must be between 1 and 22")
    return cut(args.numeric_vector(), breaks, labels, args.flag("include.lowest", False), args.flag("right", True),
               dig, args.flag("ordered_result", False))


def _c(ev: Evaluator, args: _Args, label: str):
    """R's ``c()`` of constants: a vector of numbers, or of strings when any is a string."""
    values = [ev.value(a) for a in args.dots]
    if any(not (isinstance(v, (str, bool, int, float, np.bool_)) or v is None) for v in values):
        raise FormulaError(f"'{label}': c() may hold only numbers, strings, TRUE and FALSE")
    values = [v for v in values if v is not None]
    if any(isinstance(v, str) for v in values):
        return np.array([v if isinstance(v, str) else _labels(v)[0] for v in values], dtype=object)
    return np.array(values, dtype=float)


def _math_table() -> dict[str, RFunction]:
    unary = {
        "log2": (np.log2, "base-2 logarithm"), "log10": (np.log10, "base-10 logarithm"),
        "log1p": (np.log1p, "log(1 + x)"), "exp": (np.exp, "exponential"), "expm1": (np.expm1, "exp(x) - 1"),
        "sqrt": (np.sqrt, "square root"), "abs": (np.abs, "absolute value"), "sign": (np.sign, "sign"),
        "sin": (np.sin, "sine"), "cos": (np.cos, "cosine"), "tan": (np.tan, "tangent"),
        "floor": (np.floor, "round down"), "ceiling": (np.ceil, "round up"), "trunc": (np.trunc, "round toward 0"),
    }
    return {k: RFunction(("x",), meaning, _math(fn)) for k, (fn, meaning) in unary.items()}


#: the functions a formula may call, each with R's meaning
FUNCTIONS: dict[str, RFunction] = {
    "I": RFunction(("x",), "as is: arithmetic inside a term, I(x^2)", _identity),
    "offset": RFunction(("object",), "a term with coefficient 1 (R's offset)",
                        lambda ev, a, label: a.numeric_vector("object")),
    "log": RFunction(("x", "base"), "logarithm, natural unless base is given", _log),
    **_math_table(),
    "pmin": RFunction(("...", "na.rm"), "element-wise minimum", _parallel(np.minimum, np.fmin)),
    "pmax": RFunction(("...", "na.rm"), "element-wise maximum", _parallel(np.maximum, np.fmax)),
    "as.numeric": RFunction(("x",), "numbers (a factor's level numbers, as R)", _as_numeric),
    "poly": RFunction(("x", "...", "degree", "coefs", "raw", "simple"),
                      "orthogonal polynomials of degree 1..degree (raw = TRUE: powers)", _poly),
    "scale": RFunction(("x", "center", "scale"), "centred and scaled by the fitted data's mean and sd", _scale),
    "bs": RFunction(("x", "df", "knots", "degree", "intercept", "Boundary.knots"),
                    "B-spline basis (splines::bs)", _spline(False)),
    "ns": RFunction(("x", "df", "knots", "intercept", "Boundary.knots"),
                    "natural cubic spline basis (splines::ns)", _spline(True)),
    "factor": RFunction(("x", "levels", "labels", "exclude", "ordered"), "a factor (levels, labels)", _factor),
    "as.factor": RFunction(("x",), "a factor", _as_factor),
    "ordered": RFunction(("x", "levels", "labels"), "an ordered factor (polynomial contrasts)", _ordered),
    "as.ordered": RFunction(("x",), "an ordered factor", _as_ordered),
    "relevel": RFunction(("x", "ref"), "the factor with level ref first (the reference level)", _relevel),
    "cut": RFunction(("x", "breaks", "labels", "include.lowest", "right", "dig.lab", "ordered_result"),
                     "a factor of intervals", _cut),
    "c": RFunction(("...",), "a vector of constants (for levels, breaks, knots)", _c),
}
