"""Graders: is a model's answer text right, given a reference answer? Pure string functions.

Each grader first *extracts* what the answer commits to (a choice letter, a final number, a final
string), then compares it with the reference. Extraction looks for the most explicit statement
first and stops there, so an answer that walks through several options and then says "The answer
is (B)" is read as B, not as the first letter it mentioned. What cannot be read is wrong, never
guessed: the detail says why.

- :func:`extract_choice`: an MMLU-style letter. In order: ``\\boxed{B}``; "answer is (B)",
  "Answer: **B**", "correct option is B" (the last such phrase); the whole reply being a letter
  ("B", "B.", "(B)", "**B**"); a reply that starts with one ("B. Paris", "(B) Paris"); a bold letter
  ("**B**", the last one); parenthesised letters "(B)" when they all name the same letter.
- :func:`extract_number`: a final number. In order: GSM8K's ``#### 42``; ``\\boxed{42}``; "answer is
  42" / "Answer: $1,234"; else the last number in the text. Thousands commas, ``$``, ``%`` and
  units are dropped, ``\\frac{a}{b}`` and ``a/b`` are fractions (``2\\frac{1}{2}`` is 5/2), ``1.5e3``
  is 1500, a hyphen between numbers is no minus sign ("2019-2020" ends in 2020), and numbers
  compare by value (``42.0 == 42``, ``1,000 == 1000``, ``0.5 == 1/2``).
- :func:`compile_regex` / :func:`grade_regex`: a user's pattern, run by RE2 (``google-re2``), whose
  time is linear in the answer's length whatever the pattern (Python's ``re`` backtracks: ``(a+)+$``
  against 40 a's and a b never ends). RE2 has no backreferences or lookaround; such a pattern is
  refused with one line naming it.
- :func:`normalize_text`: lower case, no punctuation or articles (a/an/the), one space between
  words (SQuAD's answer normalisation), for :func:`grade_exact`.
"""

from __future__ import annotations

import functools
import re
import string
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

__all__ = [
    "Graded",
    "extract_choice",
    "extract_number",
    "parse_number",
    "normalize_text",
    "final_strings",
    "reference_choice",
    "grade_choice",
    "grade_number",
    "grade_exact",
    "grade_regex",
    "compile_regex",
]


@dataclass(frozen=True)
class Graded:
    """One answer graded: ``correct``, and what was read from the answer (``None``: nothing)."""

    correct: bool
    extracted: str | None


# -- helpers ------------------------------------------------------------------------------------

_BOXED = re.compile(r"\\boxed\s*\{")


def boxed_contents(text: str) -> list[str]:
    """The contents of every ``\\boxed{...}`` in ``text``, braces balanced (``\\boxed{{42}}``, as
    some prompts' templates make models write, gives ``42``)."""
    out = []
    closing: dict[int, int] = {}  # each "{" to its matching "}", in one pass (an answer full of
    opened: list[int] = []  # unclosed boxes must not cost a scan to the end per box)
    for i, ch in enumerate(text):
        if ch == "{":
            opened.append(i)
        elif ch == "}" and opened:
            closing[opened.pop()] = i
    for m in _BOXED.finditer(text):
        end = closing.get(m.end() - 1)
        if end is not None:
            inner = text[m.end() : end].strip()
            while inner.startswith("{") and inner.endswith("}"):  # \boxed{{x}}
                inner = inner[1:-1].strip()
            inner = re.sub(r"^\\(?:text|textbf|mathrm|mathbf)\s*\{(.*)\}$", r"\1", inner, flags=re.S).strip()
            out.append(inner)
    return out


# -- choice letters -----------------------------------------------------------------------------


def _letter_class(letters: str) -> str:
    return "[" + re.escape(letters) + "]"


