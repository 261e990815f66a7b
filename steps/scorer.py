"""The compiled scorer: a fitted model as plain data, and the arithmetic that scores reviews with it.

Training exports the fitted scikit-learn pipeline to this format (JSON and numpy arrays, nothing
that runs code when it is read) and serving scores from it without calling scikit-learn: the word
n-gram TF-IDF is a sparse dot product over a vocabulary dict, the lexicon features are the rules
below. The TF-IDF part reproduces `TfidfVectorizer(lowercase=True, strip_accents="unicode",
sublinear_tf=True, norm="l2")` and `LogisticRegression.predict_proba` exactly (the equivalence test
holds them to 1e-9). The lexicon features are computed by this module in training as well, so the
two cannot disagree.

Ships twice: beside train.py in the training source dir, and in the artifact as code/scorer.py
next to inference.py. Standard library and numpy only; Python 3.9+.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "sentiment-compiled-model/1"
MODEL_FILE = "model.json"
VOCABULARY_FILE = "vocabulary.json"
LEXICON_FILE = "lexicon.json"
IDF_FILE = "idf.npy"
COEFFICIENTS_FILE = "coefficients.npy"
DATA_FILES = (MODEL_FILE, VOCABULARY_FILE, LEXICON_FILE, IDF_FILE, COEFFICIENTS_FILE)
TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # scikit-learn's default token_pattern
# Per review: VADER's compound score and its positive and negative shares, the mean valence per
# word, and the mean and the lowest compound score of its sentences (long reviews saturate the
# compound score; a single damning sentence is a strong signal).
LEXICON_FEATURES = (
    "compound",
    "positive_share",
    "negative_share",
    "mean_valence",
    "sentence_mean",
    "sentence_min",
)
# VADER's constants (Hutto & Gilbert 2014): how much a preceding booster moves a valence at a
# distance of 1, 2 and 3 words, what a negation multiplies it by, and the normalisation alpha.
BOOSTER_DAMPING = (1.0, 0.95, 0.9)
NEGATION_SCALAR = -0.74
COMPOUND_ALPHA = 15.0
BEFORE_BUT, AFTER_BUT = 0.5, 1.5
APOSTROPHES = {ord("\u2019"): "'", ord("\u2018"): "'", ord("\u02bc"): "'"}
ENDS = frozenset(".!?")
# Words, and each . ! ? (a sentence end).
_TOKENS_AND_ENDS = re.compile(r"\w+(?:'\w+)*|[.!?]")


# What this scorer computes, written into model.json and checked when a model is loaded.
COMPUTES = {
    "format": FORMAT,
    "token_pattern": TOKEN_PATTERN,
    "lowercase": True,
    "strip_accents": "unicode",
    "sublinear_tf": True,
    "norm": "l2",
    "lexicon_features": list(LEXICON_FEATURES),
}


class ModelFormatError(ValueError):
    """The plain-data model is incomplete or inconsistent; the message says what."""


# --- word n-grams, as scikit-learn's analyzer builds them --------------------------------------


def strip_accents(text: str) -> str:
    """scikit-learn's strip_accents_unicode: NFKD, then drop combining marks (ASCII as is)."""
    if text.isascii():
        return text
    return "".join(char for char in unicodedata.normalize("NFKD", text) if not unicodedata.combining(char))


_TOKENS = re.compile(TOKEN_PATTERN)


def word_ngrams(text: str, ngram_max: int) -> list[str]:
    """Lowercase, strip accents, tokenise, then every n-gram from 1 to ngram_max joined by a space."""
    tokens: list[str] = _TOKENS.findall(strip_accents(text.lower()))
    grams = list(tokens)
    for n in range(2, min(ngram_max, len(tokens)) + 1):
        if n == 2:  # most models: pairs joined at C speed
            grams.extend(map("{} {}".format, tokens, tokens[1:]))
        else:
            grams.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return grams


# --- lexicon features, with VADER's negation, booster and "but" rules --------------------------


