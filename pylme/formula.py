"""R model formulas: parsing, term expansion, and lme4's bar-term handling.

The parser reads an R formula (``y ~ x + (x | g)``) into a small syntax tree, and
gives back what lme4's ``findbars``/``nobars``/``expandDoubleVerts`` give: the
fixed-effects terms in R's order (``terms.formula``) and the random-effects bar
terms, with ``||`` split into uncorrelated terms and ``a/b`` grouping expanded to
``b:a`` and ``a``. Expressions inside function calls (``I(x^2)``, ``log(z)``,
``poly(x, 2)``) are kept as text, labelled as R deparses them, and translated to
Python for evaluation.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from .errors import FormulaError

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)
    | (?P<name>[A-Za-z.][A-Za-z0-9._]*|`[^`]+`)
    | (?P<str>"[^"]*"|'[^']*')
    | (?P<op>\|\||%in%|==|!=|<=|>=|&&|\*\*|[~+\-*/:^|(),<>!&=\[\]])
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # num, name, str, op, end
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    """Split formula text into tokens; an unknown character is a FormulaError."""
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FormulaError(f"cannot parse formula {text!r}: unexpected character at {text[pos:].strip()[:10]!r}")
        kind = m.lastgroup
        tokens.append(Token(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


# ---------------------------------------------------------------- syntax tree
@dataclass(frozen=True)
class Node:
    """A formula syntax node: op is 'name', 'num', 'call', 'paren', a binary or unary operator."""

    op: str
    args: tuple = ()
    text: str = ""  # names, numbers, function names
    raw: str = ""  # call arguments as written

    def __str__(self) -> str:
        return deparse(self)


_BINARY_PREC = {"~": 1, "|": 2, "||": 2, "+": 4, "-": 4, "*": 5, "/": 5, ":": 7, "%in%": 6, "^": 9}
_RIGHT_ASSOC = {"^"}
_UNARY_PREC = 8


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, msg: str) -> FormulaError:
        return FormulaError(f"cannot parse formula {self.text!r}: {msg}")

    def parse(self) -> Node:
        node = self.expr(0)
        if self.peek().kind != "end":
            tok = self.peek()
            if tok.text == ")":
                raise self.fail("unexpected ')' (unbalanced parentheses)")
            raise self.fail(self._missing_operator(tok, node))
        return node

    def _missing_operator(self, tok: Token, before: Node) -> str:
        """R's 'unexpected symbol', with the likely cause: two terms with no operator between."""
        while before.op in _BINARY_PREC or before.op in ("u~", "u+", "u-"):
            before = before.args[-1]
        return (f"unexpected {tok.text!r} after '{deparse(before)}': an operator is missing "
                "(terms are joined by +, *, : or /; a random-effects term is written (x | g))")

    def expr(self, min_prec: int) -> Node:
        left = self.unary()
        while True:
            tok = self.peek()
            prec = _BINARY_PREC.get(tok.text) if tok.kind == "op" else None
            if prec is None or prec < min_prec:
                return left
            self.take()
            next_min = prec if tok.text in _RIGHT_ASSOC else prec + 1
            left = Node(tok.text, (left, self.expr(next_min)))

    def unary(self) -> Node:
        tok = self.peek()
        if tok.kind == "op" and tok.text in "+-~" and tok.text:
            self.take()
            prec = 1 if tok.text == "~" else _UNARY_PREC
            return Node("u" + tok.text, (self.expr(prec),))
        return self.primary()

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            return Node("num", text=tok.text)
        if tok.kind == "name":
            if self.peek().text == "(":
                return self.call(tok)
            return Node("name", text=tok.text.strip("`"))
        if tok.text == "(":
            inner = self.expr(0)
            close = self.take()
            if close.text != ")":
                raise self.fail("unbalanced parentheses" if close.kind == "end" else self._missing_operator(close, inner))
            return Node("paren", (inner,))
        if tok.kind == "end":
            raise self.fail("unexpected end of formula" + (" (unbalanced parentheses)" if "(" in self.text else ""))
        raise self.fail(f"unexpected {tok.text!r}")

    def call(self, fname: Token) -> Node:
        """A function call: keep its argument text; parse the arguments for their variables."""
        open_tok = self.take()
        depth, start = 1, open_tok.pos + 1
        while depth:
            tok = self.take()
            if tok.kind == "end":
                raise self.fail(f"unbalanced parentheses in {fname.text}(...)")
            depth += {"(": 1, ")": -1}.get(tok.text, 0)
        raw = self.text[start : tok.pos]
        return Node("call", text=fname.text, raw=raw)


def parse(text: str) -> Node:
    """Parse an R formula (or a right-hand side) into a syntax tree."""
    if not isinstance(text, str) or not text.strip():
        raise FormulaError("the formula must be a non-empty string such as 'y ~ x + (1 | g)'")
    return _Parser(text).parse()


# ---------------------------------------------------------------- deparsing
_SPACED = {"~", "+", "-", "*", "|", "||", "==", "!=", "<", ">", "<=", ">=", "&", "&&", "%in%", "=", "**"}


def deparse_text(text: str) -> str:
    """Re-space an expression as R's deparse does: spaces around + - * / etc., none around ^ and :."""
    out: list[str] = []
    prev: Token | None = None
    for tok in tokenize(text)[:-1]:
        t = "^" if tok.text == "**" else tok.text
        binary = tok.kind == "op" and t in _SPACED and prev is not None and (
            prev.kind in ("num", "name", "str") or prev.text in (")", "]")
        )
        if binary:
            out.append(f" {t} ")
        elif t == ",":
            out.append(", ")
        else:
            out.append(t)
        prev = tok
    return "".join(out).strip()


