"""R model formulas: term expansion, and lme4's bar-term handling.

The formula is parsed by pylme.description.rsyntax into a syntax tree. This module gives back what
R's ``terms.formula`` and lme4's ``findbars``/``nobars``/``expandDoubleVerts`` give: the
fixed-effects terms in R's order and the random-effects bar terms, with ``||`` split into
uncorrelated terms and ``a/b`` grouping expanded to ``b:a`` and ``a``. Anything that is not a
formula operator (``I(x^2)``, ``log(z)``, ``poly(x, 2)``, ``x > 2``) is a variable, labelled as
R deparses it and evaluated by pylme.description.evaluate. ``.`` on the right stands for every column of
the data but the response's (``expand_dot``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import lru_cache

from ..errors import FormulaError
from .rsyntax import Node, chain, deparse, name, num, parse, variables


def names_in(text: str) -> list[str]:
    """Names an R expression or formula reads (candidate data columns), in order."""
    return variables(parse(text))


# ---------------------------------------------------------------- terms
@dataclass(frozen=True)
class Variable:
    """One variable of a model term: a column name or an expression such as ``I(x^2)``."""

    label: str  # R's label
    node: Node = field(compare=False, hash=False)

    @property
    def data_names(self) -> list[str]:
        """The data columns the variable reads (``x`` for ``log(x)``), in order of appearance."""
        return variables(self.node)


@dataclass
class Terms:
    """The expansion of a formula's right-hand side, as R's ``terms.formula`` gives it."""

    terms: list[tuple[Variable, ...]]  # in R's order, variables ordered by first appearance
    intercept: bool
    offsets: list[Variable]
    variables: list[Variable]  # all variables, in order of appearance

    @property
    def labels(self) -> list[str]:
        return [":".join(v.label for v in t) for t in self.terms]


_FORMULA_OPS = {"+", "-", "*", "/", ":", "^", "%in%", "|", "||", "~", "u-", "u+", "u~", "paren", "num"}


class _Expander:
    """Expands +, -, *, /, :, ^ and 0/1 into R's term list."""

    def __init__(self) -> None:
        self.variables: dict[str, Variable] = {}
        self.offsets: list[Variable] = []

    def var(self, node: Node) -> frozenset[str]:
        label = deparse(node)
        self.variables.setdefault(label, Variable(label, node))
        return frozenset([label])

    def expand(self, node: Node) -> tuple[list[frozenset[str]], bool | None]:
        """Return (terms in order, intercept: True/False/None = unspecified)."""
        op = node.op
        if op not in _FORMULA_OPS:
            return self.variable(node)
        if op == "num":
            if node.value in (0.0, 1.0):
                return [], node.value == 1.0
            raise FormulaError(f"invalid model term {node.text!r}: only 0 and 1 may appear as numbers")
        if op == "paren":
            return self.expand(node.args[0])
        if op in ("+", "-"):
            return self.sum(node)
        if op == "u-":
            terms, icpt = self.expand(node.args[0])
            if terms:
                raise FormulaError(f"cannot parse term '{deparse(node)}': a formula cannot start by removing terms")
            return [], (not icpt) if icpt is not None else None
        if op == "u+":
            return self.expand(node.args[0])
        if op in ("|", "||"):
            raise FormulaError(
                f"random-effects term '{deparse(node)}' must be enclosed in parentheses, e.g. ({deparse(node)})"
            )
        if op in ("~", "u~"):
            raise FormulaError(f"misplaced '~' in '{deparse(node)}'")
        return self.product(node)

    def variable(self, node: Node) -> tuple[list[frozenset[str]], None]:
        if node.op == "name" and node.text == ".":
            raise FormulaError("'.' (all other columns) is only allowed in the fixed part of a formula fitted to data")
        if node.op == "str":
            raise FormulaError(f"invalid model term {deparse(node)}: a string is not a variable")
        if node.op == "call" and node.text == "offset":
            self.offsets.append(Variable(deparse(node), node))
            return [], None
        return [self.var(node)], None

    def sum(self, node: Node) -> tuple[list[frozenset[str]], bool | None]:
        """A chain of + and -, left to right: a later 0 or 1 overrides an earlier one."""
        terms: dict[frozenset[str], None] = {}
        icpt: bool | None = None
        for k, (op, operand) in enumerate(chain(node)):
            t, i = self.expand(operand)
            if op == "+":
                terms.update(dict.fromkeys(t))
                icpt = icpt if i is None else i
            else:
                for drop in t:
                    terms.pop(drop, None)
                icpt = icpt if i is None else not i
        return list(terms), icpt

    def product(self, node: Node) -> tuple[list[frozenset[str]], bool | None]:
        """``:``, ``*``, ``/`` (and ``%in%``) and ``^`` of term lists."""
        op = node.op
        left, li = self.expand(node.args[0])
        if op == "^":
            power = node.args[1]
            if power.op != "num" or not power.value.is_integer() or power.value < 1:
                raise FormulaError(f"invalid power in '{deparse(node)}': use a positive whole number")
            out = list(left)
            for _ in range(int(power.value) - 1):
                out = _unique(out + _interact(out, left))
            return out, li
        right, _ = self.expand(node.args[1])
        if op == ":":
            return _interact(left, right), li
        if op == "*":
            return _unique(left + right + _interact(left, right)), li
        if op in ("/", "%in%"):
            whole = frozenset().union(*left) if left else frozenset()
            return _unique(left + [whole | t for t in right]), li
        return self.variable(node)


