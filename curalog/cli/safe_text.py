"""Text from a log or a dataset, made safe to print on a terminal.

Authors, reasons, notes, label values and file names are whatever the person (or file)
that wrote them chose: an escape sequence among them would reach the terminal raw (change
colours, move the cursor, set the window title, hide text). :func:`printable` shows every
control character as a Python-style escape instead; the log itself keeps the original.
"""

from __future__ import annotations

#: Format characters that reorder or hide text (bidirectional overrides, zero-width marks).
_INVISIBLE = {
    *range(0x200B, 0x2010),
    *range(0x202A, 0x202F),
    *range(0x2060, 0x2070),
    0xFEFF,
}


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: object) -> str:
    """``str(text)`` with control and invisible formatting characters escaped (``\\x1b``)."""
    s = str(text)
    if s.isprintable() and s.isascii():
        return s
    out = []
    for ch in s:
        code = ord(ch)
        if ch.isprintable() and code not in _INVISIBLE:
            out.append(ch)
        else:
            out.append(_escape(ch))
    return "".join(out)
