"""preprocess.py: every rejected input names file, line and problem; odd but valid input passes."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from steps import preprocess

STEPS = Path(preprocess.__file__).resolve().parent
HEADER = b"review_text,sentiment\n"
GOOD = HEADER + b"great stuff,1\nawful stuff,0\n"


def stage(base: Path, train: bytes | None, test: bytes | None = GOOD) -> Path:
    """Lay out the Processing input folder; None leaves a file out."""
    data = base / "processing" / "input" / "data"
    data.mkdir(parents=True)
    for name, content in (("train.csv", train), ("test.csv", test)):
        if content is not None:
            (data / name).write_bytes(content)
    return base


def run_main(base: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run preprocess.main() in-process against base; return its exit status."""
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    try:
        preprocess.main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def read_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def message(base: Path) -> str:
    return (base / "output" / "message").read_text(encoding="utf-8")


BAD_TRAIN = [
    pytest.param(None, ["train.csv", "file not found"], id="missing-file"),
    pytest.param(b"", ["train.csv", "the file is empty (0 bytes)"], id="empty-file"),
    pytest.param(b" \n\n", ["train.csv", "the file is empty", "only whitespace"], id="blank-file"),
    pytest.param(
        HEADER, ["train.csv", "no data rows", "only the header (line 1)"], id="header-only"
    ),
    pytest.param(
        b"review_text,label\nnice,1\n",
        [
            "train.csv: line 1",
            "missing column 'sentiment'",
            "found columns ['review_text', 'label']",
        ],
        id="missing-column",
    ),
    pytest.param(
        b"review_text;sentiment\nnice;1\n",
        [
            "train.csv: line 1",
            "missing columns 'review_text', 'sentiment'",
            "semicolon (;)-separated",
        ],
        id="semicolon-delimiter",
    ),
    pytest.param(
        b"review_text\tsentiment\nnice\t1\n",
        ["train.csv: line 1", "missing column", "tab-separated"],
        id="tab-delimiter",
    ),
    pytest.param(
        GOOD + b"so so,2\n",
        ["train.csv: line 4", "sentiment must be 0 or 1, found '2'"],
        id="label-2",
    ),
    pytest.param(
        GOOD + b"meh,-1\n", ["train.csv: line 4", "must be 0 or 1, found '-1'"], id="label-minus-1"
    ),
    pytest.param(
        GOOD + b"nice,pos\n", ["train.csv: line 4", "must be 0 or 1, found 'pos'"], id="label-pos"
    ),
    pytest.param(
        GOOD + b"nice,\n",
        ["train.csv: line 4", "must be 0 or 1, found an empty value"],
        id="label-empty",
    ),
    pytest.param(
        HEADER + b",1\nnice,1\n",
        ["train.csv: line 2", "review_text is missing (empty)"],
        id="missing-text",
    ),
    pytest.param(
        GOOD + b'"  \t ",0\n',
        ["train.csv: line 4", "review_text contains only whitespace"],
        id="whitespace-text",
    ),
    pytest.param(
        GOOD + b"caf\xe9 was nice,1\n",
        ["train.csv: line 4", "not valid UTF-8", "byte 0xe9", "byte offset 53"],
        id="not-utf8",
    ),
    pytest.param(
        GOOD + HEADER + b"fine,1\n",
        ["train.csv: line 4", "header row is repeated"],
        id="repeated-header",
    ),
    pytest.param(
        GOOD + b"x" * 20_001 + b",1\n",
        ["train.csv: line 4", "20,001 characters", "the limit is 20,000"],
        id="too-long",
    ),
    pytest.param(
        HEADER + b"good,1\nfine,1\n",
        ["train.csv", "every data row has sentiment 1", "both classes"],
        id="single-class",
    ),
    pytest.param(
        GOOD + b"good, really good,1\n",
        ["train.csv: line 4", "found 3 fields but the header has 2"],
        id="unquoted-comma",
    ),
    pytest.param(
        GOOD + b'"never closed,1\nnext,0\n',
        ["train.csv: line 4", "malformed CSV"],
        id="unclosed-quote",
    ),
]


