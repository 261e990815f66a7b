"""Deterministic synthetic reviews for the benchmarks: a vocabulary of positive, negative and
neutral words, review lengths drawn from a log-normal (median about 36 words, a long tail up to
about 1,000 words, as in Amazon review corpora), a little label noise, some punctuation (so CSV
quoting is exercised) and a few exact and whitespace-variant duplicates (so preprocess has work).

    python benchmarks/reviews.py --rows 1000 --out DIR     # writes DIR/train.csv, DIR/test.csv
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np

POSITIVE = (  # noqa: SIM905
    "great excellent love loved perfect amazing wonderful fantastic awesome happy best recommend "
    "recommended works reliable sturdy comfortable beautiful fast easy impressive superb solid "
    "brilliant delighted pleased outstanding favorite flawless smooth value quality gorgeous durable "
    "handy nice incredible terrific satisfied exceeded stellar"
).split()
NEGATIVE = (  # noqa: SIM905
    "terrible awful hate hated broken poor worst useless disappointed disappointing cheap flimsy "
    "waste refund returned junk defective slow horrible bad annoying stopped failed unreliable "
    "mediocre overpriced leaking cracked noisy misleading frustrating garbage rubbish faulty ripped "
    "dead wobbly inferior regret unusable"
).split()
NEUTRAL = (  # noqa: SIM905
    "the a an and or but it this that is was were be been product item order package box phone case "
    "cable charger battery screen kitchen shoes shirt size color price delivery shipping seller "
    "amazon week month day year after before with without for from to in on at my our their i we they "
    "you use used using bought purchased got received arrived looks feels fits came came with first "
    "second time times one two three again still just really very quite pretty some much more less "
    "than also too bit lot when while because so if then there here instructions setup install manual "
    "button light water sound daughter son wife husband gift work home travel office car camera "
    "laptop book toy"
).split()
PUNCTUATION = np.array([""] * 16 + [",", ".", ",", "!"])  # 20 % of words end in punctuation


TAIL_WORDS = 50_000  # made-up product names, brands, typos: a real vocabulary's long tail
TAIL_SHARE = 0.12  # share of neutral-slot words drawn from the tail (Zipf-distributed)


def _tail() -> list[str]:
    """Deterministic pseudo-words such as 'kavoru' or 'zexi2': pronounceable, all distinct."""
    rng = np.random.default_rng(1234)
    onsets = [*"bcdfghjklmnprstvwxz", "br", "ch", "st", "tr", "pl", "sh"]
    vowels = [*"aeiou", "ai", "ou"]
    seen: set[str] = set()
    words: list[str] = []
    while len(words) < TAIL_WORDS:
        syllables = int(rng.integers(2, 4))
        word = "".join(
            onsets[int(rng.integers(len(onsets)))] + vowels[int(rng.integers(len(vowels)))]
            for _ in range(syllables)
        )
        if rng.random() < 0.15:
            word += str(int(rng.integers(2, 100)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def _vocabulary() -> tuple[np.ndarray, int, int]:
    words = np.array(NEUTRAL + POSITIVE + NEGATIVE + _tail(), dtype=object)
    return words, len(NEUTRAL), len(NEUTRAL) + len(POSITIVE)


def generate(rows: int, seed: int = 42, chunk: int = 100_000) -> Iterator[tuple[str, int]]:
    """Yield ``rows`` (text, label) pairs, the same ones for the same seed, in bounded memory."""
    rng = np.random.default_rng(seed)
    words, first_pos, first_neg = _vocabulary()
    first_tail = first_neg + len(NEGATIVE)
    n_neutral, n_pos, n_neg = first_pos, first_neg - first_pos, len(NEGATIVE)
    tail_rank = np.arange(1, TAIL_WORDS + 1, dtype=float)
    tail_p = (1 / tail_rank) / (1 / tail_rank).sum()  # Zipf: a few common, most very rare
    produced = 0
    previous: list[str] = []
    while produced < rows:
        size = min(chunk, rows - produced)
        labels = (rng.random(size) < 0.55).astype(np.int64)
        lengths = np.clip(rng.lognormal(mean=3.6, sigma=0.75, size=size), 3, 1000).astype(np.int64)
        total = int(lengths.sum())
        review_of_word = np.repeat(np.arange(size), lengths)
        kind = rng.random(total)
        positive_review = labels[review_of_word] == 1
        # 70 % neutral words; of the rest, 80 % carry the review's own sentiment.
        own = np.where(positive_review, 1, 2)
        other = np.where(positive_review, 2, 1)
        category = np.where(kind < 0.70, 0, np.where(kind < 0.94, own, other))
        index = np.empty(total, dtype=np.int64)
        for value, offset, count in ((0, 0, n_neutral), (1, first_pos, n_pos), (2, first_neg, n_neg)):
            mask = category == value
            index[mask] = offset + rng.integers(0, count, int(mask.sum()))
        tail = (category == 0) & (rng.random(total) < TAIL_SHARE)
        index[tail] = first_tail + rng.choice(TAIL_WORDS, size=int(tail.sum()), p=tail_p)
        tokens = words[index]
        punct = PUNCTUATION[rng.integers(0, len(PUNCTUATION), total)]
        tokens = tokens + punct
        noise = rng.random(size) < 0.08  # annotators disagree
        labels = np.where(noise, 1 - labels, labels)
        duplicate = rng.random(size) < 0.01
        ends = np.cumsum(lengths)
        starts = ends - lengths
        token_list = tokens.tolist()
        for i in range(size):
            if duplicate[i] and previous:
                text = previous[int(rng.integers(0, len(previous)))]
                if i % 2:
                    text = "  " + text.replace(" ", "   ", 1) + " "  # normalises to a duplicate
            else:
                text = " ".join(token_list[starts[i] : ends[i]])
                text = text[0].upper() + text[1:]
                if len(previous) < 1000:
                    previous.append(text)
            yield text, int(labels[i])
        produced += size


def write_csv(path: Path, rows: int, seed: int) -> int:
    """Write ``rows`` reviews as review_text,sentiment; returns the file size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["review_text", "sentiment"])
        writer.writerows(generate(rows, seed))
    return path.stat().st_size


def sample_texts(count: int, seed: int = 7) -> list[str]:
    """``count`` review texts for request payloads."""
    return [text for text, _ in generate(count, seed, chunk=max(count, 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--test-rows", type=int, default=None)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    write_csv(args.out / "train.csv", args.rows, args.seed)
    write_csv(args.out / "test.csv", args.test_rows or max(args.rows // 5, 10), args.seed + 1)


if __name__ == "__main__":
    main()
