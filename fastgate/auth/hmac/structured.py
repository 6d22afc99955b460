"""Structured Field Values for HTTP (RFC 8941): strict parsing, and the
strict serialisation HTTP Message Signatures (RFC 9421) needs.

RFC 9421 leans on structured fields three times: ``Signature-Input`` and
``Signature`` are Dictionaries; the ``@signature-params`` line and every
component identifier of the signature base are *serialised* structured
values; and a covered field with ``sf`` or ``key`` is parsed and
re-serialised.  Its security considerations (§7.5.2) warn that a lax parser
-- an unclosed quote, say -- lets a client inject lines into the signature
base, so this parser follows RFC 8941 §4.2 to the letter and raises
ValueError, naming what is wrong and where, on any deviation from the
grammar.  The one liberty allowed by RFC 8941 and taken back here is on
request: ``unique=True`` refuses a key seen twice in a Dictionary or in one
set of Parameters (RFC 8941 keeps the last; RFC 9421 requires unique
signature labels, and a duplicated signature parameter would make the
re-serialised ``@signature-params`` differ from what was signed).

Values (what the parser returns and the serialiser takes):

* Integer: ``int``; Decimal: :class:`decimal.Decimal`; String: ``str``;
  Token: :class:`Token` (a ``str`` subclass); Byte Sequence: ``bytes``;
  Boolean: ``bool``;
* an Item: :class:`Item` (a bare item and its parameters); an Inner List:
  :class:`InnerList`; Parameters: a tuple of ``(key, bare item)`` pairs, in
  order; a Dictionary: a ``dict`` (ordered) of key to Item or InnerList; a
  List: a ``list`` of Item or InnerList.

Parsing takes the field value as bytes; a byte outside ASCII fails (RFC 8941
§4.2 step 0).  Serialisation returns ``str`` (ASCII only, by construction).
"""

from __future__ import annotations

import base64
import binascii
import decimal
from dataclasses import dataclass

__all__ = [
    "BareItem",
    "Dictionary",
    "InnerList",
    "Item",
    "Member",
    "Params",
    "Token",
    "parse_dictionary",
    "parse_item",
    "parse_list",
    "serialize_bare_item",
    "serialize_dictionary",
    "serialize_inner_list",
    "serialize_item",
    "serialize_list",
    "serialize_member",
    "serialize_params",
]


class Token(str):
    """An sf-token (kept apart from a String: they serialise differently)."""

    __slots__ = ()


BareItem = int | decimal.Decimal | str | bytes | bool
Params = tuple[tuple[str, BareItem], ...]


@dataclass(frozen=True, slots=True)
class Item:
    """``sf-item = bare-item parameters``."""

    value: BareItem
    params: Params = ()

    def param(self, key: str) -> BareItem | None:
        """The value of parameter ``key`` (the last one), or None."""
        return _param(self.params, key)


@dataclass(frozen=True, slots=True)
class InnerList:
    """``inner-list = "(" *SP [ sf-item *( 1*SP sf-item ) *SP ] ")" parameters``."""

    items: tuple[Item, ...]
    params: Params = ()

    def param(self, key: str) -> BareItem | None:
        """The value of parameter ``key`` (the last one), or None."""
        return _param(self.params, key)


Member = Item | InnerList
Dictionary = dict[str, Member]


def _param(params: Params, key: str) -> BareItem | None:
    found: BareItem | None = None
    for name, value in params:
        if name == key:
            found = value
    return found


# ----------------------------------------------------------------------------
# Character classes (RFC 8941 §3, RFC 5234 core rules, RFC 9110 tchar)
# ----------------------------------------------------------------------------

