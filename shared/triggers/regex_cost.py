"""Static cost of a ``$regex`` pattern, from a scanner of Python ``re`` syntax of our own.

:func:`regex_cost` returns ``(degree, branching)``: *degree* counts the unbounded (or wide,
more than ``narrow_range`` apart) quantifiers, each of which multiplies the worst-case
backtracking of Python's engine by the input length; *branching* is the product of the widths
of narrow ranges (``{1,3}`` counts 3) and of alternations (``a|bc`` counts 2), a constant
factor.  Patterns whose search time cannot be bounded that way are refused with
:class:`RegexTooCostly`: backreferences (``\\1``, ``(?P=name)``, ``(?(1)a|b)``), quantifiers or
alternations inside a variable-length quantifier (``(a+)+``, ``(a|ab)*``), more than
``max_degree`` unbounded quantifiers, a branching over ``max_branching``.

The scanner reads the pattern the way the standard library's parser does (one token is a
character or a backslash and the next character) and builds the same tree, including the
parser's rewrites that change a cost: ``(?:...)`` groups are unpacked into the enclosing
sequence, a common leading atom of all alternatives is moved out of the alternation, and an
alternation of single characters or classes (``a|b|[cd]|\\d``) becomes one character class.

Supported: literals and escapes (``\\d \\D \\s \\S \\w \\W \\b \\B \\A \\Z``, ``\\a \\f \\n \\r \\t
\\v``, ``\\xhh``, ``\\uhhhh``, ``\\Uhhhhhhhh``, ``\\N{name}``, octal, escaped punctuation),
classes ``[...]`` (negation, ranges, escapes, ``]`` first, ``[`` inside as a literal), ``.``,
``^``, ``$``, groups ``( )``, ``(?: )``, ``(?P<name> )``, lookarounds ``(?= ) (?! ) (?<= ) (?<! )``,
atomic groups ``(?> )``, comments ``(?# )``, inline flags ``(?aiLmsu)`` and ``(?aiLmsu-imsx: )``,
alternation, quantifiers ``* + ? {n} {n,} {,m} {n,m}`` with the lazy ``?`` and possessive ``+``
suffixes, and ``{`` as a literal where it does not make a quantifier (``a{``, ``a{1,2``,
``{}``, ``a{x}``).  Verbose mode (``x``), the template flag (``t``), unknown escapes and
anything else the scanner does not recognise are refused with :class:`RegexUnsupported`.

Call it only on a pattern that ``re.compile`` accepts: the scanner does not repeat all of the
compiler's checks (when it notices a malformed pattern it refuses it as unsupported).  Nesting
is analysed recursively, so a pattern nested thousands of levels deep may raise
:class:`RecursionError`, as compiling it does.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RegexTooCostly", "RegexUnsupported", "regex_cost"]


class RegexTooCostly(Exception):
    """The pattern is refused; the message completes the sentence "pattern ..."."""


class RegexUnsupported(RegexTooCostly):
    """The pattern uses syntax the scanner does not analyse (refused to stay safe)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"uses {what}, which is not supported")


_DIGITS = frozenset("0123456789")
_OCTDIGITS = frozenset("01234567")
_HEXDIGITS = frozenset("0123456789abcdefABCDEF")
_ASCII_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_SPECIAL = frozenset(".\\[{()*+?^$|")
_CONTROL = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92}
_CATEGORIES = frozenset("dDsSwW")
_ANCHORS = frozenset("AbBZ")
_FLAGS = frozenset("aiLmsu")
_HEX_LENGTHS = {"x": 2, "u": 4, "U": 8}

# ---------------------------------------------------------------------------
# tree
#
# A unit matches one character or is an anchor; its key stands for the parser's node:
# ("lit", cp), ("notlit", cp), ("in", negated, items), ("any",), ("at", letter), where items
# are ("lit", cp), ("range", lo, hi) and ("cat", letter).  Two units are the same node for
# the parser when their keys are equal; every other node is never equal to another one.

_Key = tuple[Any, ...]


@dataclass(frozen=True)
class _Unit:
    key: _Key


@dataclass(eq=False)
class _Group:
    """Capturing, flagged, atomic or lookaround group: costs as its contents."""

    nodes: list[_Node]
    plain: bool = False  # (?:...) without flags: unpacked into the enclosing sequence


@dataclass(eq=False)
class _Repeat:
    lo: int
    hi: int | None  # None: unbounded
    nodes: list[_Node]


@dataclass(eq=False)
class _Branch:
    alts: list[list[_Node]]


@dataclass(eq=False)
class _Backref:
    """A backreference or a conditional group (refused)."""