def extract_choice(text: str, letters: str = "ABCD") -> str | None:
    """The choice letter ``text`` commits to, or None (see the module doc for the order)."""
    L = _letter_class(letters)
    # whitespace runs as one space: the patterns below put several \s* side by side, and a long run
    # of blanks after "Answer" (a degenerate reply) would cost them polynomial backtracking
    t = " ".join(text.split())
    # a letter standing alone: not followed by a letter/digit (so "Because" is not "B")
    alone = rf"(?<![A-Za-z0-9])({L})(?![A-Za-z0-9])"
    for inner in reversed(boxed_contents(t)):
        m = re.fullmatch(rf"\(?\s*({L})\s*\)?[.:)]?(?:\s.*)?", inner.upper()[:1] + inner[1:], flags=re.S)
        if m:  # \boxed{b} is as explicit as \boxed{B}
            return m.group(1)
    # keywords in any case, the letter itself in upper case only ("the answer is a bit..." is no "A")
    phrase = re.compile(
        r"(?i:answer|option|choice)(?i:\s+(?:is|would\s+be|will\s+be|should\s+be))?\s*(?i::|=|\bis\b)?\s*"
        r"(?i:option|choice|letter)?\s*[*_`\"'\[(]*\s*" + alone + r"\s*[)\]]?"
    )
    hits = [m.group(1) for m in phrase.finditer(t) if _says_answer(t, m)]
    if hits:
        return hits[-1]
    m = re.fullmatch(rf"[*_`\"'\[(]*\s*({L})\s*[)\].:]?\s*[*_`\"'\])]*[.]?", t)
    if m:
        return m.group(1)
    m = re.match(rf"[*_`\[(]*\s*({L})\s*(?:[).:\]]|\*\*)", t)
    if m:
        return m.group(1)
    bold = re.findall(rf"\*\*\s*\(?({L})\)?[.:)]?\s*\*\*", t)
    if bold:
        return bold[-1]
    paren = set(re.findall(rf"\(({L})\)", t))
    if len(paren) == 1:
        return paren.pop()
    return None


def _says_answer(text: str, m: re.Match[str]) -> bool:
    """A phrase match is a statement of the answer ("answer is B", "Answer: B", "correct option is B"),
    not "Option A is wrong" or "choice B, but": it needs a connector (is / : / =) after the keyword."""
    span = text[m.start() : m.start(1)]
    return bool(re.search(r"(?:\bis\b|\bbe\b|:|=)", span, flags=re.I))


def reference_choice(reference: str, letters: str = "ABCD") -> str | None:
    """The letter a reference answer names: a lone letter in either case ("b", "(B)", "B.") or
    whatever :func:`extract_choice` reads from a longer reference ("B. Paris")."""
    bare = reference.strip().strip("()[]*_.: ").upper()
    if len(bare) == 1 and bare in letters:
        return bare
    return extract_choice(reference, letters)


def grade_choice(answer: str, reference: str, letters: str = "ABCD") -> Graded:
    """Right iff the answer's choice letter is the reference's (a letter, possibly "(B)" or "B.")."""
    ref = reference_choice(reference, letters)
    got = extract_choice(answer, letters)
    return Graded(got is not None and got == ref, got)


# -- numbers ------------------------------------------------------------------------------------

# a minus sign is a sign only where it does not join two numbers or words ("2019-2020", "pages 3-4",
# "x-5" are ranges and expressions, not -2020, -4, -5); an exponent is part of the number (1.5e3)
_SIGN = r"(?:(?<![\w.)\]}])[-−])?"
_NUM = _SIGN + r"(?:\$\s?)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?:\s*/\s*\d+)?|" + _SIGN + r"\.\d+"
_FRAC = re.compile(r"\\d?frac\s*\{\s*([-−]?\d+)\s*\}\s*\{\s*(\d+)\s*\}")
# a whole number written before a fraction is a mixed number: 2\frac{1}{2} is 5/2 (not 21/2)
_MIXED = re.compile(r"(?<![\d.])([-−]?)(\d+)\s*\\d?frac\s*\{\s*(\d+)\s*\}\s*\{\s*(\d+)\s*\}")


def _fractions(text: str) -> str:
    """``text`` with LaTeX fractions written as ``a/b`` (mixed numbers folded in: ``2\frac{1}{2}`` is ``5/2``)."""

    def mixed(m: re.Match[str]) -> str:
        whole, num, den = int(m.group(2)), int(m.group(3)), int(m.group(4))
        return f"{m.group(1)}{whole * den + num}/{den}" if den else m.group(0)

    return _FRAC.sub(r"\1/\2", _MIXED.sub(mixed, text))


def parse_number(text: str) -> Fraction | None:
    """``text`` as an exact number, if it is one: commas, ``$``, ``%``, a trailing unit or period
    are dropped; ``a/b`` and ``\\frac{a}{b}`` are fractions. None if there is no number in it."""
    t = _fractions(text.strip())
    m = re.search(_NUM, t)
    if not m:
        return None
    s = m.group(0).replace("−", "-").replace("$", "").replace(",", "").replace(" ", "")
    try:
        if "/" in s:
            num, den = s.split("/")
            return Fraction(num) / Fraction(den) if Fraction(den) != 0 else None
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