@pytest.mark.parametrize(("train", "expected"), BAD_TRAIN)
def test_bad_train_file_fails_with_precise_message(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    train: bytes | None,
    expected: list[str],
) -> None:
    base = stage(tmp_path, train)
    assert run_main(base, monkeypatch) == 1
    text = message(base)
    for fragment in expected:
        assert fragment in text
    assert "test.csv" not in text
    assert text in capsys.readouterr().err
    assert not (base / "processing" / "train").exists()


def test_line_numbers_count_physical_lines_after_quoted_newlines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = b'\xef\xbb\xbfreview_text,sentiment\r\n"first line\r\nsecond line",1\r\nok,0\r\nbad,7\r\n'
    base = stage(tmp_path, raw)
    assert run_main(base, monkeypatch) == 1
    assert message(base).startswith("train.csv: line 5: sentiment must be 0 or 1, found '7'")


def test_bad_test_file_is_named_and_single_class_test_is_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = stage(tmp_path, GOOD, HEADER + b"fine,1\nbad,x\n")
    assert run_main(base, monkeypatch) == 1
    assert message(base) == "test.csv: line 3: sentiment must be 0 or 1, found 'x'"

    other = stage(tmp_path / "one-class", GOOD, HEADER + b"fine,1\nlovely,1\n")
    assert run_main(other, monkeypatch) == 0
    assert read_rows(other / "processing" / "test" / "test.csv")[1:] == [
        ["fine", "1"],
        ["lovely", "1"],
    ]


def test_first_problem_of_each_file_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = stage(tmp_path, GOOD + b"a,5\nb,6\n", None)
    assert run_main(base, monkeypatch) == 1
    lines = message(base).splitlines()
    assert lines[0] == "train.csv: line 4: sentiment must be 0 or 1, found '5'"
    assert lines[1].startswith("test.csv: file not found")
    assert len(lines) == 2


def test_odd_but_valid_input_is_cleaned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = (
        "\ufeffid, review_text ,sentiment,source\r\n"
        '7,"Great, really great\r\nproduct",1,web\r\n'
        "8,  too   many\tspaces  , 0 ,app\r\n"
        '9,"Great, really great\r\nproduct",1,web\r\n'
        "\r\n"
        "10,Café crème was lovely,1,shop\r\n"
    ).encode()
    base = stage(tmp_path, raw)
    assert run_main(base, monkeypatch) == 0
    assert read_rows(base / "processing" / "train" / "train.csv") == [
        ["review_text", "sentiment"],
        ["Great, really great product", "1"],
        ["too many spaces", "0"],
        ["Café crème was lovely", "1"],
    ]
    out = capsys.readouterr().out
    assert "train.csv: ignoring extra columns ['id', 'source']" in out
    assert "train.csv: dropped 1 exact duplicate rows" in out
    assert read_rows(base / "processing" / "test" / "test.csv") == [
        ["review_text", "sentiment"],
        ["great stuff", "1"],
        ["awful stuff", "0"],
    ]
    assert not (base / "output" / "message").exists()


def test_overlap_between_train_and_test_is_warned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base = stage(tmp_path, GOOD, HEADER + b"great   stuff,1\n")
    assert run_main(base, monkeypatch) == 0
    assert "warning: 1 test reviews also appear in train.csv" in capsys.readouterr().out


def standalone_copy(tmp_path: Path) -> Path:
    """Copy the script alone, as a Processing job ships it, so package imports would fail."""
    script = tmp_path / "code" / "preprocess.py"
    script.parent.mkdir()
    shutil.copyfile(STEPS / "preprocess.py", script)
    return script


def run_script(script: Path, base: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base)}
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_script_run_as_subprocess_fails_with_exit_1_and_message(tmp_path: Path) -> None:
    base = stage(tmp_path / "ml", GOOD + b"nice,maybe\n")
    result = run_script(Path("steps") / "preprocess.py", base, cwd=STEPS.parent)
    assert result.returncode == 1
    expected = "train.csv: line 4: sentiment must be 0 or 1, found 'maybe'"
    assert message(base) == expected
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_standalone_script_succeeds(tmp_path: Path) -> None:
    base = stage(tmp_path / "ml", GOOD)
    script = standalone_copy(tmp_path)
    result = run_script(script, base, cwd=script.parent)
    assert result.returncode == 0, result.stderr
    assert read_rows(base / "processing" / "train" / "train.csv")[1:] == [
        ["great stuff", "1"],
        ["awful stuff", "0"],
    ]


