"""Parser and evaluator for the ``where=`` filter language of DCImanager 6 lists.

Grammar (keywords are case-insensitive)::

    expr       := and_expr ("OR" and_expr)*
    and_expr   := not_expr ("AND" not_expr)*
    not_expr   := "NOT" not_expr | "(" expr ")" | comparison
    comparison := FIELD ("EQ" | "NE") literal
                | FIELD "CP" STRING
                | FIELD "IS" ["NOT"] "null"
    literal    := STRING | NUMBER | "true" | "false"

Strings are single-quoted; a quote inside one is written twice (``'O''Brien'``).
``CP`` is SQL ``LIKE``: ``%`` matches any run of characters, ``_`` exactly one,
compared case-insensitively as MySQL's default collation does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

Literal = str | int | float | bool


class WhereError(ValueError):
    """The expression cannot be parsed, or names a field the list does not have."""


class TokenKind(Enum):
    WORD = "word"
    STRING = "string"
    NUMBER = "number"
    LPAREN = "("
    RPAREN = ")"
    END = "end"


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str
    position: int


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?![A-Za-z0-9_])")


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(source):
        char = source[pos]
        if char.isspace():
            pos += 1
        elif char in "()":
            tokens.append(Token(TokenKind(char), char, pos))
            pos += 1
        elif char == "'":
            text, pos = _read_string(source, pos)
            tokens.append(Token(TokenKind.STRING, text, pos))
        elif number := _NUMBER.match(source, pos):
            tokens.append(Token(TokenKind.NUMBER, number.group(), pos))
            pos = number.end()
        elif word := _WORD.match(source, pos):
            tokens.append(Token(TokenKind.WORD, word.group(), pos))
            pos = word.end()
        else:
            raise WhereError(f"unexpected character {char!r} at position {pos}")
    tokens.append(Token(TokenKind.END, "", len(source)))
    return tokens


def _read_string(source: str, start: int) -> tuple[str, int]:
    chars: list[str] = []
    pos = start + 1
    while pos < len(source):
        if source[pos] == "'":
            if source.startswith("''", pos):
                chars.append("'")
                pos += 2
                continue
            return "".join(chars), pos + 1
        chars.append(source[pos])
        pos += 1
    raise WhereError(f"unterminated string starting at position {start}")


class Op(Enum):
    EQ = "EQ"
    NE = "NE"
    CP = "CP"


@dataclass(frozen=True, slots=True)
class Compare:
    field: str
    op: Op
    value: Literal


@dataclass(frozen=True, slots=True)
class IsNull:
    field: str
    negated: bool


@dataclass(frozen=True, slots=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Or:
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


Node = Compare | IsNull | And | Or | Not


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self._tokens = tokens
        self._index = 0

    def parse(self) -> Node:
        node = self._or()
        if self._peek().kind is not TokenKind.END:
            raise self._unexpected()
        return node

    def _peek(self) -> Token:
        return self._tokens[self._index]

    def _next(self) -> Token:
        token = self._tokens[self._index]
        if token.kind is not TokenKind.END:
            self._index += 1
        return token

    def _at_keyword(self, keyword: str) -> bool:
        token = self._peek()
        return token.kind is TokenKind.WORD and token.text.upper() == keyword

    def _expect_keyword(self, keyword: str) -> None:
        if not self._at_keyword(keyword):
            raise self._unexpected(expected=keyword)
        self._next()

    def _unexpected(self, expected: str | None = None) -> WhereError:
        token = self._peek()
        found = "end of expression" if token.kind is TokenKind.END else repr(token.text)
        wanted = f", expected {expected}" if expected else ""
        return WhereError(f"unexpected {found} at position {token.position}{wanted}")

    def _or(self) -> Node:
        node = self._and()
        while self._at_keyword("OR"):
            self._next()
            node = Or(node, self._and())
        return node

    def _and(self) -> Node:
        node = self._not()
        while self._at_keyword("AND"):
            self._next()
            node = And(node, self._not())
        return node

    def _not(self) -> Node:
        if self._at_keyword("NOT"):
            self._next()
            return Not(self._not())
        if self._peek().kind is TokenKind.LPAREN:
            self._next()
            node = self._or()
            if self._peek().kind is not TokenKind.RPAREN:
                raise self._unexpected(expected="')'")
            self._next()
            return node
        return self._comparison()

    def _comparison(self) -> Node:
        token = self._peek()
        if token.kind is not TokenKind.WORD or token.text.upper() in _RESERVED:
            raise self._unexpected(expected="a field name")
        field = self._next().text
        operator = self._peek()
        keyword = operator.text.upper() if operator.kind is TokenKind.WORD else ""
        if keyword == "IS":
            self._next()
            negated = self._at_keyword("NOT")
            if negated:
                self._next()
            self._expect_keyword("NULL")
            return IsNull(field, negated)
        if keyword in ("EQ", "NE"):
            self._next()
            return Compare(field, Op(keyword), self._literal())
        if keyword == "CP":
            self._next()
            if self._peek().kind is not TokenKind.STRING:
                raise self._unexpected(expected="a quoted pattern")
            return Compare(field, Op.CP, self._next().text)
        raise self._unexpected(expected="EQ, NE, CP or IS")

    def _literal(self) -> Literal:
        token = self._peek()
        if token.kind is TokenKind.STRING:
            return self._next().text
        if token.kind is TokenKind.NUMBER:
            text = self._next().text
            return float(text) if "." in text else int(text)
        if token.kind is TokenKind.WORD and token.text.lower() in ("true", "false"):
            return self._next().text.lower() == "true"
        raise self._unexpected(expected="a value")


_RESERVED = frozenset({"AND", "OR", "NOT", "EQ", "NE", "CP", "IS", "NULL"})


def parse(source: str) -> Node:
    """Parse ``source`` into an expression tree, or raise :class:`WhereError`."""
    return _Parser(tokenize(source)).parse()


def fields_of(node: Node) -> set[str]:
    match node:
        case Compare(field=field) | IsNull(field=field):
            return {field}
        case And(left, right) | Or(left, right):
            return fields_of(left) | fields_of(right)
        case Not(operand):
            return fields_of(operand)


def equality_keys(node: Node, field: str) -> set[str] | None:
    """What ``node`` can match ``field`` against, when it is only ``field EQ value``
    terms joined by OR (a lookup by key, which an index answers); None otherwise."""
    match node:
        case Compare(name, Op.EQ, value) if name == field:
            return {str(_normalise(value))}
        case Or(left, right):
            keys = equality_keys(left, field)
            more = equality_keys(right, field)
            return None if keys is None or more is None else keys | more
        case _:
            return None


def evaluate(node: Node, row: Mapping[str, object]) -> bool:
    match node:
        case IsNull(field, negated):
            return (row.get(field) is None) != negated
        case Compare(field, op, value):
            return _compare(row.get(field), op, value)
        case And(left, right):
            return evaluate(left, row) and evaluate(right, row)
        case Or(left, right):
            return evaluate(left, row) or evaluate(right, row)
        case Not(operand):
            return not evaluate(operand, row)


def _compare(actual: object, op: Op, expected: Literal) -> bool:
    if op is Op.CP:
        return actual is not None and _like(str(expected)).fullmatch(str(actual)) is not None
    # SQL semantics: a comparison with NULL is never true, whichever operator.
    if actual is None:
        return False
    equal = _normalise(actual) == _normalise(expected)
    return equal if op is Op.EQ else not equal


def _normalise(value: object) -> object:
    # Field types are not declared, so "server EQ 5" and "server EQ '5'" must agree
    # whether the stored value is the number or its text, as they do in MySQL.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _like(pattern: str) -> re.Pattern[str]:
    translated = "".join(
        ".*" if char == "%" else "." if char == "_" else re.escape(char) for char in pattern
    )
    return re.compile(translated, re.IGNORECASE | re.DOTALL)