@dataclass(frozen=True)
class LexiconRules:
    """A sentiment lexicon (word -> valence, about -4..4) and the words that modify it."""

    valences: Mapping[str, float]
    negations: frozenset[str]
    boosters: Mapping[str, float]
    emoji: Mapping[str, str] = field(default_factory=dict)  # one code point -> its description
    source: str = ""

    def __post_init__(self) -> None:
        table: dict[int, str] = dict(APOSTROPHES)
        table.update({ord(char): f" {words} " for char, words in self.emoji.items() if len(char) == 1})
        object.__setattr__(self, "_translation", table)
        # What features() visits: rated words (a rated booster only modifies), words that can
        # modify an unrated neighbour's valence, "but", and sentence ends; nothing else matters.
        rated = frozenset(word for word in self.valences if word not in self.boosters)
        modifiers = (set(self.boosters) | self.negations | {"least"}) - set(self.valences)
        object.__setattr__(self, "_rated", rated)
        object.__setattr__(self, "_marks", rated | modifiers | ENDS | {"but"})

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "valences": dict(sorted(self.valences.items())),
            "negations": sorted(self.negations),
            "boosters": dict(sorted(self.boosters.items())),
            "emoji": dict(sorted(self.emoji.items())),
            "rules": {
                "booster_damping": list(BOOSTER_DAMPING),
                "negation_scalar": NEGATION_SCALAR,
                "compound_alpha": COMPOUND_ALPHA,
                "before_but": BEFORE_BUT,
                "after_but": AFTER_BUT,
            },
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> LexiconRules:
        rules = document.get("rules", {})
        expected = LexiconRules(valences={}, negations=frozenset(), boosters={}).to_json()["rules"]
        if rules != expected:
            raise ModelFormatError(f"lexicon rules {rules} differ from this scorer's {expected}")
        return cls(
            valences={str(k): float(v) for k, v in document["valences"].items()},
            negations=frozenset(str(word) for word in document["negations"]),
            boosters={str(k): float(v) for k, v in document["boosters"].items()},
            emoji={str(k): str(v) for k, v in document.get("emoji", {}).items()},
            source=str(document.get("source", "")),
        )

    def tokens(self, text: str) -> list[str]:
        """Lowercased words (word characters, inner apostrophes kept: "wouldn't") and sentence ends
        (each . ! ?); curly apostrophes are straightened and an emoji becomes its name."""
        if not text.isascii():  # only then can it hold emoji or curly apostrophes
            text = text.translate(self._translation)  # type: ignore[attr-defined]
        return _TOKENS_AND_ENDS.findall(text.lower())

    def _valence(self, tokens: Sequence[str], i: int, start: int) -> float:
        """The valence of tokens[i] after the boosters and negations among the three words before
        it in its sentence (which begins at start)."""
        valences = self.valences
        word = tokens[i]
        valence = valences[word]
        if word == "no" and i + 1 < len(tokens) and tokens[i + 1] in valences:
            valence = 0.0  # "no" negating the next lexicon word carries no valence of its own
        if (i - 1 >= start and tokens[i - 1] == "no") or (i - 2 >= start and tokens[i - 2] == "no"):
            valence = valences[word] * NEGATION_SCALAR
        for distance in range(1, min(3, i - start) + 1):
            before = tokens[i - distance]
            if before in valences:
                continue
            boost = self.boosters.get(before, 0.0)
            if boost:
                valence += (boost if valence >= 0 else -boost) * BOOSTER_DAMPING[distance - 1]
            if before in self.negations:
                valence *= NEGATION_SCALAR
        if (
            i - 1 >= start
            and tokens[i - 1] == "least"
            and (i - 2 < start or tokens[i - 2] not in ("at", "very"))
        ):
            valence *= NEGATION_SCALAR
        return valence

    def features(self, text: str) -> list[float]:
        """The LEXICON_FEATURES of one review. The rules apply within each sentence: a rated word's
        valence after its boosters and negations; before the sentence's first "but" halved, after
        it one and a half times. Only rated words, "but" and sentence ends are visited."""
        tokens = self.tokens(text)
        marks, rated = self._marks, self._rated  # type: ignore[attr-defined]
        every: list[float] = []
        compounds: list[float] = []
        sentence: list[tuple[int, float]] = []  # (position, valence) of its rated words so far
        start, but, ends, modified = 0, -1, 0, -1  # modified: where the last modifier stands
        stops = [i for i, token in enumerate(tokens) if token in marks]
        for i in [*stops, len(tokens)]:  # the end of the text closes its last sentence
            token = tokens[i] if i < len(tokens) else "."
            if token == "but":
                but = i if but < start else but
            elif token in rated:
                if token != "no" and modified < max(start, i - 3):  # nothing can modify it
                    sentence.append((i, self.valences[token]))
                else:
                    sentence.append((i, self._valence(tokens, i, start)))
                    modified = i if token == "no" else modified
            elif token not in ENDS:
                modified = i  # a booster, a negation or "least"
            else:
                ends += i < len(tokens)
                if i > start:
                    values = [
                        value * (BEFORE_BUT if at < but else AFTER_BUT) if but >= start else value
                        for at, value in sentence
                    ]
                    every.extend(values)
                    compounds.append(_compound(sum(values)))
                sentence, start = [], i + 1
        count = len(tokens) - ends
        if not count:
            return [0.0] * len(LEXICON_FEATURES)
        positive = sum(value + 1.0 for value in every if value > 0)
        negative = sum(1.0 - value for value in every if value < 0)
        neutral = count - sum(1 for value in every if value != 0)
        weight = positive + negative + neutral
        total = sum(every)
        return [
            _compound(total),
            positive / weight,
            negative / weight,
            total / count,
            sum(compounds) / len(compounds),
            min(compounds),
        ]

    def matrix(self, texts: Iterable[str]) -> np.ndarray:
        """The lexicon features of each text, one row per text."""
        rows = [self.features(text) for text in texts]
        return np.array(rows, dtype=np.float64).reshape(len(rows), len(LEXICON_FEATURES))