def _unique(terms: list[frozenset[str]]) -> list[frozenset[str]]:
    return list(dict.fromkeys(terms))


def _interact(left: list[frozenset[str]], right: list[frozenset[str]]) -> list[frozenset[str]]:
    """R's ``a:b`` for term lists, in R's order (each left term with every right term)."""
    return _unique([s | t for s in left for t in right])


@lru_cache(maxsize=512)
def expand_terms(rhs: Node | None, default_intercept: bool = True) -> Terms:
    """Expand a right-hand side into R's terms (sorted by order, then appearance)."""
    ex = _Expander()
    terms, icpt = ex.expand(rhs) if rhs is not None else ([], None)
    order = list(ex.variables)
    ordered = sorted(
        (tuple(ex.variables[v] for v in sorted(t, key=order.index)) for t in terms if t),
        key=len,
    )
    return Terms(
        terms=ordered,
        intercept=default_intercept if icpt is None else icpt,
        offsets=ex.offsets,
        variables=list(ex.variables.values()),
    )


# ---------------------------------------------------------------- bar terms
@dataclass(frozen=True)
class BarTerm:
    """One random-effects term ``(lhs | group)`` after lme4's expansions."""

    lhs: Node  # the model formula of the random effects
    group_node: Node  # the grouping expression: a name, or ':' interactions of names

    @property
    def group(self) -> str:
        """R's label of the grouping factor, e.g. ``Subject`` or ``cask:batch``."""
        return deparse(self.group_node)

    @property
    def group_vars(self) -> list[str]:
        return variables(self.group_node)

    @property
    def label(self) -> str:
        return f"{deparse(self.lhs)} | {self.group}"


@dataclass
class ParsedFormula:
    """A mixed-model formula split as lme4 splits it."""

    text: str
    response: Node | None
    fixed: Node | None  # the fixed-effects right-hand side (nobars)
    bars: list[BarTerm]

    @property
    def response_label(self) -> str | None:
        return deparse(self.response) if self.response is not None else None


@lru_cache(maxsize=256)
def parse_mixed(text: str) -> ParsedFormula:
    """Split ``y ~ fixed + (re | g)`` into response, fixed part and expanded bar terms."""
    tree = parse(text)
    if tree.op == "~":
        response, rhs = tree.args
    elif tree.op == "u~":
        response, rhs = None, tree.args[0]
    else:
        raise FormulaError(f"formula {text!r} has no '~': write it as 'response ~ terms'")
    fixed_parts: list[tuple[str, Node]] = []
    bars: list[BarTerm] = []
    for sign, part in _top_level(rhs):
        inner = part.args[0] if part.op == "paren" else None
        if inner is not None and inner.op in ("|", "||"):
            if sign == "-":
                raise FormulaError(f"cannot remove a random-effects term: -{deparse(part)}")
            bars.extend(_expand_bar(inner))
        elif part.op in ("|", "||"):
            raise FormulaError(
                f"random-effects term '{deparse(part)}' must be enclosed in parentheses, e.g. ({deparse(part)})"
            )
        else:
            _check_no_bars(part)
            fixed_parts.append((sign, part))
    return ParsedFormula(text=text, response=response, fixed=_join(fixed_parts), bars=bars)


