"""A GBNF grammar (llama.cpp's `grammar` field) that admits only a valid four-bar ABC melody.

The header is fixed (the composer has already chosen metre, key and mode), so the model writes
only the notes. Every bar sums exactly to the metre on the L:1/16 grid: rule `r<n>` is "notes
worth n sixteenths", one note of an allowed length followed by `r<n - length>`. Each bar opens on
a sounding note (so a phrase has at least four), pitches stay within C, .. b (under two octaves
from any tonic at octave 4) and in the key (the melody is kept as scale degrees, so an accidental
would be lost), and the phrase ends on `|]`. What the grammar cannot judge (a copied
tune) is still checked after.
"""
from __future__ import annotations

from models.composing.corpus import METRES, PHRASE_BARS

LENGTHS = (2, 3, 4, 6, 8, 12, 16)
"""Note lengths in sixteenths, each written as a number: eighths and longer, plain and dotted. With
sixteenths allowed the small models filled every bar with sixteen of one note."""


def abc_header(metre: str, key: str, mode: str) -> str:
    """The header lines the answer starts with (the same the prompt asks for)."""
    return f"X:1\nM:{metre}\nL:1/16\nK:{key}{'' if mode == 'major' else ' ' + mode}\n"


def _literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _length(n: int) -> str:
    return f' "{n}"'


def _fillable(total: int, lengths: list[int]) -> set[int]:
    """The amounts (in sixteenths, up to `total`) that whole notes of these lengths add up to."""
    sums = {0}
    for n in range(1, total + 1):
        if any(n - k in sums for k in lengths):
            sums.add(n)
    return sums


def abc_grammar(metre: str, key: str, mode: str) -> str:
    """The GBNF text for a four-bar melody in `metre` under the fixed header."""
    bar = METRES[metre]
    lengths = [n for n in LENGTHS if n <= bar]
    fillable = _fillable(bar, lengths)

    def then(left: int) -> str:
        return f" r{left}" if left else ""
    rules = [f"root ::= {_literal(abc_header(metre, key, mode))} bar" + ' " | " bar' * (PHRASE_BARS - 1) + ' " |]"',
             "bar ::= " + " | ".join(f"pitch{_length(n)}{then(bar - n)}" for n in lengths if bar - n in fillable)]
    for left in sorted(n for n in fillable if 0 < n <= bar - lengths[0]):
        rules.append(f"r{left} ::= " + " | ".join(f"sep note{_length(n)}{then(left - n)}"
                                                   for n in lengths if n <= left and left - n in fillable))
    rules += ['note ::= pitch | "z"',
              'pitch ::= [A-G] ","? | [a-g]',
              'sep ::= " "?']
    return "\n".join(rules) + "\n"