def deparse(node: Node) -> str:
    """The R label of a syntax node (as ``deparse`` prints it)."""
    if node.op in ("name", "num"):
        return node.text
    if node.op == "call":
        return f"{node.text}({deparse_text(node.raw)})"
    if node.op == "paren":
        return f"({deparse(node.args[0])})"
    if node.op.startswith("u"):
        return f"{node.op[1:]}{deparse(node.args[0])}"
    left, right = (deparse(a) for a in node.args)
    if node.op in (":", "^", "/"):
        return f"{left}{node.op}{right}"
    return f"{left} {node.op} {right}"


_R_TO_PY = {"^": "**", "TRUE": "True", "FALSE": "False", "&&": "and", "&": "&", "!": "~"}


def to_python(text: str) -> str:
    """Translate an R expression to a Python one formulaic can evaluate (``x^2`` -> ``x**2``),
    keeping the spacing as written."""
    out, last = [], 0
    for tok in tokenize(text)[:-1]:
        out.append(text[last : tok.pos])
        out.append(_R_TO_PY.get(tok.text, tok.text) if tok.kind in ("op", "name") else tok.text)
        last = tok.pos + len(tok.text)
    out.append(text[last:])
    return "".join(out)


def names_in(text: str) -> list[str]:
    """Identifiers appearing in an expression (candidate data columns), in order."""
    seen: list[str] = []
    toks = tokenize(text)
    for tok, nxt in zip(toks, toks[1:]):
        name = tok.text.strip("`")
        if tok.kind == "name" and nxt.text not in ("(", "=") and name not in _R_CONSTANTS and name not in seen:
            seen.append(name)
    return seen


_R_CONSTANTS = {"TRUE", "FALSE", "T", "F", "NA", "NULL", "Inf", "NaN", "pi"}


# ---------------------------------------------------------------- terms
@dataclass(frozen=True)
class Variable:
    """One variable of a model term: a column name or an expression such as ``I(x^2)``."""

    label: str  # R's label
    node: Node = field(compare=False, hash=False)

    @property
    def text(self) -> str:
        """The expression as written (R syntax) for evaluation."""
        return self.node.text if self.node.op == "name" else f"{self.node.text}({self.node.raw})"

    @property
    def data_names(self) -> list[str]:
        return [self.node.text] if self.node.op == "name" else names_in(self.node.raw)


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
        if op == "num":
            if node.text in ("0", "1"):
                return [], node.text == "1"
            raise FormulaError(f"invalid model term {node.text!r}: only 0 and 1 may appear as numbers")
        if op == "name":
            return [self.var(node)], None
        if op == "call":
            if node.text == "offset":
                self.offsets.append(Variable(deparse(node), node))
                return [], None
            return [self.var(node)], None
        if op == "paren":
            return self.expand(node.args[0])
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
        if op == "~":
            raise FormulaError(f"misplaced '~' in '{deparse(node)}'")
        left, li = self.expand(node.args[0])
        right, ri = self.expand(node.args[1]) if op != "^" else ([], None)
        if op == "+":
            return _unique(left + right), _merge_icpt(li, ri)
        if op == "-":
            drop = set(right)
            return [t for t in left if t not in drop], li if ri is None else not ri
        if op == ":":
            return _interact(left, right), li
        if op == "*":
            return _unique(left + right + _interact(left, right)), li
        if op in ("/", "%in%"):
            whole = frozenset().union(*left) if left else frozenset()
            return _unique(left + [whole | t for t in right]), li
        if op == "^":
            power = node.args[1]
            if power.op != "num" or not power.text.isdigit():
                raise FormulaError(f"invalid power in '{deparse(node)}': use a positive whole number")
            out = list(left)
            for _ in range(int(power.text) - 1):
                out = _unique(out + _interact(out, left))
            return out, li
        raise FormulaError(f"unsupported operator {op!r} in '{deparse(node)}'")


def _merge_icpt(a: bool | None, b: bool | None) -> bool | None:
    """In ``a + b`` a later 0 or 1 overrides an earlier one."""
    return a if b is None else b


def _unique(terms: list[frozenset[str]]) -> list[frozenset[str]]:
    out: list[frozenset[str]] = []
    for t in terms:
        if t not in out:
            out.append(t)
    return out


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
        return names_in(self.group)

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
    if node.op in ("+", "-"):
        left = _top_level(node.args[0], sign)
        right_sign = node.op if sign == "+" else ("+" if node.op == "-" else "-")
        return left + _top_level(node.args[1], right_sign)
    if node.op == "u-":
        return [("-", node.args[0])]
    return [(sign, node)]


def _join(parts: list[tuple[str, Node]]) -> Node | None:
    node: Node | None = None
    for sign, part in parts:
        if node is None:
            node = part if sign == "+" else Node("u-", (part,))
        else:
            node = Node(sign, (node, part))
    return node


def _check_no_bars(node: Node) -> None:
    if node.op in ("|", "||"):
        raise FormulaError(f"random-effects term '{deparse(node)}' must be a top-level term in parentheses")
    for a in node.args:
        _check_no_bars(a)


def _expand_bar(bar: Node) -> list[BarTerm]:
    """lme4's expandDoubleVerts and slash expansion for one ``(lhs | g)`` or ``(lhs || g)``."""
    lhs, grp = bar.args
    groups = _expand_slash(grp)
    if bar.op == "|":
        lhss = [lhs]
    else:
        t = expand_terms(lhs)
        lhss = [Node("num", text="1")] if t.intercept else []
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
    if node.args and node.op not in ("name", "num", "call"):
        return Node(node.op, tuple(expand_double_verts(a) for a in node.args), node.text, node.raw)
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
    new_lhs, new_rhs = new_tree.args if new_tree.op == "~" else (Node("name", text="."), new_tree.args[0])
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
