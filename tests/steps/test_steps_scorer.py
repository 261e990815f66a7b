"""scorer.py: the compiled model scores exactly as the fitted scikit-learn pipeline does, from plain
data, for every kind of text an endpoint can receive."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
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
    assert any(not scorer.word_ngrams(text, 2) for text in texts), "some texts have no token"
    assert max(len(text) for text in texts) >= 19_000
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


def test_word_ngrams_follow_scikit_learn_analyzer(fitted: tuple[Any, Any, list[str]]) -> None:
    pipeline, _, _ = fitted
    analyzer = pipeline.named_steps["features"].transformer_list[0][1].build_analyzer()
    for text in [*UNICODE, *EMOJI, *NOTHING_TO_TOKENISE, "Not GOOD, not good at all!"]:
        assert scorer.word_ngrams(text, 2) == analyzer(text), text


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


def reference_features(rules: scorer.LexiconRules, text: str) -> list[float]:
    """The lexicon features the slow, obvious way: every rated word through the full rules."""
    tokens = rules.tokens(text)
    rated = {word for word in rules.valences if word not in rules.boosters}
    every: list[float] = []
    compounds: list[float] = []
    start = 0
    for end in [*(i for i, token in enumerate(tokens) if token in scorer.ENDS), len(tokens)]:
        words = tokens[start:end]
        values = [(i, rules._valence(tokens, i, start)) for i in range(start, end) if tokens[i] in rated]
        if "but" in words:
            cut = start + words.index("but")
            values = [(i, value * (0.5 if i < cut else 1.5)) for i, value in values]
        if words:
            every.extend(value for _, value in values)
            total = sum(value for _, value in values)
            compounds.append(total / (total * total + 15) ** 0.5)
        start = end + 1
    count = sum(1 for token in tokens if token not in scorer.ENDS)
    if not count:
        return [0.0] * len(scorer.LEXICON_FEATURES)
    positive = sum(value + 1 for value in every if value > 0)
    negative = sum(1 - value for value in every if value < 0)
    weight = positive + negative + count - sum(1 for value in every if value != 0)
    total = sum(every)
    return [
        total / (total * total + 15) ** 0.5,
        positive / weight,
        negative / weight,
        total / count,
        sum(compounds) / len(compounds),
        min(compounds),
    ]


def test_lexicon_features_equal_the_rules_applied_word_by_word() -> None:
    rules = train.load_lexicon()
    rng = random.Random(5)
    words = [*list(rules.valences)[:2000:7], *NEGATIONS, *BOOSTERS, "no", "least", "at", "but", ".", "!", "?"]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 40))) for _ in range(3000)]
    for text in texts:
        assert rules.features(text) == pytest.approx(reference_features(rules, text), abs=1e-12), text
