"""scorer.py: the compiled model scores exactly as the fitted scikit-learn pipeline does, from plain
data, for every kind of text an endpoint can receive."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import lexicon_reference
import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from step_helpers import NEGATIVE, POSITIVE, REVIEWS

from steps import scorer, train

REPO = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-9
UNICODE = [
    "café crème très bon",
    "Größe passt, Qualität schlecht",
    "ﬁne ﬂat ﬁt",  # ligatures: NFKD splits them
    "\uff26\uff35\uff2c\uff2c great",  # fullwidth letters fold to ASCII
    "İstanbul İyi",  # lowercasing changes the length
    "naïve résumé coöperate",
    "e\u0301le\u0301gant",  # combining accents
    "очень хорошо, не понравилось",
    "很好 质量差",
    "مرحبا جيد",
    "so good\u200bso bad",  # zero-width space
    "tab\there\nnew line\r\nwindows",
]
EMOJI = ["😀", "😡", "👍", "👎", "❤️", "💔", "🙂", "😢", "👨\u200d👩\u200d👧", "🇫🇷", "⭐⭐⭐⭐⭐"]
NOTHING_TO_TOKENISE = ["", " ", "!!!", "a", "?", "...", "😀", "👍👍", "- - -", "1", "\u200b", "é"]
NEGATIONS = ["not", "never", "wouldn't", "don't", "isn't", "no", "without", "hardly", "but", "least"]
BOOSTERS = ["very", "extremely", "slightly", "barely", "so", "really", "kind of"]
EMPHASIS = 2.0


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, scorer.CompiledModel, list[str]]:
    """The fitted pipeline, and its compiled form written to disk and read back as serving does."""
    frame = pd.read_csv(REPO / "data" / "train.csv", dtype=str, keep_default_na=False)
    texts = frame["review_text"].tolist() + [text for text, _ in REVIEWS]
    labels = np.array(frame["sentiment"].astype(int).tolist() + [label for _, label in REVIEWS])
    # C chosen by cross-validation; the lexicon emphasis fixed above 0, so its idf weighting is in play
    args = train.parse_args(["--lexicon-emphasis", str(EMPHASIS)])
    pipeline, fitted_info = train.fit_model(texts, labels, args, train.load_lexicon())
    directory = tmp_path_factory.mktemp("compiled")
    train.compile_model(pipeline, args, fitted_info).save(directory)
    return pipeline, scorer.CompiledModel.load(directory), texts


def generated_texts(vocabulary: list[str], count: int, seed: int = 13) -> list[str]:
    """Reviews built from the model's own words (so many n-grams are known), negations, boosters,
    unicode, emoji, punctuation, texts with no token at all, and very long ones."""
    rng = random.Random(seed)
    words = [term for term in vocabulary if " " not in term]
    pieces = words + NEGATIONS + BOOSTERS + UNICODE + EMOJI + [",", ".", "!", "?", ":)", ":("]
    texts: list[str] = []
    while len(texts) < count:
        kind = len(texts) % 10
        if kind == 0:
            texts.append(rng.choice(NOTHING_TO_TOKENISE) * rng.randint(1, 3))
        elif kind == 1:
            texts.append(" ".join(rng.choice(pieces) for _ in range(rng.randint(2000, 3500)))[:20_000])
        elif kind == 2:
            texts.append(f"{rng.choice(NEGATIONS)} {rng.choice(BOOSTERS)} {rng.choice(words)}")
        elif kind == 3:
            texts.append(rng.choice(POSITIVE + NEGATIVE).upper() + " " + rng.choice(EMOJI))
        else:
            texts.append(" ".join(rng.choice(pieces) for _ in range(rng.randint(1, 60))))
    return texts


def test_compiled_scores_equal_the_pipeline_on_10000_texts(fitted: tuple[Any, Any, list[str]]) -> None:
    pipeline, compiled, training_texts = fitted
    texts = training_texts + generated_texts(list(compiled.vocabulary), 10_000)
    assert len(texts) >= 10_000
    assert (compiled.unigram_counts(texts)[0] == 0).any(), "some texts have no token"
    assert max(len(text) for text in texts) >= 19_000
    assert sum(map(len, texts)) > 3 * scorer.PART_CHARACTERS  # scored in several parts
    expected = pipeline.predict_proba(texts)
    actual = compiled.predict_proba(texts)
    assert actual.shape == expected.shape == (len(texts), 2)
    assert float(np.max(np.abs(actual - expected))) <= TOLERANCE
    # one at a time gives the same as the batch (the single-review path of the endpoint)
    for index in range(0, len(texts), 997):
        single = compiled.predict_proba([texts[index]])
        assert float(np.max(np.abs(single[0] - expected[index]))) <= TOLERANCE


def test_the_compiled_idf_carries_the_lexicon_emphasis(fitted: tuple[Any, Any, list[str]]) -> None:
    """The equivalence above covers emphasised idf values: lexicon terms' idf is raised, others not."""
    _, compiled, texts = fitted
    plain = train.make_vectorizer(train.parse_args([])).fit(texts)
    assert compiled.info["lexicon_emphasis"] == EMPHASIS
    assert list(compiled.vocabulary) == plain.get_feature_names_out().tolist()
    raised = compiled.idf > plain.idf_ * (1 + 1e-12)
    assert raised.any() and not raised.all()
    assert np.all(compiled.idf >= plain.idf_ * (1 - 1e-12))