def extract_number(text: str) -> str | None:
    """The final number ``text`` commits to, as written (see the module doc for the order)."""
    t = _fractions(" ".join(text.split()))  # one space per blank run (see extract_choice)
    hashes = re.findall(r"####\s*(" + _NUM + ")", t)
    if hashes:
        return hashes[-1].strip()
    for inner in reversed(boxed_contents(text)):
        inner = _fractions(inner)
        found = re.findall(_NUM, inner)
        if found:
            return found[-1].strip()
    said = re.findall(r"answer\s*(?:is|:|=|would be|will be)\s*:?\s*[*_`]*\s*(" + _NUM + ")", t, flags=re.I)
    if said:
        return said[-1].strip()
    found = re.findall(_NUM, t)
    return found[-1].strip() if found else None


def grade_number(answer: str, reference: str) -> Graded:
    """Right iff the answer's final number equals the reference's final number by value."""
    ref = extract_number(reference)
    got = extract_number(answer)
    ref_v = parse_number(ref) if ref is not None else None
    got_v = parse_number(got) if got is not None else None
    ok = ref_v is not None and got_v is not None and (got_v == ref_v or _close(got_v, ref_v))
    return Graded(ok, got)


def _close(a: Fraction, b: Fraction) -> bool:
    """Equal up to float noise (0.30000000000000004 vs 0.3), not up to rounding by the model."""
    return abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(b)))


# -- strings ------------------------------------------------------------------------------------

_PUNCT = set(string.punctuation) | {"“", "”", "‘", "’", "–", "—"}


def normalize_text(text: str, drop_articles: bool = True) -> str:
    """SQuAD-style normalisation: lower case, punctuation and articles removed, whitespace collapsed."""
    t = "".join(" " if ch in _PUNCT else ch for ch in text.lower())
    if drop_articles:
        t = re.sub(r"\b(?:a|an|the)\b", " ", t)
    return " ".join(t.split())


def final_strings(answer: str) -> list[str]:
    """What an answer may state as its final answer: the whole answer, its last ``\\boxed{...}``,
    and the rest of the line after its last "answer is" / "Answer:"."""
    out = [answer]
    boxed = boxed_contents(answer)
    if boxed:
        out.append(boxed[-1])
    said = re.findall(r"answer\s*(?:is|:)\s*(.+)", answer, flags=re.I)
    if said:
        out.append(said[-1])
    return out


def grade_exact(answer: str, reference: str) -> Graded:
    """Right iff the normalised reference equals the normalised answer, or its final boxed / "Answer:"
    string (:func:`final_strings`). A reference that is nothing but an article ("A", the letter, or
    "The") is compared with articles kept: dropped, it would be empty and match no answer."""
    drop = bool(normalize_text(reference))
    ref = normalize_text(reference, drop)
    for cand in reversed(final_strings(answer)):
        if ref and normalize_text(cand, drop) == ref:
            return Graded(True, cand.strip())
    cands = final_strings(answer)
    return Graded(False, cands[-1].strip() if len(cands) > 1 else None)


class RegexPatternError(ValueError):
    """A pattern the regex grader cannot run: not a regular expression, or one RE2 cannot run."""


@functools.lru_cache(maxsize=64)
def compile_regex(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (module ``re2`` of ``google-re2``): a search takes time linear in
    the answer's length, so no pattern (the user's) and answer (a model's) can hang the grader.
    Python's syntax is read, less backreferences and lookaround, which no linear-time engine runs:
    such a pattern, or one that is no regular expression at all, raises :class:`RegexPatternError`
    with one line naming the pattern."""
    import re2  # google-re2

    opts = re2.Options()
    opts.log_errors = False  # RE2 would print its own copy of the error on stderr
    try:
        return re2.compile(pattern, opts)
    except re2.error as e:
        why = e.args[0].decode("utf-8", "replace") if e.args and isinstance(e.args[0], bytes) else str(e)
    try:
        re.compile(pattern)
    except re.error as e:
        raise RegexPatternError(f"pattern {pattern!r} is not a valid regular expression: {e}") from None
    except RecursionError:
        raise RegexPatternError(f"pattern {pattern!r} is nested too deeply to read") from None
    raise RegexPatternError(
        f"pattern {pattern!r} cannot run in the linear-time regex engine (RE2: {why}); "
        "backreferences and lookaround are not supported"
    )


def escape_regex(text: str) -> str:
    """``text`` escaped so that it matches itself in a :func:`compile_regex` pattern."""
    import re2

    return str(re2.escape(text))


def grade_regex(answer: str, pattern: Any) -> Graded:
    """Right iff ``pattern`` matches somewhere in the answer. ``pattern`` is a string (compiled by
    :func:`compile_regex`, linear time) or a compiled pattern with a ``search`` method."""
    if isinstance(pattern, str):
        pattern = compile_regex(pattern)
    m = pattern.search(answer)
    return Graded(m is not None, m.group(0) if m else None)