def _compound(total: float) -> float:
    """VADER's normalisation of a summed valence into (-1, 1)."""
    return total / math.sqrt(total * total + COMPOUND_ALPHA)


# --- the model ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledModel:
    """TF-IDF over word n-grams plus standardised lexicon features, into a logistic regression."""

    vocabulary: Sequence[str]  # term of each TF-IDF column, in column order
    idf: np.ndarray  # one float64 per term
    coefficients: np.ndarray  # one float64 per term, then one per lexicon feature
    intercept: float
    ngram_max: int
    lexicon: LexiconRules
    lexicon_mean: np.ndarray  # the training reviews' mean of each lexicon feature
    lexicon_std: np.ndarray  # and their standard deviation (1 where it was 0)
    classes: tuple[int, int] = (0, 1)
    info: Mapping[str, Any] = field(default_factory=dict)  # how it was fitted, for people

    def __post_init__(self) -> None:
        terms = len(self.vocabulary)
        if self.idf.shape != (terms,) or self.coefficients.shape != (terms + len(LEXICON_FEATURES),):
            raise ModelFormatError(
                f"{terms} terms need {terms} idf values and {terms + len(LEXICON_FEATURES)} "
                f"coefficients; found shapes {self.idf.shape} and {self.coefficients.shape}"
            )
        index = {term: column for column, term in enumerate(self.vocabulary)}
        if len(index) != terms:
            raise ModelFormatError("the vocabulary lists a term twice")
        shape = (len(LEXICON_FEATURES),)
        if self.lexicon_mean.shape != shape or self.lexicon_std.shape != shape:
            raise ModelFormatError(f"lexicon mean and std need shape {shape}")
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "_term_coefficients", self.coefficients[:terms])
        object.__setattr__(self, "_lexicon_coefficients", self.coefficients[terms:])

    # - scoring -

    def term_columns(self, text: str) -> list[int]:
        """The vocabulary column of every n-gram of the text that is in the vocabulary."""
        index: dict[str, int] = self.index  # type: ignore[attr-defined]
        get = index.get
        return [column for column in map(get, word_ngrams(text, self.ngram_max)) if column is not None]

    def tfidf_scores(self, texts: Sequence[str]) -> np.ndarray:
        """Per text, the TF-IDF block's part of the decision function (its dot product with the
        coefficients), computed over the texts' known n-grams only: the sparse product."""
        columns = [self.term_columns(text) for text in texts]
        lengths = np.fromiter((len(found) for found in columns), dtype=np.int64, count=len(columns))
        if not lengths.sum():
            return np.zeros(len(texts))
        rows = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
        flat = np.fromiter(chain.from_iterable(columns), dtype=np.int64, count=int(lengths.sum()))
        keys, counts = np.unique(rows * len(self.vocabulary) + flat, return_counts=True)
        row, column = np.divmod(keys, len(self.vocabulary))
        weight = (np.log(counts) + 1.0) * self.idf[column]
        norm = np.sqrt(np.bincount(row, weights=weight * weight, minlength=len(texts)))
        dot = np.bincount(row, weights=weight * self._term_coefficients[column], minlength=len(texts))  # type: ignore[attr-defined]
        return np.divide(dot, norm, out=np.zeros(len(texts)), where=norm > 0)

    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        standardised = (self.lexicon.matrix(texts) - self.lexicon_mean) / self.lexicon_std
        lexicon = standardised @ self._lexicon_coefficients  # type: ignore[attr-defined]
        return self.tfidf_scores(texts) + lexicon + self.intercept

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Rows of [P(classes[0]), P(classes[1])], as LogisticRegression.predict_proba."""
        positive = 1.0 / (1.0 + np.exp(-self.decision_function(texts)))
        return np.column_stack([1.0 - positive, positive])

    def unigrams(self, text: str) -> list[str]:
        """The review's single-word tokens, as the TF-IDF analyzer sees them."""
        return word_ngrams(text, 1)

    # - plain data -

    def save(self, directory: Path) -> list[str]:
        """Write the model as JSON and .npy files; returns the file names written."""
        directory.mkdir(parents=True, exist_ok=True)
        document = {
            **COMPUTES,
            "ngram_max": self.ngram_max,
            "lexicon_mean": [float(value) for value in self.lexicon_mean],
            "lexicon_std": [float(value) for value in self.lexicon_std],
            "intercept": self.intercept,
            "classes": list(self.classes),
            "info": dict(self.info),
        }
        (directory / MODEL_FILE).write_text(json.dumps(document, indent=2), encoding="utf-8")
        (directory / VOCABULARY_FILE).write_text(json.dumps(list(self.vocabulary)), encoding="utf-8")
        (directory / LEXICON_FILE).write_text(json.dumps(self.lexicon.to_json()), encoding="utf-8")
        np.save(directory / IDF_FILE, np.ascontiguousarray(self.idf, dtype=np.float64), allow_pickle=False)
        np.save(
            directory / COEFFICIENTS_FILE,
            np.ascontiguousarray(self.coefficients, dtype=np.float64),
            allow_pickle=False,
        )
        return list(DATA_FILES)

    @classmethod
    def load(cls, directory: Path) -> CompiledModel:
        """Read a saved model; raises ModelFormatError when it is not one this scorer computes."""
        missing = [name for name in DATA_FILES if not (directory / name).is_file()]
        if missing:
            raise ModelFormatError(f"{directory} lacks {missing}")
        document = json.loads((directory / MODEL_FILE).read_text(encoding="utf-8"))
        different = {key: document.get(key) for key, value in COMPUTES.items() if document.get(key) != value}
        if different:
            raise ModelFormatError(f"{MODEL_FILE} asks for {different}; this scorer computes {COMPUTES}")
        classes = tuple(int(label) for label in document["classes"])
        if classes != (0, 1):
            raise ModelFormatError(f"expected classes [0, 1], found {list(classes)}")
        return cls(
            vocabulary=json.loads((directory / VOCABULARY_FILE).read_text(encoding="utf-8")),
            idf=np.load(directory / IDF_FILE, allow_pickle=False),
            coefficients=np.load(directory / COEFFICIENTS_FILE, allow_pickle=False),
            intercept=float(document["intercept"]),
            ngram_max=int(document["ngram_max"]),
            lexicon=LexiconRules.from_json(
                json.loads((directory / LEXICON_FILE).read_text(encoding="utf-8"))
            ),
            lexicon_mean=np.array(document["lexicon_mean"], dtype=np.float64),
            lexicon_std=np.array(document["lexicon_std"], dtype=np.float64),
            classes=(0, 1),
            info=document.get("info", {}),
        )