def test_unknown_words_still_score_through_the_lexicon(fitted: tuple[Any, Any, list[str]]) -> None:
    _, compiled, _ = fitted
    assert compiled.tfidf_scores(["zzz qqq"])[0] == 0.0
    assert compiled.predict_proba(["delightful"])[0, 1] > compiled.predict_proba(["dreadful"])[0, 1]


def test_empty_batch_scores_to_an_empty_array(fitted: tuple[Any, Any, list[str]]) -> None:
    _, compiled, _ = fitted
    assert compiled.predict_proba([]).shape == (0, 2)


def test_unigram_counts_follow_scikit_learn_analyzer(fitted: tuple[Any, Any, list[str]]) -> None:
    """What monitoring's token_count and oov_rate are made of, for a batch read in several parts."""
    pipeline, compiled, training_texts = fitted
    analyzer = pipeline.named_steps["features"].transformer_list[0][1].build_analyzer()
    texts = [
        *UNICODE, *EMOJI, *NOTHING_TO_TOKENISE, "Not GOOD, not good at all!", "it's a_b 9 x",
        *training_texts, *generated_texts(list(compiled.vocabulary), 2_000),
    ]
    assert sum(map(len, texts)) > scorer.PART_CHARACTERS  # read in more than one part
    counts, unknown = compiled.unigram_counts(texts)
    for text, count, novel in zip(texts, counts.tolist(), unknown.tolist(), strict=True):
        unigrams = [gram for gram in analyzer(text) if " " not in gram]
        assert (count, novel) == (len(unigrams), sum(g not in compiled.index for g in unigrams)), text
    assert 0 < unknown.sum() < counts.sum()
    assert [array.shape for array in compiled.unigram_counts([])] == [(0,), (0,)]


def test_saved_files_are_plain_data(tmp_path: Path, fitted: tuple[Any, Any, list[str]]) -> None:
    _, compiled, _ = fitted
    written = compiled.save(tmp_path)
    assert sorted(written) == sorted(scorer.DATA_FILES)
    for name in written:
        if name.endswith(".npy"):
            assert np.load(tmp_path / name, allow_pickle=False).dtype == np.float64
        else:
            json.loads((tmp_path / name).read_text(encoding="utf-8"))


def test_a_model_asking_for_other_rules_is_refused(
    tmp_path: Path, fitted: tuple[Any, Any, list[str]]
) -> None:
    _, compiled, _ = fitted
    compiled.save(tmp_path)
    document = json.loads((tmp_path / scorer.MODEL_FILE).read_text(encoding="utf-8"))
    document["token_pattern"] = r"\w+"
    (tmp_path / scorer.MODEL_FILE).write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(scorer.ModelFormatError, match="token_pattern"):
        scorer.CompiledModel.load(tmp_path)


def test_inconsistent_arrays_are_refused(tmp_path: Path, fitted: tuple[Any, Any, list[str]]) -> None:
    _, compiled, _ = fitted
    compiled.save(tmp_path)
    np.save(tmp_path / scorer.IDF_FILE, np.ones(3), allow_pickle=False)
    with pytest.raises(scorer.ModelFormatError, match="idf values"):
        scorer.CompiledModel.load(tmp_path)


def lexicon_texts(rules: scorer.LexiconRules, count: int, seed: int) -> list[str]:
    """Reviews made of what the lexicon rules act on: rated words, negations, boosters, "no",
    "least", "at least", "but", sentence ends, curly and stray apostrophes, emoji, unicode, glued
    or spaced, in any case; some with nothing to tokenise, a few very long."""
    rng = random.Random(seed)
    rated = sorted(word for word in rules.valences if word.isalpha() and word not in rules.boosters)
    pieces = [
        *rng.sample(rated, 300),
        *sorted(rules.negations),
        *sorted(rules.boosters),
        *NEGATIONS,
        *BOOSTERS,
        *["no", "no", "least", "least", "at least", "very least", "but", "but", "but"],
        *[".", "!", "?", "...", "?!", ",", ";", "-", "(", ")"],
        *["don\u2019t", "isn\u2018t", "it\u02bcs", "'quoted'", "rock'n'roll", "''", "'", "it's", "o'"],
        *["x_y", "_", "42", "a", "I", "\x00", "\t", "\n"],
        *UNICODE,
        *EMOJI,
        *sorted(rules.emoji)[::97],
    ]
    glue = [" "] * 6 + ["", ", ", "  "]
    texts: list[str] = []
    while len(texts) < count:
        number = len(texts)
        if number % 25 == 0:
            texts.append(rng.choice(NOTHING_TO_TOKENISE) * rng.randint(1, 3))
            continue
        length = rng.randint(2000, 3000) if number % 1000 == 1 else rng.randint(1, 40)
        text = "".join(rng.choice(pieces) + rng.choice(glue) for _ in range(length))
        texts.append(text.upper() if number % 7 == 0 else text)
    return texts