# --- streaming: what reading the file a chunk at a time must not change -----------------------

SPLIT_CHARACTERS = (
    "\ufeffreview_text,sentiment\r\n"
    '"Café\r\ncrème, 5 €",1\r'
    "naïve 😀 fun,0\n"
    "日本語のレビュー,1\r\n"
    '"  Café\tcrème,  5 € ",1\r\n'
).encode()


@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 5, 7, 64])
def test_characters_and_line_breaks_split_between_chunks_are_read_whole(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    chunk: int,
) -> None:
    monkeypatch.setattr(preprocess, "CHUNK_BYTES", chunk)
    base = stage(tmp_path, SPLIT_CHARACTERS)
    assert run_main(base, monkeypatch) == 0
    assert read_rows(base / "processing" / "train" / "train.csv")[1:] == [
        ["Café crème, 5 €", "1"],
        ["naïve 😀 fun", "0"],
        ["日本語のレビュー", "1"],
    ]
    assert "train.csv: dropped 1 exact duplicate rows" in capsys.readouterr().out


@pytest.mark.parametrize("chunk", [1, 3, 4, 64])
def test_line_numbers_stay_right_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(preprocess, "CHUNK_BYTES", chunk)
    base = stage(tmp_path, SPLIT_CHARACTERS + b"\r\n\r\n\xc3\xa9t\xc3\xa9,3\r\n")
    assert run_main(base, monkeypatch) == 1
    assert message(base) == "train.csv: line 9: sentiment must be 0 or 1, found '3'"


def numbered_reviews(count: int) -> bytes:
    return b"".join(f"review number {i} is fine,{i % 2}\n".encode() for i in range(count))


def test_bad_byte_far_into_the_file_reports_its_line_and_offset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = HEADER + numbered_reviews(20_000)
    raw = before + b"caf\xe9 au lait,1\n" + numbered_reviews(10)
    assert len(before) > 2 * preprocess.CHUNK_BYTES
    base = stage(tmp_path, raw)
    assert run_main(base, monkeypatch) == 1
    assert message(base) == (
        f"train.csv: line 20002: not valid UTF-8: byte 0xe9 at byte offset {len(before) + 3} of the "
        "file (invalid continuation byte); save the file as UTF-8"
    )


