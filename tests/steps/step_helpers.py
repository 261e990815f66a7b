"""Test data and helpers shared by the step-script tests."""

from __future__ import annotations

import csv
import tarfile
from pathlib import Path

from pipelines.code_bundle import CodeBundle
from steps import train

POSITIVE = [
    "great product, works perfectly",
    "I love this blender, excellent quality",
    "fantastic value and fast delivery",
    "wonderful service, very happy",
    "excellent battery life, love it",
    "the best purchase I made this year",
    "amazing sound, great headphones",
    "really happy with this great kettle",
    "superb build quality and lovely design",
    "works great, highly recommend",
    "excellent fit and very comfortable",
    "love the colour, great shoes",
    "happy customer, fantastic support",
    "brilliant little gadget, love it",
    "great price and excellent performance",
    "perfect gift, my son loves it",
    "wonderful smell, happy with this soap",
    "very good, works as described, great",
    "lovely fabric and excellent stitching",
    "great camera, amazing photos",
]
NEGATIVE = [
    "terrible product, broke after a day",
    "awful quality, very disappointed",
    "waste of money, do not buy",
    "the worst blender I ever owned",
    "poor battery life, terrible",
    "arrived broken and support was useless",
    "horrible sound, awful headphones",
    "disappointed, the kettle leaks",
    "cheap plastic and poor design",
    "stopped working, waste of money",
    "bad fit and very uncomfortable",
    "ugly colour, terrible shoes",
    "angry customer, useless support",
    "flimsy gadget, broke immediately",
    "overpriced and poor performance",
    "awful gift, returned it",
    "horrible smell, disappointed with this soap",
    "does not work as described, bad",
    "poor fabric and terrible stitching",
    "blurry camera, awful photos",
]
REVIEWS: list[tuple[str, int]] = [(text, 1) for text in POSITIVE] + [(text, 0) for text in NEGATIVE]


def write_reviews(path: Path, rows: list[tuple[str, int]]) -> Path:
    """Write rows as a clean review_text,sentiment CSV (what preprocess hands to training)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["review_text", "sentiment"])
        writer.writerows(rows)
    return path


def train_model(train_file: Path, model_dir: Path, argv: list[str] | None = None) -> Path:
    """Train through train.run, the same code path main() takes."""
    train.run(train.parse_args(argv or []), train_file, model_dir)
    return model_dir


def make_tarball(model_dir: Path, archive: Path) -> Path:
    """Pack a model dir the way SageMaker does: its files at the archive root."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(model_dir)), recursive=False)
    return archive


def write_library(base: Path) -> Path:
    """Lay out the library folder below a job's base dir as a Processing job gets it."""
    lib = base / "processing" / "input" / "lib"
    for name, data in CodeBundle().library.items():
        (lib / name).parent.mkdir(parents=True, exist_ok=True)
        (lib / name).write_bytes(data)
    return lib
