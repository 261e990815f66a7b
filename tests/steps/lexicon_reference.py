"""The lexicon features computed the obvious way, one review and one token at a time: the reference
that steps/scorer.py's batch implementation (numpy over a whole batch's token ids) is held to.

This is the scorer's former per-token implementation: the regular-expression tokeniser, VADER's
rules applied to every rated word in turn, and the per-sentence and per-review sums in Python.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from steps import scorer

TOKENS_AND_ENDS = re.compile(r"\w+(?:'\w+)*|[.!?]")


def compound(total: float) -> float:
    return total / math.sqrt(total * total + scorer.COMPOUND_ALPHA)


class Reference:
    """VADER's rules over one review's tokens, for the lexicon of `rules`."""

    def __init__(self, rules: scorer.LexiconRules) -> None:
        self.rules = rules
        self.translation: dict[int, str] = dict(scorer.APOSTROPHES)
        emoji = {ord(char): f" {words} " for char, words in rules.emoji.items() if len(char) == 1}
        self.translation.update(emoji)
        self.rated = {word for word in rules.valences if word not in rules.boosters}

    def tokens(self, text: str) -> list[str]:
        """Lowercased words (word characters, inner apostrophes kept: "wouldn't") and sentence
        ends (each . ! ?); curly apostrophes are straightened and an emoji becomes its name."""
        found: list[str] = TOKENS_AND_ENDS.findall(text.translate(self.translation).lower())
        return found

    def valence(self, words: Sequence[str], i: int, start: int) -> float:
        """The valence of words[i] after the boosters and negations among the three words before
        it in its sentence (which begins at start)."""
        valences = self.rules.valences
        word = words[i]
        value = valences[word]
        if word == "no" and i + 1 < len(words) and words[i + 1] in valences:
            value = 0.0  # "no" negating the next lexicon word carries no valence of its own
        if (i - 1 >= start and words[i - 1] == "no") or (i - 2 >= start and words[i - 2] == "no"):
            value = valences[word] * scorer.NEGATION_SCALAR
        for distance in range(1, min(3, i - start) + 1):
            before = words[i - distance]
            if before in valences:
                continue
            boost = self.rules.boosters.get(before, 0.0)
            if boost:
                value += (boost if value >= 0 else -boost) * scorer.BOOSTER_DAMPING[distance - 1]
            if before in self.rules.negations:
                value *= scorer.NEGATION_SCALAR
        after_least = i - 1 >= start and words[i - 1] == "least"
        if after_least and (i - 2 < start or words[i - 2] not in ("at", "very")):
            value *= scorer.NEGATION_SCALAR
        return value

    def features(self, text: str) -> list[float]:
        """The LEXICON_FEATURES of one review: within each sentence every rated word (in the
        lexicon, not a booster) through valence(), halved before the sentence's first "but" and
        one and a half times after it; then the review's sums."""
        words = self.tokens(text)
        every: list[float] = []
        compounds: list[float] = []
        start = 0
        for end in [*(i for i, token in enumerate(words) if token in scorer.ENDS), len(words)]:
            sentence = words[start:end]
            values = [(i, self.valence(words, i, start)) for i in range(start, end) if words[i] in self.rated]
            if "but" in sentence:
                cut = start + sentence.index("but")
                values = [
                    (i, value * (scorer.BEFORE_BUT if i < cut else scorer.AFTER_BUT)) for i, value in values
                ]
            if sentence:
                every.extend(value for _, value in values)
                compounds.append(compound(sum(value for _, value in values)))
            start = end + 1
        count = sum(1 for token in words if token not in scorer.ENDS)
        if not count:
            return [0.0] * len(scorer.LEXICON_FEATURES)
        positive = sum(value + 1 for value in every if value > 0)
        negative = sum(1 - value for value in every if value < 0)
        weight = positive + negative + count - sum(1 for value in every if value != 0)
        total = sum(every)
        return [
            compound(total),
            positive / weight,
            negative / weight,
            total / count,
            sum(compounds) / len(compounds),
            min(compounds),
        ]