def _top_level(node: Node, sign: str = "+") -> list[tuple[str, Node]]:
    """The operands of the top-level + and - of a right-hand side, with their signs."""
    out = []
    for op, operand in chain(node):
        if operand.op == "u-":
            out.append(("-", operand.args[0]))
        else:
            out.append((op if sign == "+" else ("+" if op == "-" else "-"), operand))
    return out


def _join(parts: list[tuple[str, Node]]) -> Node | None:
    node: Node | None = None
    for sign, part in parts:
        if node is None:
            node = part if sign == "+" else Node("u-", (part,))
        else:
            node = Node(sign, (node, part))
    return node


def _check_no_bars(node: Node) -> None:
    for n in _formula_nodes(node):
        if n.op in ("|", "||"):
            raise FormulaError(f"random-effects term '{deparse(n)}' must be a top-level term in parentheses")


def _expand_bar(bar: Node) -> list[BarTerm]:
    """lme4's expandDoubleVerts and slash expansion for one ``(lhs | g)`` or ``(lhs || g)``."""
    lhs, grp = bar.args
    groups = _expand_slash(grp)
    if bar.op == "|":
        lhss = [lhs]
    else:
        t = expand_terms(lhs)
        lhss = [num(1)] if t.intercept else []
        lhss += [parse(f"0 + {label}") for label in t.labels]
    return [BarTerm(lhs=l, group_node=g) for l in lhss for g in groups]


def expand_double_verts(node: Node) -> Node:
    """The formula as lme4 keeps it: each ``(x || g)`` written out as ``((1 | g) + (0 + x | g))``."""
    if node.op == "paren" and node.args[0].op == "||":
        bars = [Node("paren", (Node("|", (b.lhs, b.group_node)),)) for b in _expand_bar(node.args[0])]
        joined = bars[0]
        for b in bars[1:]:
            joined = Node("+", (joined, b))
        return Node("paren", (joined,))
    if node.op in ("+", "-"):
        return _join([(op, expand_double_verts(n)) for op, n in chain(node)])
    if node.args and node.op != "call":
        return replace(node, args=tuple(expand_double_verts(a) for a in node.args))
    return node


def _expand_slash(node: Node) -> list[Node]:
    """Grouping expressions: ``a/b`` -> [``b:a``, ``a``]; ``a/b/c`` -> [``c:(b:a)``, ``b:a``, ``a``]."""
    if node.op == "paren":
        return _expand_slash(node.args[0])
    if node.op == "/":
        outer = _expand_slash(node.args[0])
        inner = node.args[1]
        _check_group(inner)
        first = outer[0]
        wrapped = Node("paren", (first,)) if first.op != "name" else first
        return [Node(":", (inner, wrapped))] + outer
    _check_group(node)
    return [node]


def _check_group(node: Node) -> None:
    if node.op == "name":
        return
    if node.op in (":", "paren"):
        for a in node.args:
            _check_group(a)
        return
    raise FormulaError(
        f"invalid grouping factor '{deparse(node)}': use a variable name, an interaction a:b or nesting a/b"
    )