def whole_file_message(raw: bytes) -> str:
    """What decoding the whole file at once reports: the reference for the streamed decoder."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = len(re.findall(rb"\r\n|\r|\n", raw[: exc.start])) + 1
        return (
            f"train.csv: line {line}: not valid UTF-8: byte 0x{raw[exc.start]:02x} at byte offset "
            f"{exc.start} of the file ({exc.reason}); save the file as UTF-8"
        )
    raise AssertionError("the file is valid UTF-8")


BAD_BYTES = [
    pytest.param(b"\xef\xbb\xbf" + HEADER + b"r\xc3\xa9sum\xc3\xa9,1\r\nna\xefve,0\r\n", id="after-bom"),
    pytest.param(HEADER + b"a,1\r\n\r\rcaf\xc3\n,1\n", id="cut-short-character"),
    pytest.param(HEADER + b'"two\r\nlines \xf0\x9f\x98\x80",1\r\n\xff,0\n', id="after-emoji"),
    pytest.param(HEADER + b"ends inside a character,1\n\xe2\x82", id="truncated-at-end"),
]


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8, 1 << 18])
@pytest.mark.parametrize("raw", BAD_BYTES)
def test_bad_utf8_is_located_as_whole_file_decoding_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw: bytes, chunk: int
) -> None:
    monkeypatch.setattr(preprocess, "CHUNK_BYTES", chunk)
    base = stage(tmp_path, raw)
    assert run_main(base, monkeypatch) == 1
    assert message(base) == whole_file_message(raw)


def test_duplicates_far_apart_are_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(preprocess, "CHUNK_BYTES", 64)
    # The first review again, spelled differently, and the second one with the other label.
    again = b'"review   number 0\r\nis fine",0\nreview number 1 is fine,0\n'
    raw = HEADER + numbered_reviews(3_000) + again
    base = stage(tmp_path, raw)
    assert run_main(base, monkeypatch) == 0
    rows = read_rows(base / "processing" / "train" / "train.csv")[1:]
    assert len(rows) == 3_001
    assert rows[0] == ["review number 0 is fine", "0"]
    assert rows[-1] == ["review number 1 is fine", "0"]
    out = capsys.readouterr().out
    assert "train.csv: 3002 valid rows" in out
    assert "train.csv: dropped 1 exact duplicate rows" in out
    assert f"wrote 3001 rows to {base / 'processing' / 'train' / 'train.csv'}" in out


def test_failed_run_leaves_no_output_and_no_wrote_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base = stage(tmp_path / "fresh", GOOD, GOOD + b"bad,x\n")
    assert run_main(base, monkeypatch) == 1
    assert not (base / "processing" / "train").exists()
    assert not (base / "processing" / "test").exists()
    assert "wrote" not in capsys.readouterr().out

    # SageMaker creates the output folders before the job starts: they stay, emptied.
    made = stage(tmp_path / "made", GOOD, GOOD + b"bad,x\n")
    for split in ("train", "test"):
        (made / "processing" / split).mkdir()
    assert run_main(made, monkeypatch) == 1
    for split in ("train", "test"):
        assert list((made / "processing" / split).iterdir()) == []


PEAK_RSS_OF_CHILD = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n"
    "sys.exit(code)\n"
)


def write_big_train(path: Path, size: int) -> int:
    """A train.csv of about `size` bytes of distinct 4,000-character reviews; returns its size."""
    filler = "the kettle boils fast and pours without dripping, " * 80
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("review_text,sentiment\n")
        row = 0
        while handle.tell() < size:
            handle.write("".join(f'"{row + i} {filler}",{(row + i) % 2}\n' for i in range(1_000)))
            row += 1_000
    return path.stat().st_size


def test_peak_memory_stays_well_below_the_file_size(tmp_path: Path) -> None:
    base = stage(tmp_path / "ml", None)
    size = write_big_train(base / "processing" / "input" / "data" / "train.csv", 80 * 2**20)
    # Measured from a small wrapper process: RUSAGE_CHILDREN then sees no earlier children, and a
    # child's ru_maxrss starts from its parent's RSS at fork, which pytest's would inflate.
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_OF_CHILD, sys.executable, str(STEPS / "preprocess.py")],
        env={**os.environ, "SAGEMAKER_BASE_DIR": str(base)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    peak = int(result.stdout)
    assert peak < size / 2, f"peak RSS {peak / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB file"
    assert (base / "processing" / "train" / "train.csv").stat().st_size > size * 0.9


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ({"ProcessingInputs": [{"InputName": "raw", "S3Input": {
            "S3Uri": "s3://bucket/reviews/2026-12", "LocalPath": "{data}"}}]}, True),
        ({"ProcessingInputs": [{"InputName": "raw", "S3Input": {
            "S3Uri": "s3://bucket/reviews/2026-12", "LocalPath": "/somewhere/else"}}]}, False),
        ({"ProcessingInputs": "not a list"}, False),
        (None, False),  # run outside a Processing job: no config file
    ],
)
def test_a_missing_file_names_the_s3_folder_it_was_staged_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: dict[str, object] | None, named: bool
) -> None:
    """`train.csv: file not found` alone leaves the data owner asking where; the job's own request
    (SageMaker's /opt/ml/config/processingjobconfig.json) names the S3 folder it has to be in."""
    base = stage(tmp_path, None)
    data = base / "processing" / "input" / "data"
    if config is not None:
        (base / "config").mkdir()
        text = json.dumps(config).replace("{data}", str(data))
        (base / "config" / "processingjobconfig.json").write_text(text)
    assert run_main(base, monkeypatch) == 1
    expected = f"train.csv: file not found (expected {data / 'train.csv'}"
    assert message(base) == expected + (", staged from s3://bucket/reviews/2026-12)" if named else ")")
