"""Prototype fixes for files this benchmark does not own, measured without editing them.

``build(fixes)`` copies the ``pipelines`` package to ``benchmarks/.cache/proto/<name>/pipelines``
and applies text patches to the copy (each patch must match exactly once, so a patch that no longer
fits the source fails loudly instead of measuring the wrong thing). Servers started with that
directory first on PYTHONPATH (and as their cwd) run the patched code; hosting.py's REPO_ROOT
then points at the copy, so model servers it spawns are the patched ones too.

    python benchmarks/prototype.py --diff     # print the patches as unified diffs

The patches are what the report proposes for pipelines/local/{server,hosting,model_server}.py.
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CACHE, REPO

# name -> (file, old, new). Each is one independent fix.
PATCHES: dict[str, list[tuple[str, str, str]]] = {
    # (Landed in 656cb6f, measured here before it did: the runtime server now disables Nagle via
    # json_http.JsonRequestHandler; it answered every invocation ~40 ms late without it.)
    # 1. The accept backlog of the runtime server is socketserver's default of 5: a burst of new
    #    keep-alive connections (32 clients connecting at once) overflows it and the kernel drops
    #    SYNs, which the client retries after 1 s. The pool to the model server kept only 16 idle
    #    connections, so above 16 concurrent invocations every extra one opened (and the model
    #    server spawned a thread for) a new TCP connection.
    "backlog-pool": [
        (
            "pipelines/local/server.py",
            """class LocalServer(ThreadingHTTPServer):
    daemon_threads = True
""",
            """class LocalServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
""",
        ),
        ("pipelines/local/hosting.py", "MAX_IDLE_CONNECTIONS = 16\n", "MAX_IDLE_CONNECTIONS = 128\n"),
    ],
    # 2. One model server process serves on one core (the GIL): pre-fork N workers after the model
    #    is loaded (copy-on-write, so the model is in memory once until pages are touched) that
    #    accept on the same listening socket, as gunicorn does. SAGEMAKER_MODEL_SERVER_WORKERS is the
    #    variable the SageMaker serving images read; default: one per core.
    "workers": [
        (
            "pipelines/local/model_server.py",
            """def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        app = ModelApp.load(args.model_dir)
    except BaseException as exc:
        traceback.print_exc(file=sys.stderr)
        sys.stderr.write(f"model server: failed to load the model from {args.model_dir}: {exc}\\n")
        return 1
    server = ModelHTTPServer((HOST, args.port), app)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    serve_until_signalled(server)
    return 0
""",
            '''def worker_count() -> int:
    value = os.environ.get("SAGEMAKER_MODEL_SERVER_WORKERS", "")
    return max(1, int(value)) if value.strip().isdigit() else (os.cpu_count() or 1)


def serve_workers(server: ModelHTTPServer, workers: int) -> int:
    """Fork ``workers`` children that serve the already-bound socket; the parent only forwards
    SIGTERM/SIGINT to them and waits (each child drains its own in-flight requests)."""
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            try:
                if sys.platform.startswith("linux"):  # PDEATHSIG is not inherited by fork
                    import ctypes

                    ctypes.CDLL(None).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
                serve_until_signalled(server)
            finally:
                os._exit(0)
        children.append(pid)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(0.5):
        if any(os.waitpid(pid, os.WNOHANG)[0] for pid in children):
            break  # a worker died: stop the rest, hosting sees the exit and reports it
    for pid in children:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for pid in children:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    server.server_close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        app = ModelApp.load(args.model_dir)
    except BaseException as exc:
        traceback.print_exc(file=sys.stderr)
        sys.stderr.write(f"model server: failed to load the model from {args.model_dir}: {exc}\\n")
        return 1
    server = ModelHTTPServer((HOST, args.port), app)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    workers = worker_count()
    if workers > 1 and hasattr(os, "fork"):
        return serve_workers(server, workers)
    serve_until_signalled(server)
    return 0
''',
        )
    ],
}


# Fixes for the step scripts (steps/), applied to a copy by build_steps(); scale.py --steps-dir.
STEP_PATCHES: dict[str, list[tuple[str, str, str]]] = {
    # train.py scored the training set through the whole pipeline just to print the training
    # accuracy: a second TF-IDF pass over every review, about a third of the step's time. Fit the
    # two steps by hand (exactly what Pipeline.fit does) and score the matrix already built.
    "train-one-pass": [
        (
            "steps/train.py",
            """    pipeline = build_pipeline(args)
    pipeline.fit(texts, labels)
    print(f"vocabulary size {len(pipeline.named_steps['tfidf'].vocabulary_)}")
    print(f"training accuracy {pipeline.score(texts, labels):.4f}")
""",
            """    pipeline = build_pipeline(args)
    vectorizer, classifier = pipeline.named_steps["tfidf"], pipeline.named_steps["classifier"]
    features = vectorizer.fit_transform(texts)  # Pipeline.fit does this, then fits the classifier
    classifier.fit(features, labels)
    print(f"vocabulary size {len(vectorizer.vocabulary_)}")
    print(f"training accuracy {classifier.score(features, labels):.4f}")
""",
        )
    ],
}


def build_steps(fixes: list[str]) -> Path:
    """A patched copy of steps/; returns the directory holding the scripts."""
    root = CACHE / "proto" / ("steps-" + "+".join(fixes))
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(REPO / "steps", root / "steps", ignore=shutil.ignore_patterns("__pycache__"))
    apply_patches(root, fixes, STEP_PATCHES)
    return root / "steps"


def apply_patches(root: Path, fixes: list[str], patches: dict[str, list[tuple[str, str, str]]]) -> None:
    """Apply each fix's text patches under root; a fix already in the source counts as applied."""
    for fix in fixes:
        for relative, old, new in patches[fix]:
            path = root / relative
            text = path.read_text()
            if new in text:
                continue
            if text.count(old) != 1:
                raise RuntimeError(f"patch {fix} no longer fits {relative}: the source changed")
            path.write_text(text.replace(old, new))


def build(fixes: list[str], name: str | None = None) -> Path:
    """A patched copy of the package; returns the directory to put first on PYTHONPATH."""
    root = CACHE / "proto" / (name or "+".join(fixes) or "baseline")
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(REPO / "pipelines", root / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    apply_patches(root, fixes, PATCHES)
    return root


def diff(fixes: list[str]) -> str:
    out = []
    for fix in fixes:
        for relative, old, new in {**PATCHES, **STEP_PATCHES}[fix]:
            source = (REPO / relative).read_text()
            patched = source.replace(old, new)
            out.append(
                f"# fix: {fix}\n"
                + "".join(
                    difflib.unified_diff(
                        source.splitlines(keepends=True),
                        patched.splitlines(keepends=True),
                        f"a/{relative}",
                        f"b/{relative}",
                        n=2,
                    )
                )
            )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--diff", action="store_true")
    parser.add_argument("fixes", nargs="*", default=[*PATCHES, *STEP_PATCHES])
    args = parser.parse_args()
    if args.diff:
        print(diff(args.fixes))
    elif all(fix in STEP_PATCHES for fix in args.fixes):
        print(build_steps(args.fixes))
    else:
        print(build([fix for fix in args.fixes if fix in PATCHES]))


if __name__ == "__main__":
    main()
