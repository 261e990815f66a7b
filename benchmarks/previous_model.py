"""The previous model as a servable artifact, for the endpoint benchmark's "before" rows: TF-IDF +
logistic regression (C = 4) as steps/train.py fitted it before the lexicon features, trained on
data/train.csv, pickled with joblib and served by previous_inference.py (scikit-learn's
predict_proba on every request).
"""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import joblib
import pandas as pd
from common import BENCH, REPO
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline


def previous_pipeline() -> Pipeline:
    """TF-IDF word 1-2-grams + logistic regression, C = 4 (steps/train.py before the lexicon)."""
    vectorizer = TfidfVectorizer(
        ngram_range=(1, 2), max_features=20000, min_df=1, sublinear_tf=True, strip_accents="unicode"
    )
    classifier = LogisticRegression(C=4.0, max_iter=1000, random_state=42)
    return Pipeline([("tfidf", vectorizer), ("classifier", classifier)])


def build_previous_archive(out: Path, train_csv: Path = REPO / "data" / "train.csv") -> Path:
    """model.tar.gz holding model.joblib and code/ (previous_inference.py as inference.py, the
    current steps/inference.py as handlers.py, steps/scorer.py)."""
    frame = pd.read_csv(train_csv, dtype=str, keep_default_na=False)
    pipeline = previous_pipeline().fit(frame["review_text"].tolist(), frame["sentiment"].astype(int))
    root = out / "previous-model"
    if root.exists():
        shutil.rmtree(root)
    (root / "code").mkdir(parents=True)
    joblib.dump(pipeline, root / "model.joblib")
    shutil.copyfile(BENCH / "previous_inference.py", root / "code" / "inference.py")
    shutil.copyfile(REPO / "steps" / "inference.py", root / "code" / "handlers.py")
    shutil.copyfile(REPO / "steps" / "scorer.py", root / "code" / "scorer.py")
    archive = out / "previous-model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(root.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(root)), recursive=False)
    return archive
