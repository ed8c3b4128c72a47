"""R's expression syntax, as far as model formulas use it: tokens, a parser to a syntax tree,
and R's ``deparse`` of the tree (the labels R gives terms and columns).

The grammar is R's, with R's operator precedence (``?Syntax``), lowest first::

    ~                       formula (binary and unary)
    |  ||                   or; a random-effects bar inside parentheses
    &  &&                   and
    !                       not (unary)
    == != < > <= >=         comparison
    +  -                    (binary)
    *  /
    %%  %/%  %in%  %any%    special operators
    :                       interaction; sequence
    +  -                    (unary)
    ^  (also written **)    power, right-associative

Operands are numbers (``2``, ``1.5e3``, ``2L``), strings (``"a"``, ``'a'``), names (``Days``,
``my.var``, or any text in backticks, ```my col```), parentheses and calls
``f(arg, name = arg)``. Anything else (``$``, ``[``, ``{``, ``;``, ``<-``, ``::``, ``@``) is a
FormulaError. The tree is plain data: nothing here evaluates it (see pylme.description.evaluate).
A ``+``/``-`` chain is walked in a loop, so a formula may have any number of terms; other
nesting is limited to ``MAX_DEPTH`` levels.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import FormulaError
from ..rbase.printing import format_number

#: levels of parentheses, calls and operators a formula may nest (a ``+``/``-`` chain is one level)
MAX_DEPTH = 100

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<num>0[xX][0-9a-fA-F]+L?|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?L?)
    | (?P<name>(?:[^\W\d_]|\.(?!\d))[\w.]*|`[^`]*`)
    | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<op>%[^%\s]*%|\|\||&&|==|!=|<=|>=|<-|<<-|->|\*\*|::|[~+\-*/:^|&!<>(),=\[\]${}@;?])
    )""",
    re.VERBOSE,
)
#: R's reserved constants; T, F and pi are names (a data column of that name comes first)
CONSTANTS = {"TRUE", "FALSE", "NULL", "NA", "Inf", "NaN", "NA_real_", "NA_integer_", "NA_character_"}
_PYTHON_WORDS = {"and": "&", "or": "|", "not": "!", "is": "==", "in": "%in%"}


