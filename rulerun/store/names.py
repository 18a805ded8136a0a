"""Job keys and paths as the state database keeps them, and back."""

from __future__ import annotations


def stored(text: str) -> str | bytes:
    """A job key or path as the database keeps it. A file name that is not UTF-8 reaches Python
    with lone surrogates (surrogateescape), which sqlite3 can't encode: such a string is kept as
    its bytes (a BLOB, equal only to the same bytes), every other one as TEXT, as before."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")
    return text


def loaded(value: str | bytes) -> str:
    """The string `stored` kept as `value`."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value