_DIGITS = frozenset("0123456789")
_LCALPHA = frozenset("abcdefghijklmnopqrstuvwxyz")
_ALPHA = _LCALPHA | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
# key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )
_KEY_FIRST = _LCALPHA | {"*"}
_KEY_CHARS = _LCALPHA | _DIGITS | frozenset("_-.*")
# tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
#         "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA      (RFC 9110 §5.6.2)
_TCHAR = _ALPHA | _DIGITS | frozenset("!#$%&'*+-.^_`|~")
# sf-token = ( ALPHA / "*" ) *( tchar / ":" / "/" )
_TOKEN_FIRST = _ALPHA | {"*"}
_TOKEN_CHARS = _TCHAR | {":", "/"}
# base64 = ALPHA / DIGIT / "+" / "/" / "="
_BASE64 = _ALPHA | _DIGITS | frozenset("+/=")
_OWS = " \t"

_MAX_INTEGER = 999_999_999_999_999


class _Input:
    """The string being parsed and the position reached (RFC 8941's
    ``input_string``, consumed from the left)."""

    __slots__ = ("pos", "text", "unique")

    def __init__(self, data: bytes, unique: bool) -> None:
        try:
            self.text = data.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError("structured field: not ASCII") from None
        self.pos = 0
        self.unique = unique

    def fail(self, message: str) -> ValueError:
        return ValueError(f"structured field: {message} at offset {self.pos}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def empty(self) -> bool:
        return self.pos >= len(self.text)

    def skip(self, chars: str) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in chars:
            pos += 1
        self.pos = pos


# ----------------------------------------------------------------------------
# Parsing (RFC 8941 §4.2)
# ----------------------------------------------------------------------------


def _top(data: bytes, unique: bool) -> _Input:
    # §4.2 step 1: discard any leading SP characters.
    cursor = _Input(data, unique)
    cursor.skip(" ")
    return cursor


def _end(cursor: _Input) -> None:
    # §4.2 steps 5-6: discard leading SP; anything left fails parsing.
    cursor.skip(" ")
    if not cursor.empty():
        raise cursor.fail(f"unexpected {cursor.peek()!r}")


def parse_dictionary(data: bytes, *, unique: bool = False) -> Dictionary:
    """A Dictionary field value (RFC 8941 §4.2.2).

    ``sf-dictionary = dict-member *( OWS "," OWS dict-member )``
    ``dict-member   = member-key ( parameters / ( "=" member-value ))``
    ``member-value  = sf-item / inner-list``

    A key given twice keeps the last value (RFC 8941), unless ``unique``:
    then it fails.  Raises ValueError.
    """
    cursor = _top(data, unique)
    dictionary: Dictionary = {}
    while not cursor.empty():
        key = _key(cursor)
        member: Member
        if cursor.peek() == "=":
            cursor.pos += 1
            member = _item_or_inner_list(cursor)
        else:
            member = Item(True, _params(cursor))
        if key in dictionary and unique:
            raise cursor.fail(f"dictionary key {key!r} given twice")
        dictionary[key] = member  # an existing key keeps its place (ordered map)
        if _after_member(cursor):
            break
    _end(cursor)
    return dictionary


def parse_list(data: bytes, *, unique: bool = False) -> list[Member]:
    """A List field value (RFC 8941 §4.2.1).

    ``sf-list     = list-member *( OWS "," OWS list-member )``
    ``list-member = sf-item / inner-list``

    Raises ValueError.
    """
    cursor = _top(data, unique)
    members: list[Member] = []
    while not cursor.empty():
        members.append(_item_or_inner_list(cursor))
        if _after_member(cursor):
            break
    _end(cursor)
    return members


def parse_item(data: bytes, *, unique: bool = False) -> Item:
    """An Item field value (RFC 8941 §4.2.3): ``sf-item = bare-item parameters``.
    Raises ValueError."""
    cursor = _top(data, unique)
    item = _item(cursor)
    _end(cursor)
    return item


def _after_member(cursor: _Input) -> bool:
    """After a List or Dictionary member: True at the end, else past the
    comma (``OWS "," OWS``) with another member due."""
    cursor.skip(_OWS)
    if cursor.empty():
        return True
    if cursor.peek() != ",":
        raise cursor.fail(f"expected ',' between members, got {cursor.peek()!r}")
    cursor.pos += 1
    cursor.skip(_OWS)
    if cursor.empty():
        raise cursor.fail("trailing comma")
    return False


def _item_or_inner_list(cursor: _Input) -> Member:
    """RFC 8941 §4.2.1.1."""
    if cursor.peek() == "(":
        return _inner_list(cursor)
    return _item(cursor)


def _inner_list(cursor: _Input) -> InnerList:
    """``inner-list = "(" *SP [ sf-item *( 1*SP sf-item ) *SP ] ")" parameters``
    (RFC 8941 §4.2.1.2)."""
    if cursor.peek() != "(":
        raise cursor.fail("expected '('")
    cursor.pos += 1
    items: list[Item] = []
    while not cursor.empty():
        cursor.skip(" ")
        if cursor.peek() == ")":
            cursor.pos += 1
            return InnerList(tuple(items), _params(cursor))
        items.append(_item(cursor))
        if cursor.empty():
            break
        if cursor.peek() not in (" ", ")"):
            raise cursor.fail("expected SP or ')' after an inner-list item")
    raise cursor.fail("inner list not closed")


def _item(cursor: _Input) -> Item:
    """``sf-item = bare-item parameters`` (RFC 8941 §4.2.3)."""
    value = _bare_item(cursor)
    return Item(value, _params(cursor))


def _bare_item(cursor: _Input) -> BareItem:
    """``bare-item = sf-integer / sf-decimal / sf-string / sf-token /
    sf-binary / sf-boolean`` (RFC 8941 §4.2.3.1)."""
    first = cursor.peek()
    if first == "-" or first in _DIGITS:
        return _number(cursor)
    if first == '"':
        return _string(cursor)
    if first in _TOKEN_FIRST:
        return _token(cursor)
    if first == ":":
        return _byte_sequence(cursor)
    if first == "?":
        return _boolean(cursor)
    if not first:
        raise cursor.fail("expected an item, got the end")
    raise cursor.fail(f"{first!r} starts no item")


def _params(cursor: _Input) -> Params:
    """``parameters = *( ";" *SP parameter )``,
    ``parameter = param-key [ "=" param-value ]`` (RFC 8941 §4.2.3.2)."""
    params: list[tuple[str, BareItem]] = []
    while cursor.peek() == ";":
        cursor.pos += 1
        cursor.skip(" ")
        key = _key(cursor)
        value: BareItem = True
        if cursor.peek() == "=":
            cursor.pos += 1
            value = _bare_item(cursor)
        for index, (name, _) in enumerate(params):
            if name == key:
                if cursor.unique:
                    raise cursor.fail(f"parameter {key!r} given twice")
                params[index] = (key, value)  # kept in place, as an ordered map
                break
        else:
            params.append((key, value))
    return tuple(params)


def _key(cursor: _Input) -> str:
    """``key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )``
    (RFC 8941 §4.2.3.3)."""
    text, start = cursor.text, cursor.pos
    if start >= len(text) or text[start] not in _KEY_FIRST:
        got = repr(text[start]) if start < len(text) else "the end"
        raise cursor.fail(f"a key starts with a lower-case letter or '*', got {got}")
    end = start + 1
    while end < len(text) and text[end] in _KEY_CHARS:
        end += 1
    cursor.pos = end
    return text[start:end]


def _number(cursor: _Input) -> int | decimal.Decimal:
    """``sf-integer = ["-"] 1*15DIGIT``, ``sf-decimal = ["-"] 1*12DIGIT "."
    1*3DIGIT`` (RFC 8941 §4.2.4)."""
    text, pos = cursor.text, cursor.pos
    negative = text[pos] == "-"
    if negative:
        pos += 1
    if pos >= len(text) or text[pos] not in _DIGITS:
        cursor.pos = pos
        raise cursor.fail("a number needs a digit")
    start = pos
    while pos < len(text) and text[pos] in _DIGITS:
        pos += 1
    whole = text[start:pos]
    if pos < len(text) and text[pos] == ".":
        if len(whole) > 12:
            cursor.pos = pos
            raise cursor.fail("a decimal has at most 12 integer digits")
        pos += 1
        frac_start = pos
        while pos < len(text) and text[pos] in _DIGITS:
            pos += 1
        fraction = text[frac_start:pos]
        cursor.pos = pos
        if not fraction:
            raise cursor.fail("a decimal ends with a digit, not '.'")
        if len(fraction) > 3:
            raise cursor.fail("a decimal has at most 3 fractional digits")
        value = decimal.Decimal(f"{whole}.{fraction}")
        return -value if negative else value
    cursor.pos = pos
    if len(whole) > 15:
        raise cursor.fail("an integer has at most 15 digits")
    number = int(whole)
    return -number if negative else number


def _string(cursor: _Input) -> str:
    """``sf-string = DQUOTE *chr DQUOTE``, ``chr = unescaped / escaped``,
    ``unescaped = %x20-21 / %x23-5B / %x5D-7E``, ``escaped = "\\" ( DQUOTE /
    "\\" )`` (RFC 8941 §4.2.5)."""
    text = cursor.text
    pos = cursor.pos + 1  # the opening DQUOTE
    out: list[str] = []
    while pos < len(text):
        char = text[pos]
        pos += 1
        if char == "\\":
            if pos >= len(text):
                cursor.pos = pos
                raise cursor.fail("string ends inside an escape")
            escaped = text[pos]
            pos += 1
            if escaped != '"' and escaped != "\\":
                cursor.pos = pos - 1
                raise cursor.fail(f"only '\\\"' and '\\\\' are escapes, not '\\{escaped}'")
            out.append(escaped)
        elif char == '"':
            cursor.pos = pos
            return "".join(out)
        elif not " " <= char <= "~":
            cursor.pos = pos - 1
            raise cursor.fail("control character in a string")
        else:
            out.append(char)
    cursor.pos = pos
    raise cursor.fail("string not closed")


def _token(cursor: _Input) -> Token:
    """``sf-token = ( ALPHA / "*" ) *( tchar / ":" / "/" )`` (RFC 8941 §4.2.6)."""
    text, start = cursor.text, cursor.pos
    end = start + 1
    while end < len(text) and text[end] in _TOKEN_CHARS:
        end += 1
    cursor.pos = end
    return Token(text[start:end])


def _byte_sequence(cursor: _Input) -> bytes:
    """``sf-binary = ":" *(base64) ":"``, ``base64 = ALPHA / DIGIT / "+" /
    "/" / "="`` (RFC 8941 §4.2.7).  Missing padding is synthesised and
    non-zero pad bits tolerated, as the RFC asks of parsers; anything else
    that is not base64 fails."""
    text = cursor.text
    start = cursor.pos + 1
    end = text.find(":", start)
    if end < 0:
        raise cursor.fail("byte sequence not closed")
    content = text[start:end]
    for offset, char in enumerate(content):
        if char not in _BASE64:
            cursor.pos = start + offset
            raise cursor.fail(f"{char!r} is not base64")
    cursor.pos = end + 1
    stripped = content.rstrip("=")
    if "=" in stripped or len(content) - len(stripped) > 2 or len(stripped) % 4 == 1:
        raise cursor.fail("malformed base64 in a byte sequence")
    try:
        return base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise cursor.fail("malformed base64 in a byte sequence") from None


def _boolean(cursor: _Input) -> bool:
    """``sf-boolean = "?" boolean``, ``boolean = "0" / "1"`` (RFC 8941 §4.2.8)."""
    text, pos = cursor.text, cursor.pos + 1
    if pos < len(text) and text[pos] in "01":
        cursor.pos = pos + 1
        return text[pos] == "1"
    cursor.pos = pos
    raise cursor.fail("a boolean is ?0 or ?1")


# ----------------------------------------------------------------------------
# Serialisation (RFC 8941 §4.1)
# ----------------------------------------------------------------------------


def serialize_list(members: list[Member] | tuple[Member, ...]) -> str:
    """RFC 8941 §4.1.1: members joined by ``", "``.  Raises ValueError."""
    return ", ".join(serialize_member(member) for member in members)


def serialize_dictionary(dictionary: Dictionary) -> str:
    """RFC 8941 §4.1.2 (a member whose value is true is its key and
    parameters alone).  Raises ValueError."""
    out: list[str] = []
    for key, member in dictionary.items():
        _check_key(key)
        if isinstance(member, Item) and member.value is True:
            out.append(key + serialize_params(member.params))
        else:
            out.append(key + "=" + serialize_member(member))
    return ", ".join(out)


def serialize_member(member: Member) -> str:
    """An Item or an Inner List, with its parameters."""
    if isinstance(member, InnerList):
        return serialize_inner_list(member)
    return serialize_item(member)


def serialize_inner_list(inner: InnerList) -> str:
    """RFC 8941 §4.1.1.1: ``(`` items joined by one SP ``)`` parameters."""
    return "(" + " ".join(serialize_item(item) for item in inner.items) + ")" \
        + serialize_params(inner.params)


def serialize_item(item: Item) -> str:
    """RFC 8941 §4.1.3: the bare item, then its parameters."""
    return serialize_bare_item(item.value) + serialize_params(item.params)


def serialize_params(params: Params) -> str:
    """RFC 8941 §4.1.1.2: ``;key`` for true, else ``;key=value``."""
    out: list[str] = []
    for key, value in params:
        _check_key(key)
        out.append(";" + key if value is True else ";" + key + "=" + serialize_bare_item(value))
    return "".join(out)


def _check_key(key: str) -> None:
    """RFC 8941 §4.1.1.3."""
    if not key or key[0] not in _KEY_FIRST or any(char not in _KEY_CHARS for char in key):
        raise ValueError(f"structured field: {key!r} is not a key")


def serialize_bare_item(value: BareItem) -> str:
    """RFC 8941 §4.1.3.1.  Raises ValueError for what has no serialisation."""
    if isinstance(value, bool):  # before int: a bool is an int
        return "?1" if value else "?0"
    if isinstance(value, int):
        if not -_MAX_INTEGER <= value <= _MAX_INTEGER:
            raise ValueError("structured field: integer out of range")
        return str(value)
    if isinstance(value, decimal.Decimal):
        return _serialize_decimal(value)
    if isinstance(value, Token):
        if not value or value[0] not in _TOKEN_FIRST or any(
                char not in _TOKEN_CHARS for char in value[1:]):
            raise ValueError(f"structured field: {value!r} is not a token")
        return str(value)
    if isinstance(value, str):
        if any(not " " <= char <= "~" for char in value):
            raise ValueError("structured field: a string holds only VCHAR and SP")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bytes):
        return ":" + base64.b64encode(value).decode("ascii") + ":"
    raise ValueError(f"structured field: cannot serialise {type(value).__name__}")


def _serialize_decimal(value: decimal.Decimal) -> str:
    """RFC 8941 §4.1.5: rounded to 3 places (half to even), at most 12
    integer digits, at least one fractional digit, no trailing zeros."""
    if not value.is_finite():
        raise ValueError("structured field: a decimal is finite")
    rounded = value.quantize(decimal.Decimal("0.001"), rounding=decimal.ROUND_HALF_EVEN)
    sign = "-" if rounded < 0 else ""
    whole, _, fraction = f"{abs(rounded):f}".partition(".")
    if len(whole) > 12:
        raise ValueError("structured field: a decimal has at most 12 integer digits")
    return f"{sign}{whole}.{fraction.rstrip('0') or '0'}"