@dataclass(frozen=True)
class Token:
    kind: str  # num, name, str, op, end
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    """Split R code into tokens; an unknown character is a FormulaError naming it."""
    tokens, pos = [], 0
    while text[pos:].strip():
        m = _TOKEN.match(text, pos)
        if not m:
            bad = text[pos:].strip()[:10]
            raise FormulaError(f"cannot parse formula {shown(text)!r}: unexpected character at {bad!r}")
        kind = m.lastgroup
        tokens.append(Token(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def shown(text: str) -> str:
    """Formula text for a message: a long one shortened in the middle."""
    return text if len(text) <= 200 else f"{text[:120]} ... {text[-60:]}"


# ---------------------------------------------------------------- syntax tree
@dataclass(frozen=True, eq=False)
class Node:
    """A syntax node. ``op`` is 'num', 'str', 'const' (TRUE, NA, ...), 'name', 'call', 'arg' (a named argument),
    'paren', a binary operator ('+', '^', '%in%', ...) or a unary one ('u-', 'u!', 'u~').
    ``text`` holds a name, a function or argument name, a string's value, or a number as R
    writes it; ``value`` a number's value. Nodes compare by identity."""

    op: str
    args: tuple = ()
    text: str = ""
    value: float | None = None

    def __str__(self) -> str:
        return deparse(self)


def num(value: float) -> Node:
    """A numeric constant node."""
    return Node("num", text=format_number(value, 15), value=float(value))


def name(text: str) -> Node:
    return Node("name", text=text)


_BINARY = {"~": 1, "|": 2, "||": 2, "&": 3, "&&": 3, "==": 5, "!=": 5, "<": 5, ">": 5, "<=": 5, ">=": 5,
           "+": 6, "-": 6, "*": 7, "/": 7, ":": 9, "^": 11}
_SPECIAL_PREC = 8  # %% %/% %in% and every %any%
_UNARY = {"~": 1, "!": 4, "-": 10, "+": 10}
_UNSUPPORTED = {"$": "'$' (list elements)", "[": "indexing with '['", "{": "braces", ";": "';'",
                "<-": "assignment", "<<-": "assignment", "->": "assignment", "::": "'::'", "@": "'@'",
                "?": "'?'"}


def _binary_prec(tok: Token) -> int | None:
    if tok.kind != "op":
        return None
    if tok.text.startswith("%"):
        return _SPECIAL_PREC
    return _BINARY.get("^" if tok.text == "**" else tok.text)


class _Parser:
    """A precedence-climbing parser; ``depth`` counts open levels (MAX_DEPTH at most)."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, msg: str) -> FormulaError:
        return FormulaError(f"cannot parse formula {shown(self.text)!r}: {msg}")

    def parse(self) -> Node:
        node = self.expr(0)
        tok = self.peek()
        if tok.kind != "end":
            if tok.text == ")":
                raise self.fail("unexpected ')' (unbalanced parentheses)")
            raise self.fail(self._unexpected(tok, node))
        return node

    def _unexpected(self, tok: Token, before: Node) -> str:
        """R's 'unexpected symbol', with the likely cause."""
        if tok.kind == "op":
            what = _UNSUPPORTED.get(tok.text)
            return f"{what} is not supported in a model formula" if what else f"unexpected {tok.text!r}"
        if tok.kind == "name" and tok.text in _PYTHON_WORDS:
            return (f"unexpected {tok.text!r} after '{deparse(_last_operand(before))}': '{tok.text}' is Python, "
                    f"not R; in a formula write {_PYTHON_WORDS[tok.text]!r}")
        return (f"unexpected {tok.text!r} after '{deparse(_last_operand(before))}': an operator is missing "
                "(terms are joined by +, *, : or /; a random-effects term is written (x | g))")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"formula too deeply nested (more than {MAX_DEPTH} levels of parentheses, calls "
                            "or operators)")

    def expr(self, min_prec: int) -> Node:
        """Operands joined by operators of precedence ``min_prec`` or higher; each operator other
        than + and - nests one level deeper (its tree is walked by recursion)."""
        self.enter()
        opened = 1
        left = self.unary()
        while True:
            tok = self.peek()
            prec = _binary_prec(tok)
            if prec is None or prec < min_prec:
                self.depth -= opened
                return left
            self.take()
            op = "^" if tok.text == "**" else tok.text
            if op not in ("+", "-"):
                self.enter()
                opened += 1
            left = Node(op, (left, self.expr(prec if op == "^" else prec + 1)))

    def unary(self) -> Node:
        tok = self.peek()
        if tok.kind == "op" and tok.text in _UNARY:
            self.take()
            self.enter()
            node = Node("u" + tok.text, (self.expr(_UNARY[tok.text]),))
            self.depth -= 1
            return node
        return self.primary()

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            return _number(tok.text)
        if tok.kind == "str":
            return Node("str", text=_unquote(tok.text))
        if tok.kind == "name" and tok.text in CONSTANTS:
            return Node("const", text=tok.text)
        if tok.kind == "name":
            text = tok.text[1:-1] if tok.text.startswith("`") else tok.text
            if not text:
                raise self.fail("a zero-length name (``) is not allowed")
            return self.call(text) if self.peek().text == "(" else name(text)
        if tok.text == "(":
            inner = self.expr(0)
            self.close(inner)
            return Node("paren", (inner,))
        if tok.kind == "end":
            raise self.fail("unexpected end of formula" + (" (unbalanced parentheses)" if "(" in self.text else ""))
        raise self.fail(self._unexpected(tok, Node("name", text="")) if tok.text in _UNSUPPORTED
                        else f"unexpected {tok.text!r}")

    def close(self, inner: Node) -> None:
        tok = self.take()
        if tok.text != ")":
            raise self.fail("unbalanced parentheses" if tok.kind == "end" else self._unexpected(tok, inner))

    def call(self, fname: str) -> Node:
        """``f(a, name = b)``: the arguments in order, named ones as 'arg' nodes."""
        self.take()
        self.enter()
        args: list[Node] = []
        while self.peek().text != ")":
            args.append(self.argument())
            if self.peek().text == ",":
                self.take()
            elif self.peek().text != ")":
                if self.peek().kind == "end":
                    raise self.fail(f"unbalanced parentheses in {fname}(...)")
                raise self.fail(self._unexpected(self.peek(), args[-1]))
        self.take()
        self.depth -= 1
        return Node("call", tuple(args), text=fname)

    def argument(self) -> Node:
        tok = self.peek()
        nxt = self.tokens[self.i + 1] if tok.kind != "end" else tok
        if tok.kind in ("name", "str") and nxt.text == "=":
            self.i += 2
            key = tok.text.strip("`") if tok.kind == "name" else _unquote(tok.text)
            return Node("arg", (self.expr(0),), text=key)
        if tok.text in (",", ")"):
            raise self.fail("an empty argument is not allowed")
        return self.expr(0)


def _last_operand(node: Node) -> Node:
    while node.op in _BINARY or node.op.startswith("%") or node.op.startswith("u"):
        node = node.args[-1]
    return node


def _number(text: str) -> Node:
    """A numeric literal: its value, and its text as R deparses it (``1.50`` -> ``1.5``, ``1e5`` ->
    ``1e+05``, ``2L`` stays ``2L``)."""
    integer = text.endswith("L")
    body = text[:-1] if integer else text
    value = float(int(body, 16)) if body[:2].lower() == "0x" else float(body)
    if integer and value.is_integer() and abs(value) < 2**31:
        return Node("num", text=f"{int(value)}L", value=value)
    return num(value)


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", "0": "\0"}


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def parse(text: str) -> Node:
    """Parse R code (a formula, a right-hand side, an expression) into a syntax tree."""
    if not isinstance(text, str) or not text.strip():
        raise FormulaError("the formula must be a non-empty string such as 'y ~ x + (1 | g)'")
    return _Parser(text).parse()


# ---------------------------------------------------------------- walking the tree
def chain(node: Node, ops: tuple[str, ...] = ("+", "-")) -> list[tuple[str, Node]]:
    """The operands of a left-to-right chain of ``ops`` with the operator before each (the first
    gets '+'), walked in a loop: ``a + b - c`` -> [('+', a), ('+', b), ('-', c)]."""
    out: list[tuple[str, Node]] = []
    while node.op in ops:
        out.append((node.op, node.args[1]))
        node = node.args[0]
    out.append(("+", node))
    return out[::-1]


def walk(node: Node) -> Iterator[Node]:
    """Every node of the tree, parents before children, left to right (no recursion)."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.args))


def variables(node: Node) -> list[str]:
    """The names an expression reads (not function or argument names), in order of appearance."""
    return list(dict.fromkeys(n.text for n in walk(node) if n.op == "name"))


# ---------------------------------------------------------------- deparsing
_RESERVED = {"if", "else", "repeat", "while", "function", "for", "next", "break", "TRUE", "FALSE", "NULL",
             "Inf", "NaN", "NA", "NA_integer_", "NA_real_", "NA_character_", "in"}
_SYNTACTIC = re.compile(r"^(?:(?:[^\W\d_]|\.(?![\d]))[\w.]*|\.)$")
_TIGHT = {"^", ":", "/", "%%", "%/%"}  # written without spaces, as R's deparse does


def r_name(text: str) -> str:
    """A name as R deparses it: backticked unless syntactic."""
    return text if _SYNTACTIC.match(text) and text not in _RESERVED else f"`{text}`"


def _quote(text: str) -> str:
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{body}"'


def deparse(node: Node) -> str:
    """The R label of a syntax node, as ``deparse`` writes it."""
    op = node.op
    if op in ("num", "const"):
        return node.text
    if op == "str":
        return _quote(node.text)
    if op == "name":
        return r_name(node.text)
    if op == "call":
        return f"{r_name(node.text)}({', '.join(deparse(a) for a in node.args)})"
    if op == "arg":
        return f"{r_name(node.text)} = {deparse(node.args[0])}"
    if op == "paren":
        return f"({deparse(node.args[0])})"
    if op.startswith("u"):
        return f"{op[1:]}{deparse(node.args[0])}"
    if op in ("+", "-"):
        parts = chain(node)
        return deparse(parts[0][1]) + "".join(f" {o} {deparse(n)}" for o, n in parts[1:])
    left, right = (deparse(a) for a in node.args)
    return f"{left}{op}{right}" if op in _TIGHT else f"{left} {op} {right}"
