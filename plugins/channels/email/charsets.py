"""Bytes to text whatever the declared charset says: the declared one (mapped to the superset
real mailers use under that label), else UTF-8, else detection on a bounded sample, else
UTF-8 with replacement characters. Never raises."""

from __future__ import annotations

_DETECT_SAMPLE = 16384  # bytes given to charset detection
MAX_DEFECTS = 40

# Declared labels mapped to the superset that real mailers actually produce under that label.
_CHARSET_SUPERSETS = {
    "gb2312": "gb18030",
    "gb_2312-80": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "euc-cn": "gb18030",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "x-sjis": "cp932",
    "sjis": "cp932",
    "windows-31j": "cp932",
    "iso-2022-jp": "iso2022_jp_ext",
    "big5": "big5hkscs",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "iso-8859-9": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "unicode-1-1-utf-7": "utf-7",
    "utf8": "utf-8",
}
# Labels that mean "no charset information at all".
_NO_CHARSET = {"", "unknown-8bit", "x-unknown", "unknown", "x-user-defined", "8bit", "default"}


def normalise_charset(charset: str | None) -> str | None:
    if not charset:
        return None
    label = charset.strip().strip("\"'").strip().lower()
    label = label.split("*", 1)[0]  # RFC 2231 language suffix: utf-8*en
    if label in _NO_CHARSET or len(label) > 40:
        return None
    return _CHARSET_SUPERSETS.get(label, label)


def detect_charset(data: bytes) -> str | None:
    """The encoding charset_normalizer guesses for a bounded sample of ``data``."""
    try:
        from charset_normalizer import from_bytes  # imported lazily: rarely needed

        best = from_bytes(data[:_DETECT_SAMPLE]).best()
    except Exception:  # detection is a heuristic; never let it break parsing
        return None
    return best.encoding if best is not None else None


def decode_bytes(data: bytes, charset: str | None, defects: list[str] | None = None) -> str:
    """Decode text bytes with the declared charset, falling back until something works.

    Order: declared charset (strict) -> UTF-8 (strict) -> detected charset (with
    replacement) -> UTF-8 with replacement. Never raises.
    """
    if not data:
        return ""
    declared = normalise_charset(charset)
    if declared:
        try:
            return data.decode(declared)
        except LookupError:
            note_defect(defects, f"unknown charset {charset!r}")
        except Exception:  # UnicodeDecodeError and odd codec errors alike
            note_defect(defects, f"bytes not valid in declared charset {charset!r}")
    elif data.isascii():
        # ISO-2022-JP is 7-bit: undeclared Japanese mail is ASCII with escape sequences.
        if b"\x1b$" in data or b"\x1b(" in data:
            try:
                return data.decode("iso2022_jp_ext")
            except Exception:
                pass
        return data.decode("ascii")
    if declared != "utf-8":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    detected = detect_charset(data)
    if detected:
        try:
            return data.decode(detected, errors="replace")
        except Exception:
            pass
    return data.decode("utf-8", errors="replace")


def note_defect(defects: list[str] | None, text: str) -> None:
    if defects is not None and len(defects) < MAX_DEFECTS and text not in defects:
        defects.append(text)