# ---------------------------------------------------------------- update(fm, . ~ . - x)
def update_formula(old: str, new: str) -> str:
    """R's ``update.formula``: ``.`` on the left stands for the old response, on the right for
    the old right-hand side; the result is simplified as ``terms.formula(simplify = TRUE)``
    writes it (terms expanded, removed terms dropped), random-effects terms kept as written.
    ``update_formula("y ~ a + b + (1 | g)", ". ~ . - b")`` is ``"y ~ a + (1 | g)"``."""
    old_tree, new_tree = parse(old), parse(new)
    if old_tree.op != "~" or new_tree.op not in ("~", "u~"):
        raise FormulaError(f"cannot update {old!r} with {new!r}: both need a '~'")
    old_lhs, old_rhs = old_tree.args
    new_lhs, new_rhs = new_tree.args if new_tree.op == "~" else (name("."), new_tree.args[0])
    lhs = re.sub(r"(?<![\w.])\.(?![\w.])", deparse(old_lhs), deparse(new_lhs))
    parts: list[tuple[str, Node]] = []
    for sign, part in _top_level(new_rhs):
        if _is_dot(part):
            parts += [(s if sign == "+" else ("-" if s == "+" else "+"), p) for s, p in _top_level(old_rhs)]
        else:
            parts.append((sign, part))
    fixed = [(s, p) for s, p in parts if not _is_bar(p)]
    bars: list[str] = []
    for sign, part in parts:
        if _is_bar(part):
            text = deparse(part)
            if sign == "+" and text not in bars:
                bars.append(text)
            elif sign == "-" and text in bars:
                bars.remove(text)
    t = expand_terms(_join(fixed))
    terms = t.labels + [v.label for v in t.offsets] + bars
    head = [] if t.intercept else ["0"]
    rhs = " + ".join(head + terms) if head + terms else "1"
    return f"{lhs} ~ {rhs}"


def _is_dot(node: Node) -> bool:
    return node.op == "name" and node.text == "."


def _is_bar(node: Node) -> bool:
    return node.op == "paren" and node.args[0].op in ("|", "||")


# ---------------------------------------------------------------- y ~ . + (1 | g)
def expand_dot(pf: ParsedFormula, columns) -> ParsedFormula:
    """R's ``.`` in the fixed part, as lme4 1.1-31 reads it: every column of the data except the
    ones the response reads, the grouping columns included (write ``. - g`` to leave one out),
    in the order of lme4's model frame (the formula's variables in order of appearance, ``.``
    standing for the data's columns). lme4 expands ``.`` over that model frame, whose columns
    include every expression of the formula (``log(y)``, ``I(x^2)``) as variables of their own;
    pylme refuses ``.`` beside an expression rather than make a transformed response a predictor
    of itself. ``.`` inside a function call is not expanded (as R)."""
    if pf.fixed is None or not any(_is_dot(n) for n in _formula_nodes(pf.fixed)):
        return pf
    _check_dot_alone(pf)
    response = set(variables(pf.response)) if pf.response is not None else set()
    data_columns = [c for c in columns if isinstance(c, str) and c not in response]
    if not data_columns:
        raise FormulaError(f"'.' in {pf.text!r} stands for the data's columns other than the response; there are none")
    first = _substitute_dot(pf.fixed, _sum_of(data_columns))
    frame_order = variables(first) + [v for bar in pf.bars for v in variables(bar.lhs) + bar.group_vars]
    dot = _sum_of([c for c in dict.fromkeys(frame_order) if c not in response and c in data_columns])
    return replace(pf, fixed=_substitute_dot(pf.fixed, dot))


def _sum_of(columns: list[str]) -> Node:
    return Node("paren", (_join([("+", name(c)) for c in columns]),))


def _check_dot_alone(pf: ParsedFormula) -> None:
    """``.`` only in formulas whose variables are all columns (see expand_dot)."""
    nodes = [pf.response] if pf.response is not None else []
    nodes += [n for n in _formula_nodes(pf.fixed) if n.op not in _FORMULA_OPS]
    for bar in pf.bars:
        terms = expand_terms(bar.lhs)
        nodes += [v.node for v in terms.variables + terms.offsets]
    for node in nodes:
        if node.op != "name":
            raise FormulaError(
                f"'.' beside the expression '{deparse(node)}' in {pf.text!r}: lme4 expands '.' over its model frame, "
                "whose columns include each expression as a variable of its own (a transformed response becomes a "
                "predictor of itself); write the columns out instead of '.'")


def _formula_nodes(node: Node):
    """The nodes reached through formula operators only (not inside calls)."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        if n.op != "call":
            stack.extend(n.args)


def _substitute_dot(node: Node, dot: Node) -> Node:
    if _is_dot(node):
        return dot
    if node.op in ("+", "-"):
        return _join([(op, _substitute_dot(n, dot)) for op, n in chain(node)])
    if node.args and node.op != "call":
        return replace(node, args=tuple(_substitute_dot(a, dot) for a in node.args))
    return node
