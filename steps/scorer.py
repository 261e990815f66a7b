"""The compiled scorer: a fitted model as plain data, and the arithmetic that scores reviews with it.

Training exports the fitted scikit-learn pipeline to this format (JSON and numpy arrays, nothing
that runs code when it is read) and serving scores from it without calling scikit-learn. The
TF-IDF part reproduces `TfidfVectorizer(lowercase=True, strip_accents="unicode",
sublinear_tf=True, norm="l2")` and `LogisticRegression.predict_proba` exactly (the equivalence test
holds them to 1e-9). The lexicon features are computed by this module in training as well, so the
two cannot disagree.

A batch is scored as a whole (TokenIds): plain ASCII texts are joined and split once for both
analyzers, other texts go through the analyzers' regular expressions, and each token becomes an
integer id by one dict lookup. From there on the n-grams (NgramIndex), the TF-IDF sparse product
and VADER's rules (lexicon_matrix) are numpy operations over the flat id arrays of the whole
batch. A single review's lexicon features are computed one token at a time (text_features), as
numpy's per-call cost would outweigh the work; the tests hold both to a per-token reference
implementation of the rules, and each text alone to its row of a batch.

Ships twice: beside train.py in the training source dir, and in the artifact as code/scorer.py
next to inference.py. Standard library and numpy only; Python 3.9+.
"""

from __future__ import annotations

import json
import math
import re
import string
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from itertools import groupby, repeat
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


# --- tokens: a batch as one flat array of token ids per analyzer ------------------------------
#
# Each array starts with the id of SEPARATOR and has one after every text, so a text's tokens lie
# between two separators: n-grams and sentences cannot run from one text into the next, and a
# look back from a text's first word lands on a separator.

SEPARATOR = "\x00"
# A batch is scored in consecutive parts of about this many characters: memory stays bounded (a
# part's tokens and arrays take ~15 bytes a character) and every text scores as it would alone.
PART_CHARACTERS = 1_000_000
DROPPED = -1  # the TF-IDF id of a token scikit-learn's analyzer does not yield
_WORD_CHARACTERS = frozenset(string.ascii_letters + string.digits + "_")  # \w, in ASCII text
# In ASCII text every token of either analyzer is a run of word characters; the lexicon's may join
# several with inner apostrophes ("wouldn't"). So one split finds both, once every other character
# is a space, a sentence end is " . " and an apostrophe between two word characters is " ' ".
# The table also lowercases.
_ASCII = str.maketrans(
    {code: " " for code in range(128) if chr(code) not in _WORD_CHARACTERS | {SEPARATOR, "'", *ENDS}}
    | {ord("!"): ".", ord("?"): "."}
    | {ord(letter): letter.lower() for letter in string.ascii_uppercase}
)
# An apostrophe not between two word characters (written apostrophe-first so that the regex
# engine skips to apostrophes instead of trying a lookbehind at every position).
_LOOSE_APOSTROPHE = re.compile(r"'(?:(?!\w)|(?<!\w'))")
_TFIDF_TOKENS = re.compile(TOKEN_PATTERN)
_LEXICON_TOKENS = re.compile(r"\w+(?:'\w+)*|[.!?]")  # words (inner apostrophes kept) and ends


def strip_accents(text: str) -> str:
    """scikit-learn's strip_accents_unicode: NFKD, then drop combining marks (ASCII as is)."""
    if text.isascii():
        return text
    return "".join(char for char in unicodedata.normalize("NFKD", text) if not unicodedata.combining(char))


def tfidf_tokens(text: str) -> list[str]:
    """scikit-learn's analyzer: lowercase, strip accents, then the token pattern."""
    tokens: list[str] = _TFIDF_TOKENS.findall(strip_accents(text.lower()))
    return tokens


