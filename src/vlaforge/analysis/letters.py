"""Compact letter display (Piepho 2004, insert-and-absorb): models sharing a letter are not different."""

from __future__ import annotations

import string


def compact_letter_display(models_best_first: list[str], significant_pairs) -> dict[str, str]:
    """Letters per model from the significantly different pairs.

    ``models_best_first`` orders the models (highest success rate first); the column that holds the
    earliest model gets "a".
    """
    order = {m: i for i, m in enumerate(models_best_first)}
    for pair in significant_pairs:
        for m in pair:
            if m not in order:
                raise ValueError(f"compact letter display: '{m}' of pair {tuple(pair)} is not among the models")
    columns: list[set[str]] = [set(models_best_first)]
    for i, j in significant_pairs:
        while True:
            both = next((c for c in columns if i in c and j in c), None)
            if both is None:
                break
            columns.remove(both)
            columns += [both - {i}, both - {j}]
            columns = [c for c in columns if c and not any(c < o for o in columns)]
            columns = [c for k, c in enumerate(columns) if c not in columns[:k]]
    columns.sort(key=lambda c: sorted(order[m] for m in c))
    labels = _labels(len(columns))
    return {m: "".join(lab for lab, c in zip(labels, columns) if m in c) for m in models_best_first}


def _labels(count: int) -> list[str]:
    """a..z, then aa, ab, ...: enough letters for any number of columns."""
    letters = string.ascii_lowercase
    out = list(letters[:count])
    while len(out) < count:
        k = len(out) - len(letters)
        out.append(letters[k // len(letters)] + letters[k % len(letters)])
    return out