_Node = _Unit | _Group | _Repeat | _Branch | _Backref


# ---------------------------------------------------------------------------
# tokens


class _Tokens:
    """The pattern as tokens: one character, or a backslash and the character after it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.index = 0
        self.next: str | None = None
        self._advance()

    def _advance(self) -> None:
        i = self.index
        if i >= len(self.text):
            self.next = None
            return
        token = self.text[i]
        if token == "\\":
            i += 1
            if i >= len(self.text):
                raise RegexUnsupported("a trailing backslash")
            token += self.text[i]
        self.index = i + 1
        self.next = token

    def get(self) -> str | None:
        token = self.next
        self._advance()
        return token

    def match(self, token: str) -> bool:
        if self.next == token:
            self._advance()
            return True
        return False

    def tell(self) -> int:
        return self.index - len(self.next or "")

    def seek(self, index: int) -> None:
        self.index = index
        self._advance()

    def getwhile(self, n: int | None, charset: frozenset[str]) -> str:
        out = ""
        while (n is None or len(out) < n) and self.next is not None and self.next in charset:
            out += self.next
            self._advance()
        return out

    def getuntil(self, terminator: str, what: str) -> str:
        out = ""
        while (token := self.get()) != terminator:
            if token is None:
                raise RegexUnsupported(f"an unterminated {what}")
            out += token
        return out


# ---------------------------------------------------------------------------
# escapes and classes


def _code_escape(src: _Tokens, token: str) -> int | None:
    """Code point of a control, hexadecimal or named escape; None for other escapes."""
    c = token[1]
    if c in _CONTROL:
        return _CONTROL[c]
    if c in _HEX_LENGTHS:
        digits = src.getwhile(_HEX_LENGTHS[c], _HEXDIGITS)
        if len(digits) != _HEX_LENGTHS[c] or int(digits, 16) > 0x10FFFF:
            raise RegexUnsupported(f"the incomplete escape {token}{digits}")
        return int(digits, 16)
    if c == "N":
        if not src.match("{"):
            raise RegexUnsupported("\\N without {name}")
        name = src.getuntil("}", "character name")
        try:
            char = unicodedata.lookup(name)
        except KeyError:
            raise RegexUnsupported(f"the unknown character name {name!r}") from None
        if len(char) != 1:
            raise RegexUnsupported(f"the named sequence {name!r}")
        return ord(char)
    return None


def _octal(token: str, digits: str) -> int:
    value = int(token[1] + digits, 8)
    if value > 0o377:
        raise RegexUnsupported(f"the octal escape {token}{digits} outside 0-0o377")
    return value


def _escape(src: _Tokens, token: str) -> _Node:
    """An escape outside a class."""
    c = token[1]
    if c in _ANCHORS:
        return _Unit(("at", c))
    if c in _CATEGORIES:
        return _Unit(("in", False, (("cat", c),)))
    code = _code_escape(src, token)
    if code is not None:
        return _Unit(("lit", code))
    if c == "0":
        return _Unit(("lit", _octal(token, src.getwhile(2, _OCTDIGITS))))
    if c in _DIGITS:
        # three octal digits make an octal escape; anything else is a group reference
        if src.next is not None and src.next in _DIGITS:
            second = src.get() or ""
            if c in _OCTDIGITS and second in _OCTDIGITS and src.next in _OCTDIGITS:
                return _Unit(("lit", _octal(token, second + (src.get() or ""))))
        return _Backref()
    if c in _ASCII_LETTERS:
        raise RegexUnsupported(f"the escape {token}")
    return _Unit(("lit", ord(c)))


def _class_escape(src: _Tokens, token: str) -> _Key:
    """An escape inside a class, as a class item."""
    c = token[1]
    if c == "b":
        return ("lit", 8)
    if c in _CATEGORIES:
        return ("cat", c)
    code = _code_escape(src, token)
    if code is not None:
        return ("lit", code)
    if c in _OCTDIGITS:
        return ("lit", _octal(token, src.getwhile(2, _OCTDIGITS)))
    if c in _DIGITS or c in _ASCII_LETTERS:
        raise RegexUnsupported(f"the escape {token} in a character class")
    return ("lit", ord(c))


def _class_item(src: _Tokens, token: str | None) -> _Key:
    if token is None:
        raise RegexUnsupported("an unterminated character class")
    return _class_escape(src, token) if token[0] == "\\" else ("lit", ord(token))


def _char_class(src: _Tokens) -> _Unit:
    """``[...]`` after its ``[``."""
    negated = src.match("^")
    items: list[_Key] = []
    while True:
        token = src.get()
        if token == "]" and items:
            break
        first = _class_item(src, token)
        if not src.match("-"):
            items.append(first)
            continue
        if src.next == "]":
            src.get()
            items += [first, ("lit", ord("-"))]
            break
        last = _class_item(src, src.get())
        if first[0] != "lit" or last[0] != "lit" or last[1] < first[1]:
            raise RegexUnsupported("a bad character range")
        items.append(("range", first[1], last[1]))
    unique = tuple(dict.fromkeys(items))
    if len(unique) == 1 and unique[0][0] == "lit":
        return _Unit(("notlit" if negated else "lit", unique[0][1]))
    return _Unit(("in", negated, unique))


# ---------------------------------------------------------------------------
# quantifiers, groups, alternations


def _braces(src: _Tokens) -> tuple[int, int | None] | None:
    """The bounds of ``{n}``, ``{n,}``, ``{,m}``, ``{n,m}`` after its ``{``; None when the
    text is not a quantifier (the ``{`` is then a literal)."""
    if src.next == "}":
        return None
    low = src.getwhile(None, _DIGITS)
    high = src.getwhile(None, _DIGITS) if src.match(",") else low
    if not src.match("}"):
        return None
    lo, hi = int(low or "0"), int(high) if high else None
    if hi is not None and hi < lo:
        raise RegexUnsupported("a quantifier whose minimum exceeds its maximum")
    return lo, hi


def _quantify(src: _Tokens, seq: list[_Node], token: str) -> None:
    """Apply the quantifier ``token`` to the last node of ``seq`` (or add a literal ``{``)."""
    if token == "{":
        here = src.tell()
        bounds = _braces(src)
        if bounds is None:
            seq.append(_Unit(("lit", ord("{"))))
            src.seek(here)
            return
    else:
        bounds = {"?": (0, 1), "*": (0, None), "+": (1, None)}[token]
    last = seq[-1] if seq else None
    if (
        last is None
        or isinstance(last, _Repeat)
        or (isinstance(last, _Unit) and last.key[0] == "at")
    ):
        raise RegexUnsupported("a quantifier with nothing to repeat")
    nodes: list[_Node] = last.nodes if isinstance(last, _Group) and last.plain else [last]
    if not src.match("?"):
        src.match("+")  # lazy and possessive quantifiers cost as greedy ones
    seq[-1] = _Repeat(*bounds, nodes)


def _flags(src: _Tokens, first: str) -> bool:
    """Inline flags after ``(?``; True for a scoped ``(?flags:...)`` group."""
    flags = first
    while (token := src.get()) not in (":", ")"):
        if token is None:
            raise RegexUnsupported("unterminated inline flags")
        flags += token
    add, _, remove = flags.partition("-")
    if "x" in add:  # (?-x:...) only turns off what is never on
        raise RegexUnsupported("verbose mode (?x)")
    if not (set(add) <= _FLAGS and set(remove) <= _FLAGS | {"x"}):
        raise RegexUnsupported(f"the inline flags (?{flags}{token}")
    return token == ":"


def _open_group(src: _Tokens, seq: list[_Node]) -> str | None:
    """Read a group's opening after its ``(``: the kind of group it opens, or None when the
    construct is complete (a comment, global flags, a named backreference)."""
    if not src.match("?"):
        return "capture"
    c = src.get()
    if c == "P":
        if src.match("<"):
            src.getuntil(">", "group name")
            return "capture"
        if src.match("="):
            src.getuntil(")", "group name")
            seq.append(_Backref())
            return None
        raise RegexUnsupported("an unknown (?P extension")
    if c in (":", ">", "=", "!"):
        return {":": "plain", ">": "atomic"}.get(c, "look")
    if c == "<":
        if src.get() in ("=", "!"):
            return "look"
        raise RegexUnsupported("an unknown (?< extension")
    if c == "#":
        src.getuntil(")", "comment")
        return None
    if c == "(":
        src.getuntil(")", "condition")
        return "conditional"
    if c is not None and (c == "-" or c in _ASCII_LETTERS):
        return "flags" if _flags(src, c) else None
    raise RegexUnsupported(f"the unknown group (?{c or ''}")


def _splice(seq: list[_Node]) -> list[_Node]:
    """Unpack ``(?:...)`` groups, as the parser does when a sequence ends."""
    out: list[_Node] = []
    for node in seq:
        if isinstance(node, _Group) and node.plain:
            out += node.nodes
        else:
            out.append(node)
    return out


def _alternation(alts: list[list[_Node]]) -> list[_Node]:
    """The nodes of ``alt1|alt2|...``, with the parser's rewrites."""
    if len(alts) == 1:
        return alts[0]
    out: list[_Node] = []
    # a node that starts every alternative is moved out of the alternation
    while all(alts) and all(isinstance(alt[0], _Unit) and alt[0] == alts[0][0] for alt in alts):
        out.append(alts[0][0])
        alts = [alt[1:] for alt in alts]
    # single characters and non-negated classes: one class
    items: list[_Key] = []
    for alt in alts:
        key = alt[0].key if len(alt) == 1 and isinstance(alt[0], _Unit) else ("",)
        if key[0] == "lit":
            items.append(key)
        elif key[0] == "in" and not key[1]:
            items += key[2]
        else:
            out.append(_Branch(alts))
            return out
    out.append(_Unit(("in", False, tuple(dict.fromkeys(items)))))
    return out


@dataclass
class _Frame:
    kind: str
    alts: list[list[_Node]] = field(default_factory=list)
    seq: list[_Node] = field(default_factory=list)

    def close(self) -> list[_Node]:
        return _alternation([*self.alts, _splice(self.seq)])


def _parse(pattern: str) -> list[_Node]:
    src = _Tokens(pattern)
    stack: list[_Frame] = []
    frame = _Frame("top")
    while (token := src.get()) is not None:
        if token == "|":
            frame.alts.append(_splice(frame.seq))
            frame.seq = []
        elif token == ")":
            if not stack:
                raise RegexUnsupported("an unbalanced parenthesis")
            nodes = frame.close()
            node: _Node = (
                _Backref() if frame.kind == "conditional" else _Group(nodes, frame.kind == "plain")
            )
            frame = stack.pop()
            frame.seq.append(node)
        elif token == "(":
            kind = _open_group(src, frame.seq)
            if kind is not None:
                stack.append(frame)
                frame = _Frame(kind)
        elif token in ("*", "+", "?", "{"):
            _quantify(src, frame.seq, token)
        elif token == "[":
            frame.seq.append(_char_class(src))
        elif token == ".":
            frame.seq.append(_Unit(("any",)))
        elif token in ("^", "$"):
            frame.seq.append(_Unit(("at", token)))
        elif token[0] == "\\":
            frame.seq.append(_escape(src, token))
        elif token not in _SPECIAL:
            frame.seq.append(_Unit(("lit", ord(token))))
        else:  # pragma: no cover - every special character is handled above
            raise RegexUnsupported(f"the character {token!r}")
    if stack:
        raise RegexUnsupported("an unterminated group")
    return frame.close()


# ---------------------------------------------------------------------------
# cost


@dataclass(frozen=True)
class _Limits:
    max_degree: int
    max_branching: int
    narrow_range: int


def _cost(nodes: list[_Node], limits: _Limits) -> tuple[int, int]:
    degree, branching = 0, 1
    for node in nodes:
        if isinstance(node, _Repeat):
            d, b = _cost(node.nodes, limits)
            if node.lo == node.hi:
                degree += d * node.lo
                factor = 1
                for _ in range(node.lo if b > 1 else 0):
                    factor *= b  # b ** lo, computed only as far as the limit
                    if factor > limits.max_branching:
                        break
                branching *= factor
            else:
                if d or b > 1:
                    raise RegexTooCostly(
                        "has a quantifier or alternation inside a variable-length quantifier "
                        "(e.g. (a+)+ or (a|ab)*), which can take exponential time"
                    )
                if node.hi is None or node.hi - node.lo > limits.narrow_range:
                    degree += 1
                else:
                    branching *= node.hi - node.lo + 1
        elif isinstance(node, _Branch):
            costs = [_cost(alt, limits) for alt in node.alts]
            degree += max(d for d, _ in costs)
            branching *= sum(b for _, b in costs)
        elif isinstance(node, _Group):
            d, b = _cost(node.nodes, limits)
            degree, branching = degree + d, branching * b
        elif isinstance(node, _Backref):
            raise RegexTooCostly("uses a backreference, which is not supported")
        if degree > limits.max_degree:
            raise RegexTooCostly(
                f"has more than {limits.max_degree} unbounded quantifiers (*, +, {{n,}})"
            )
        if branching > limits.max_branching:
            raise RegexTooCostly("has too many alternatives and ranges to match in bounded time")
    return degree, branching


def regex_cost(
    pattern: str, *, max_degree: int, max_branching: int, narrow_range: int
) -> tuple[int, int]:
    """``(degree, branching)`` of ``pattern`` (one that ``re.compile`` accepts).

    Raises :class:`RegexTooCostly` (:class:`RegexUnsupported` for syntax the scanner does not
    analyse) when the pattern is refused."""
    return _cost(_parse(pattern), _Limits(max_degree, max_branching, narrow_range))
