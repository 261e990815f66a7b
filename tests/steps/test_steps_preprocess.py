"""preprocess.py: every rejected input names file, line and problem; odd but valid input passes."""

from __future__ import annotations

import csv
import os
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