def parts(texts: Sequence[str]) -> Iterator[Sequence[str]]:
    """The batch in consecutive parts of about PART_CHARACTERS characters (one part if empty)."""
    start, size = 0, 0
    for end, text in enumerate(texts, 1):
        size += len(text)
        if size >= PART_CHARACTERS and end < len(texts):
            yield texts[start:end]
            start, size = end, 0
    yield texts[start:]


_EDGE = np.ones(1, dtype=bool)  # a run's start or end, for np.concatenate


def _joined(arrays: list[np.ndarray]) -> np.ndarray:
    """np.concatenate, without the call (and the copy) for a single array."""
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _plain(text: str) -> bool:
    """ASCII text without the separator, which ascii_tokens reads exactly as the regexes do."""
    return text.isascii() and SEPARATOR not in text


def ascii_tokens(text: str) -> list[str]:
    """Both analyzers' tokens of plain text: runs of word characters, "." for each sentence end
    (. ! ?), "'" for an apostrophe inside a word ("wouldn ' t"), SEPARATOR."""
    spaced = text.translate(_ASCII).replace(".", " . ")
    if "'" in spaced:
        spaced = _LOOSE_APOSTROPHE.sub(" ", spaced).replace("'", " ' ")
    return spaced.split()


class TokenIds:
    """Turns a batch into the lexicon's token ids (WordKinds ids) and, given an NgramIndex, the
    TF-IDF analyzer's word ids, with one dict lookup per token of plain ASCII texts: the split
    of ascii_tokens serves both. Other texts go through the analyzers' regular expressions."""

    APOSTROPHE = 1  # the id of "'"; 0 is any token not in the table

    def __init__(
        self, lexicon: Mapping[str, int], translation: dict[int, str], words: NgramIndex | None
    ) -> None:
        self.translation = translation  # straightens curly apostrophes, names emoji
        known = sorted((set(lexicon) | set(words.ids if words else ()) | ENDS | _WORD_CHARACTERS) - {"'"})
        self.ids = {"'": self.APOSTROPHE, **{token: number for number, token in enumerate(known, 2)}}
        self.lexicon = np.array([0, 0, *(lexicon.get(token, 0) for token in known)], dtype=np.int64)
        self.word = np.empty(0, dtype=np.int64)  # the TF-IDF word id of each id, given words
        if words:
            ids = {**words.ids, **dict.fromkeys(ENDS, DROPPED)}
            found = [ids.get(token, words.unknown) for token in known]
            self.word = np.array([words.unknown, DROPPED, *found], dtype=np.int64)

    def lexicon_ids(self, texts: Sequence[str]) -> np.ndarray:
        """The batch's lexicon token ids."""
        return _joined([lexicon for lexicon, _ in self._pieces(texts, words=False)])

    def both(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The batch's lexicon token ids and TF-IDF word ids (one-character tokens left out)."""
        pieces = list(self._pieces(texts, words=True))
        words = _joined([words for _, words in pieces])
        return _joined([lexicon for lexicon, _ in pieces]), words[words != DROPPED]

    def _pieces(self, texts: Sequence[str], words: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The ids of the runs of plain texts (mostly the whole batch at once) and of each other
        text, in order; TF-IDF ones only if words."""
        joined = f" {SEPARATOR} ".join(texts)
        if joined.isascii() and joined.count(SEPARATOR) == len(texts) - 1:  # every text is plain
            yield self._plain(f"{SEPARATOR} {joined} {SEPARATOR}", words)
            return
        yield self._regex([SEPARATOR], [SEPARATOR], words)
        for plain, run in groupby(texts, key=_plain):
            if plain:
                yield self._plain(f" {SEPARATOR} ".join(run) + f" {SEPARATOR}", words)
                continue
            for text in run:
                lexicon = _LEXICON_TOKENS.findall(text.translate(self.translation).lower())
                tfidf = tfidf_tokens(text) if words else []
                yield self._regex([*lexicon, SEPARATOR], [*tfidf, SEPARATOR], words)

    def _ids(self, tokens: list[str]) -> np.ndarray:
        return np.fromiter(map(self.ids.get, tokens, repeat(0)), dtype=np.int64, count=len(tokens))

    def _plain(self, text: str, words: bool) -> tuple[np.ndarray, np.ndarray]:
        """Both kinds of ids from one split and one lookup."""
        tokens = ascii_tokens(text)
        ids = self._ids(tokens)
        lexicon = self.lexicon[ids]
        apostrophes = (ids == self.APOSTROPHE).nonzero()[0]
        if len(apostrophes):
            lexicon = self._join_apostrophes(tokens, lexicon, apostrophes)
        return lexicon, self.word[ids] if words else self.word

    def _regex(self, lexicon: list[str], tfidf: list[str], words: bool) -> tuple[np.ndarray, np.ndarray]:
        """The ids of each analyzer's own tokens."""
        return self.lexicon[self._ids(lexicon)], self.word[self._ids(tfidf)] if words else self.word

    def _join_apostrophes(
        self, tokens: list[str], lexicon: np.ndarray, apostrophes: np.ndarray
    ) -> np.ndarray:
        """The lexicon reads "wouldn ' t" as one token, "wouldn't": each chain of words and
        apostrophes keeps its first position, with the id of the whole chain; the rest goes."""
        chains: list[list[int]] = []  # [start, stop) of each chain of tokens
        for at in apostrophes.tolist():  # a few per review
            if chains and chains[-1][1] == at:  # "rock ' n ' roll": the chain goes on
                chains[-1][1] = at + 2
            else:
                chains.append([at - 1, at + 2])
        for start, stop in chains:
            lexicon[start] = self.lexicon[self.ids.get("".join(tokens[start:stop]), 0)]
        keep = np.ones(len(lexicon), dtype=bool)
        keep[apostrophes] = keep[apostrophes + 1] = False
        return lexicon[keep]


# --- word n-grams: the vocabulary as a trie over word ids --------------------------------------


class NgramIndex:
    """The vocabulary's terms as a trie over word ids. The n-gram that starts at a position is
    the (n-1)-gram node there extended by the n-th word: one searchsorted per level over the
    whole batch, instead of an "a b" string and a dict lookup per n-gram.

    Word ids 0..size-1 are the words of the terms, `unknown` (size) any other token of two or
    more characters, `text_break` (size + 1) the separator: neither is in a term, so no n-gram
    crosses them. At each level the node ids are positions in that level's sorted keys, and
    NONE (one past the last) means "no term starts so"."""

    def __init__(self, vocabulary: Sequence[str], ngram_max: int) -> None:
        terms = [tuple(term.split(" ")) for term in vocabulary]
        words: dict[str, int] = {}
        for term in terms:
            for word in term:
                words.setdefault(word, len(words))
        self.size = len(words)
        self.unknown, self.text_break, self.base = self.size, self.size + 1, self.size + 2
        # Scikit-learn's pattern never yields a one-character token; the fast path does.
        self.ids = {**{char: DROPPED for char in _WORD_CHARACTERS}, **words, SEPARATOR: self.text_break}
        columns = {tuple(words[word] for word in term): column for column, term in enumerate(terms)}
        self.unigram_columns = np.full(self.base, -1, dtype=np.int64)  # per word id
        for ids, column in columns.items():
            if len(ids) == 1:
                self.unigram_columns[ids[0]] = column
        # Per level n >= 2: sorted keys (node of the first n-1 words) * base + (n-th word), with a
        # sentinel no key reaches, and each node's column (-1: only a prefix; NONE, the last: -1).
        # extends marks the nodes of the level before that some key of this level starts with.
        self.levels: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        nodes: dict[tuple[int, ...], int] = {(word,): word for word in words.values()}
        extends = np.zeros(self.base, dtype=bool)  # per word id, as unigram nodes
        for n in range(2, ngram_max + 1):
            prefixes = sorted({ids[:n] for ids in columns if len(ids) >= n})  # sorted by key too
            extends[[nodes[prefix[:-1]] for prefix in prefixes]] = True
            keys = [nodes[prefix[:-1]] * self.base + prefix[-1] for prefix in prefixes]
            self.levels.append(
                (
                    extends,
                    np.array([*keys, np.iinfo(np.int64).max], dtype=np.int64),
                    np.array([*(columns.get(prefix, -1) for prefix in prefixes), -1], dtype=np.int64),
                )
            )
            nodes = {prefix: node for node, prefix in enumerate(prefixes)}
            extends = np.zeros(len(prefixes) + 1, dtype=bool)

    def columns(self, words: np.ndarray) -> list[np.ndarray]:
        """Per n from 1 to ngram_max: the vocabulary column of the n-gram that starts at each
        position of the word-id stream (-1 where it is not a term)."""
        node = words  # a word's unigram node is its id
        found = [self.unigram_columns[words]]
        for n, (extends, keys, level_columns) in enumerate(self.levels, 2):
            last = words[n - 1 :]
            at = (extends[node[: len(last)]] & (last < self.size)).nonzero()[0]  # worth a search
            wanted = node[at] * self.base + last[at]
            got = keys.searchsorted(wanted)
            hit = keys[got] == wanted
            node = np.full(len(last), len(keys) - 1)  # NONE
            node[at[hit]] = got[hit]
            found.append(level_columns[node])
        return found


# --- lexicon features, with VADER's negation, booster and "but" rules --------------------------


@dataclass(frozen=True)
class WordKinds:
    """What VADER's rules ask of a lexicon token, as arrays indexed by token id: a batch's tokens
    are classified by one gather per question. Id 0 is any word the rules ignore."""

    ids: dict[str, int]
    valence: np.ndarray  # a rated word's valence (a word of the lexicon that is not a booster)
    boost: np.ndarray  # an unrated booster's increment
    rated: np.ndarray  # bool
    lexical: np.ndarray  # bool: in the lexicon, rated or not
    negation: np.ndarray  # bool: an unrated negation
    no: np.ndarray  # bool: "no"
    least: np.ndarray  # bool: "least"
    at_or_very: np.ndarray  # bool: "at" or "very" ("at least" and "very least" do not negate)
    but: np.ndarray  # bool: "but"
    boundary: np.ndarray  # bool: a sentence end or SEPARATOR
    separator: np.ndarray  # bool: SEPARATOR

    @classmethod
    def of(
        cls, valences: Mapping[str, float], negations: frozenset[str], boosters: Mapping[str, float]
    ) -> WordKinds:
        """The kinds of every token the rules name: the lexicon's words, its boosters and
        negations, "no", "least", "at", "very", "but", the sentence ends and the separator."""
        named = {"no", "least", "at", "very", "but"}
        words = sorted(set(valences) | set(boosters) | negations | named - ENDS - {SEPARATOR})
        ids = {token: number for number, token in enumerate([SEPARATOR, *sorted(ENDS), *words], 1)}

        def marked(tokens: Iterable[str]) -> np.ndarray:
            array = np.zeros(len(ids) + 1, dtype=bool)
            array[[ids[token] for token in tokens]] = True
            return array

        def weights(pairs: Iterable[tuple[str, float]]) -> np.ndarray:
            array = np.zeros(len(ids) + 1, dtype=np.float64)
            for token, value in pairs:
                array[ids[token]] = value
            return array

        rated = [word for word in valences if word not in boosters]
        return cls(
            ids=ids,
            valence=weights((word, valences[word]) for word in rated),
            boost=weights((word, boost) for word, boost in boosters.items() if word not in valences),
            rated=marked(rated),
            lexical=marked(valences),
            negation=marked(word for word in negations if word not in valences),
            no=marked(["no"]),
            least=marked(["least"]),
            at_or_very=marked(["at", "very"]),
            but=marked(["but"]),
            boundary=marked([SEPARATOR, *ENDS]),
            separator=marked([SEPARATOR]),
        )

    def lists(self) -> WordLists:
        """The same tables as Python lists, which text_features indexes one token at a time."""
        return WordLists(
            **{table.name: getattr(self, table.name).tolist() for table in fields(WordLists)}
        )


@dataclass(frozen=True)
class WordLists:
    """WordKinds' tables as lists: indexing a list with an int is several times cheaper than
    indexing an array, and gives a Python float or bool to compute with."""

    valence: list[float]
    boost: list[float]
    rated: list[bool]
    lexical: list[bool]
    negation: list[bool]
    no: list[bool]
    least: list[bool]
    at_or_very: list[bool]
    but: list[bool]
    boundary: list[bool]


_BEHIND = np.arange(1, 4)  # the three words before a rated word, which can modify it
_DAMPING = np.array(BOOSTER_DAMPING)
_NO_BUT = np.iinfo(np.int64).max


def rated_valences(
    tokens: np.ndarray, rated: np.ndarray, opening: np.ndarray, kinds: WordKinds
) -> np.ndarray:
    """The valence of each rated token (positions in the id stream; opening: the boundary before
    its sentence) after the "no", booster, negation and "least" rules, which look at the three
    words before it in its sentence, nearest first."""
    back = rated[:, None] - _BEHIND
    inside = back > opening[:, None]
    behind = tokens[back]  # only read where inside, so never before the stream's start
    word = tokens[rated]
    base = kinds.valence[word]
    # "no" before a lexicon word carries no valence of its own; "no" one or two words before a
    # rated word negates it (whatever the former rule said).
    lone_no = kinds.no[word] & kinds.lexical[tokens[rated + 1]]
    after_no = (kinds.no[behind[:, 0]] & inside[:, 0]) | (kinds.no[behind[:, 1]] & inside[:, 1])
    valence = base * np.where(after_no, NEGATION_SCALAR, np.where(lone_no, 0.0, 1.0))
    push = kinds.boost[behind] * (inside * _DAMPING)  # a booster's, less the further it stands
    flips = np.where(kinds.negation[behind] & inside, NEGATION_SCALAR, 1.0)
    # "least" right before negates, unless "at least" or "very least": after the rest.
    least = kinds.least[behind[:, 0]] & inside[:, 0] & ~(kinds.at_or_very[behind[:, 1]] & inside[:, 1])
    flips[least, -1] *= NEGATION_SCALAR
    for distance in range(len(BOOSTER_DAMPING)):  # in turn: each sees the sign the last one left
        step = push[:, distance]  # away from zero
        valence = (valence + np.where(valence >= 0, step, -step)) * flips[:, distance]
    return valence


def but_weights(
    rated: np.ndarray, sentence: np.ndarray, buts: np.ndarray, but_sentence: np.ndarray, sentences: int
) -> np.ndarray:
    """Per rated token (its position and sentence): halved before the first "but" of its
    sentence, one and a half times after it, as is in a sentence without one."""
    first = np.full(sentences, _NO_BUT)  # per sentence: where its first "but" stands
    np.minimum.at(first, but_sentence, buts)
    cut = first[sentence]
    return np.where(cut == _NO_BUT, 1.0, np.where(rated < cut, BEFORE_BUT, AFTER_BUT))


def compound(total: np.ndarray) -> np.ndarray:
    """VADER's normalisation of a summed valence into (-1, 1)."""
    return total / np.sqrt(total * total + COMPOUND_ALPHA)


def lexicon_matrix(tokens: np.ndarray, texts: int, kinds: WordKinds) -> np.ndarray:
    """The LEXICON_FEATURES of each text of a token-id stream (token_stream's layout). Sentences
    are the runs between boundaries; the rules apply within each, and every sentence with a word
    gets a compound score of its own."""
    boundary = kinds.boundary[tokens]
    closes = boundary.nonzero()[0]  # the boundary before each sentence, and the last one
    sentence = boundary.cumsum()  # of a word: 1 + its sentence, which opens at closes[sentence - 1]
    text = kinds.separator[tokens].cumsum()  # of a word: 1 + its text
    rated = kinds.rated[tokens].nonzero()[0]
    in_sentence = sentence[rated]
    values = rated_valences(tokens, rated, closes[in_sentence - 1], kinds)
    buts = kinds.but[tokens].nonzero()[0]
    if len(buts):
        values = values * but_weights(rated, in_sentence, buts, sentence[buts], len(closes))
    words = closes[1:] - closes[:-1] - 1  # per sentence
    spoken = words.nonzero()[0] + 1  # the sentences with a word, numbered as `sentence` does
    sums = np.bincount(in_sentence, values, len(closes))[spoken]
    sentence_text = text[closes[spoken] - 1]  # the text of a spoken sentence's last word
    return per_text_features(text[rated], values, sentence_text, compound(sums), words[spoken - 1], texts)


def per_text_features(
    rated_text: np.ndarray,
    values: np.ndarray,
    sentence_text: np.ndarray,
    sentences: np.ndarray,
    words: np.ndarray,
    texts: int,
) -> np.ndarray:
    """The LEXICON_FEATURES rows from each rated word's final valence and text, and each spoken
    sentence's compound score, text and word count; text ids start at 1. A text without words
    gets zeros."""
    bins = texts + 1
    total = np.bincount(rated_text, values, bins)
    positive = np.bincount(rated_text, np.where(values > 0, values + 1.0, 0.0), bins)
    negative = np.bincount(rated_text, np.where(values < 0, 1.0 - values, 0.0), bins)
    count = np.bincount(sentence_text, words, bins)
    neutral = count - np.bincount(rated_text, values != 0, bins)
    # Each maximum changes only texts without words: a weight is at least the count of words.
    weight = np.maximum(positive + negative + neutral, 1.0)
    spoken = np.maximum(np.bincount(sentence_text, minlength=bins), 1)
    features = np.zeros((bins, len(LEXICON_FEATURES)))
    if len(sentences):  # each text's lowest: sentence_text is sorted
        firsts = np.concatenate((_EDGE, sentence_text[1:] != sentence_text[:-1])).nonzero()[0]
        features[sentence_text[firsts], 5] = np.minimum.reduceat(sentences, firsts)
    features[:, 0] = compound(total)
    features[:, 1] = positive / weight
    features[:, 2] = negative / weight
    features[:, 3] = total / np.maximum(count, 1.0)
    features[:, 4] = np.bincount(sentence_text, sentences, bins) / spoken
    return features[1:]


def text_features(ids: list[int], kinds: WordLists) -> list[float]:
    """The LEXICON_FEATURES of one text from its token ids (a SEPARATOR at each end), one token
    at a time. For a single review this costs a few microseconds, where lexicon_matrix's numpy
    calls cost about a microsecond each whatever their size (~90 of them); the tests hold it
    equal to lexicon_matrix, with the same arithmetic in the same order."""
    every: list[float] = []  # the final valence of each rated word
    compounds: list[float] = []  # of each sentence with a word
    sentence: list[tuple[int, float]] = []  # (position, valence) of its rated words so far
    opening, but, words = 0, -1, 0  # where the sentence opens, its first "but", words so far
    for i in [i for i, token in enumerate(ids) if token]:  # the rules ignore the other words
        token = ids[i]
        if kinds.boundary[token]:
            if i > opening + 1:
                if but > opening:
                    values = [value * (BEFORE_BUT if at < but else AFTER_BUT) for at, value in sentence]
                else:
                    values = [value for _, value in sentence]
                every += values
                compounds.append(_compound(_sum(values)))
                words += i - opening - 1
            sentence, opening = [], i
            continue
        if kinds.but[token] and but < opening:
            but = i
        if kinds.rated[token]:
            sentence.append((i, _valence(ids, i, opening, kinds)))
    if not words:
        return [0.0] * len(LEXICON_FEATURES)
    positive = _sum([value + 1.0 for value in every if value > 0])
    negative = _sum([1.0 - value for value in every if value < 0])
    weight = positive + negative + float(words - sum(1 for value in every if value != 0))
    total = _sum(every)
    return [
        _compound(total),
        positive / weight,
        negative / weight,
        total / words,
        _sum(compounds) / len(compounds),
        min(compounds),
    ]


def _valence(ids: list[int], i: int, opening: int, kinds: WordLists) -> float:
    """rated_valences for the rated token at i, whose sentence opens at opening."""
    token = ids[i]
    after_no = (i - 1 > opening and kinds.no[ids[i - 1]]) or (i - 2 > opening and kinds.no[ids[i - 2]])
    lone_no = kinds.no[token] and kinds.lexical[ids[i + 1]]
    valence = kinds.valence[token] * (NEGATION_SCALAR if after_no else 0.0 if lone_no else 1.0)
    least = i - 1 > opening and kinds.least[ids[i - 1]]
    if least and i - 2 > opening and kinds.at_or_very[ids[i - 2]]:
        least = False
    for distance, damping in enumerate(BOOSTER_DAMPING, 1):
        flip = 1.0
        if i - distance > opening:
            before = ids[i - distance]
            step = kinds.boost[before] * damping
            valence += step if valence >= 0 else -step
            flip = NEGATION_SCALAR if kinds.negation[before] else 1.0
        if least and distance == len(BOOSTER_DAMPING):
            flip *= NEGATION_SCALAR
        valence *= flip
    return valence


def _compound(total: float) -> float:
    return total / math.sqrt(total * total + COMPOUND_ALPHA)


def _sum(values: Iterable[float]) -> float:
    """Left to right, as numpy's bincount adds (Python 3.12's sum compensates rounding)."""
    total = 0.0
    for value in values:
        total += value
    return total


@dataclass(frozen=True)
class LexiconRules:
    """A sentiment lexicon (word -> valence, about -4..4) and the words that modify it."""

    valences: Mapping[str, float]
    negations: frozenset[str]
    boosters: Mapping[str, float]
    emoji: Mapping[str, str] = field(default_factory=dict)  # one code point -> its description
    source: str = ""
    kinds: WordKinds = field(init=False, repr=False, compare=False)
    translation: dict[int, str] = field(init=False, repr=False, compare=False)  # for non-ASCII text
    _lists: WordLists = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        table: dict[int, str] = dict(APOSTROPHES)
        table.update({ord(char): f" {words} " for char, words in self.emoji.items() if len(char) == 1})
        object.__setattr__(self, "translation", table)
        object.__setattr__(self, "kinds", WordKinds.of(self.valences, self.negations, self.boosters))
        object.__setattr__(self, "_lists", self.kinds.lists())

    @cached_property
    def _token_ids(self) -> TokenIds:
        """The lexicon's own token table, for `matrix`: made on first use (3 ms), since a loaded
        model scores through its CompiledModel.token_ids and never needs it."""
        return TokenIds(self.kinds.ids, self.translation, None)

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

    def matrix(self, texts: Sequence[str]) -> np.ndarray:
        """The LEXICON_FEATURES of each text, one row per text."""
        return np.concatenate(
            [self.matrix_of(self._token_ids.lexicon_ids(part), len(part)) for part in parts(texts)]
        )

    def matrix_of(self, ids: np.ndarray, texts: int) -> np.ndarray:
        """The LEXICON_FEATURES of each text from the batch's lexicon token ids (TokenIds). A
        single review goes one token at a time (text_features), a batch through numpy."""
        if texts == 1:
            return np.array([text_features(ids.tolist(), self._lists)])
        return lexicon_matrix(ids, texts, self.kinds)

    def features(self, text: str) -> list[float]:
        """The LEXICON_FEATURES of one review."""
        return [float(value) for value in self.matrix([text])[0]]


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
    index: dict[str, int] = field(init=False, repr=False, compare=False)  # term -> column
    ngrams: NgramIndex = field(init=False, repr=False, compare=False)
    token_ids: TokenIds = field(init=False, repr=False, compare=False)

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
        object.__setattr__(self, "ngrams", NgramIndex(self.vocabulary, self.ngram_max))
        object.__setattr__(
            self, "token_ids", TokenIds(self.lexicon.kinds.ids, self.lexicon.translation, self.ngrams)
        )

    # - scoring -

    def tfidf_scores(self, texts: Sequence[str]) -> np.ndarray:
        """Per text, the TF-IDF block's part of the decision function (its dot product with the
        coefficients), computed over the texts' known n-grams only: the sparse product."""
        return self.tfidf_of(self.token_ids.both(texts)[1], len(texts))

    def tfidf_of(self, words: np.ndarray, texts: int) -> np.ndarray:
        """tfidf_scores from the batch's TF-IDF word ids (TokenIds)."""
        text = (words == self.ngrams.text_break).cumsum()  # of a word: 1 + its text
        found = self.ngrams.columns(words)
        columns = np.concatenate(found)
        terms = len(self.vocabulary)
        keys = (np.concatenate([text[: len(level)] for level in found]) * terms + columns)[columns >= 0]
        if not len(keys):
            return np.zeros(texts)
        keys.sort(kind="stable")  # each level's keys come grouped by text: timsort is quick on them
        edges = np.concatenate((_EDGE, keys[1:] != keys[:-1], _EDGE)).nonzero()[0]
        row, column = np.divmod(keys[edges[:-1]], terms)  # each distinct (text, term) once
        weight = (np.log(edges[1:] - edges[:-1]) + 1.0) * self.idf[column]  # sublinear tf * idf
        norm = np.sqrt(np.bincount(row, weight * weight, texts + 1)[1:])
        dot = np.bincount(row, weight * self.coefficients[column], texts + 1)[1:]
        return np.divide(dot, norm, out=np.zeros(texts), where=norm > 0)

    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        return _joined([self._decision_function(part) for part in parts(texts)])

    def _decision_function(self, texts: Sequence[str]) -> np.ndarray:
        lexicon_ids, words = self.token_ids.both(texts)
        lexicon = self.lexicon.matrix_of(lexicon_ids, len(texts))
        standardised = (lexicon - self.lexicon_mean) / self.lexicon_std
        return (
            self.tfidf_of(words, len(texts))
            + standardised @ self.coefficients[len(self.vocabulary) :]
            + self.intercept
        )

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Rows of [P(classes[0]), P(classes[1])], as LogisticRegression.predict_proba."""
        positive = 1.0 / (1.0 + np.exp(-self.decision_function(texts)))
        rows = np.empty((len(positive), 2))
        rows[:, 0], rows[:, 1] = 1.0 - positive, positive
        return rows

    def unigram_counts(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per text, how many single-word tokens the TF-IDF analyzer sees, and how many of those
        are not a term of the vocabulary: read from the word ids scoring uses, a part at a time."""
        counts, unknown = [], []
        for part in parts(texts):
            words = self.token_ids.both(part)[1]
            breaks = words == self.ngrams.text_break
            text = breaks.cumsum()[~breaks] - 1  # each token's text; a break opens every text
            novel = self.ngrams.unigram_columns[words[~breaks]] < 0
            counts.append(np.bincount(text, minlength=len(part)).astype(float))
            unknown.append(np.bincount(text, weights=novel, minlength=len(part)))
        return _joined(counts), _joined(unknown)

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