def test_lexicon_features_equal_the_per_token_reference_on_10000_texts() -> None:
    rules = train.load_lexicon()
    texts = lexicon_texts(rules, 10_000, seed=5)
    for needed in ["at least", "very least", "no ", " but ", "!", "?", "\u2019", "\x00", "\U0001f600"]:
        assert any(needed in text.lower() for text in texts), needed
    assert sum(not text.isascii() for text in texts) > 1000
    assert max(len(text) for text in texts) > 15_000
    assert sum(map(len, texts)) > scorer.PART_CHARACTERS  # scored in several parts
    actual = rules.matrix(texts)
    reference = lexicon_reference.Reference(rules)
    expected = np.array([reference.features(text) for text in texts])
    assert actual.shape == expected.shape == (len(texts), len(scorer.LEXICON_FEATURES))
    gaps = np.max(np.abs(actual - expected), axis=1)
    assert float(gaps.max()) <= 1e-12, texts[int(np.argmax(gaps))]
    assert np.count_nonzero(expected[:, 0]) > len(texts) // 2  # most texts have a sentiment


EDGES = [
    "good. but",
    "but",
    "but good",
    "good but",
    "no",
    "no good",
    "good no",
    "least",
    "at least good",
    "very least good",
    "not",
    "very",
    "good.",
    ". good",
    "!good!",
    "good. no. but. least. very. not",
]


def test_a_text_scores_the_same_alone_and_anywhere_in_a_batch() -> None:
    rules = train.load_lexicon()
    texts = [*EDGES, *lexicon_texts(rules, 500, seed=8)]
    batch = rules.matrix(texts)
    order = random.Random(1).sample(range(len(texts)), len(texts))
    assert np.array_equal(rules.matrix([texts[i] for i in order]), batch[order])
    for index, text in enumerate(texts):
        assert np.array_equal(rules.matrix([text])[0], batch[index]), text
    reference = lexicon_reference.Reference(rules)
    for text in EDGES:
        assert rules.features(text) == pytest.approx(reference.features(text), abs=1e-12), text
    assert rules.matrix([]).shape == (0, len(scorer.LEXICON_FEATURES))


def test_batch_token_ids_equal_the_regular_expressions() -> None:
    """Plain ASCII texts take one split for both analyzers, other texts the regular expressions:
    the same tokens either way. The table here knows every token of the texts, so equal ids mean
    equal tokens (the lexicon's sentence ends all read ".")."""
    rules = train.load_lexicon()
    mixed = [*lexicon_texts(rules, 3000, seed=9), "a'b''c 'd' e'' ''f g'.h", "x\x00y", "__init__ a_b 9"]
    reference = lexicon_reference.Reference(rules)
    analyzer = TfidfVectorizer(strip_accents="unicode").build_analyzer()
    lexicon_tokens = {text: reference.tokens(text) for text in mixed}
    tfidf_tokens = {text: analyzer(text) for text in mixed}
    every = {token for tokens in [*lexicon_tokens.values(), *tfidf_tokens.values()] for token in tokens}
    lexicon_table = {token: number for number, token in enumerate(sorted(every | {scorer.SEPARATOR}), 1)}
    lexicon_table.update(dict.fromkeys(scorer.ENDS, lexicon_table["."]))
    words = scorer.NgramIndex(sorted(token for token in every if len(token) > 1), 1)
    token_ids = scorer.TokenIds(lexicon_table, rules.translation, words)
    plain = [text for text in mixed if text.isascii() and scorer.SEPARATOR not in text]
    assert any("'" in text for text in plain) and len(plain) < len(mixed)
    for texts in (mixed, plain, mixed[:1], []):
        separator = lexicon_table[scorer.SEPARATOR]
        expected_lexicon, expected_words = [separator], [words.text_break]
        for text in texts:
            expected_lexicon += [*(lexicon_table[token] for token in lexicon_tokens[text]), separator]
            expected_words += [*(words.ids[token] for token in tfidf_tokens[text]), words.text_break]
        lexicon, word_ids = token_ids.both(texts)
        assert lexicon.tolist() == expected_lexicon
        assert word_ids.tolist() == expected_words
        assert token_ids.lexicon_ids(texts).tolist() == expected_lexicon


def test_trigram_models_score_as_the_pipeline() -> None:
    frame = pd.read_csv(REPO / "data" / "train.csv", dtype=str, keep_default_na=False)
    args = train.parse_args(["--ngram-max", "3", "--regularization-c", "4"])
    pipeline, info = train.fit_model(
        frame["review_text"].tolist(), frame["sentiment"].astype(int).to_numpy(), args, train.load_lexicon()
    )
    compiled = train.compile_model(pipeline, args, info)
    assert any(term.count(" ") == 2 for term in compiled.vocabulary)
    texts = frame["review_text"].tolist() + generated_texts(list(compiled.vocabulary), 2000, seed=3)
    gap = np.max(np.abs(compiled.predict_proba(texts) - pipeline.predict_proba(texts)))
    assert float(gap) <= TOLERANCE
