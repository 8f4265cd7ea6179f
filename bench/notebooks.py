"""Generates notebooks/benchmarks/NN_name.ipynb from bench/programs/NN_name.py.

`python -m bench.notebooks` writes them; `python -m bench.notebooks --check`
exits 1 when a committed notebook differs from what the program would give
(so they never drift). Each notebook: a title cell from the program's
docstring, a cell making the repository importable, the program's code split
at its top-level functions and classes, and a last cell that runs `main` with a
few iterations. Outputs are empty: the committed notebooks carry no results.
"""

import argparse
import ast
import json
import sys

from bench.registry import REPO_ROOT, programs

NOTEBOOK_DIR = REPO_ROOT / "notebooks" / "benchmarks"
NOTEBOOK_ITERS = 10

SETUP_CELL = """\
# The programs import bench.kit from the repository; the notebook lives in notebooks/benchmarks/.
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.getcwd(), "..", "..")))"""


def notebook_for(script):
    """The notebook (a JSON-ready dict) of one program script."""
    source = script.read_text()
    tree = ast.parse(source)
    docstring = ast.get_docstring(tree) or script.stem
    title, _, body = docstring.partition("\n")
    intro = (
        f"# {script.stem}: {title}\n\n{body.strip()}\n\n"
        f"Generated from `bench/programs/{script.name}` by `python -m bench.notebooks`; edit the program, "
        "not this notebook. The same program runs in the benchmark suite (`python -m bench`)."
    )
    cells = [_markdown(intro), _code(SETUP_CELL)]
    cells += [_code(chunk) for chunk in _code_chunks(source, tree)]
    cells.append(_code(f'main(["--iters", "{NOTEBOOK_ITERS}"])'))
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Terra (PyTorch)", "language": "python", "name": "terra"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _code_chunks(source, tree):
    """The module's code without its docstring and `if __name__ == "__main__"` guard,
    cut before each top-level function or class (decorators and comments included)."""
    lines = source.splitlines()
    body = [node for node in tree.body if not _is_docstring(node) and not _is_main_guard(node)]
    starts = [_first_line(node, lines) for node in body]
    cut_points = [s for node, s in zip(body, starts) if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    boundaries = sorted(set([starts[0]] + cut_points))
    ends = boundaries[1:] + [body[-1].end_lineno + 1]
    chunks = []
    for begin, end in zip(boundaries, ends):
        text = "\n".join(lines[begin - 1 : end - 1]).strip("\n")
        if text.strip():
            chunks.append(text)
    return chunks


def _first_line(node, lines):
    """First line of a statement, counting its decorators and the comments right above it."""
    line = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    while line > 1 and lines[line - 2].lstrip().startswith("#"):
        line -= 1
    return line


def _is_docstring(node):
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _is_main_guard(node):
    return isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)


def _markdown(text):
    return {"cell_type": "markdown", "id": None, "metadata": {}, "source": _source_lines(text)}


def _code(text):
    return {
        "cell_type": "code",
        "execution_count": None,
        "id": None,
        "metadata": {},
        "outputs": [],
        "source": _source_lines(text),
    }


def _source_lines(text):
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + [lines[-1]]


def render(notebook, stem):
    """The notebook's file text; cell ids are fixed from the program name and index."""
    for index, cell in enumerate(notebook["cells"]):
        cell["id"] = f"{stem.replace('_', '-')}-{index}"
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def expected_files():
    """{notebook path: text} for every program."""
    files = {}
    for script in programs().values():
        files[NOTEBOOK_DIR / f"{script.stem}.ipynb"] = render(notebook_for(script), script.stem)
    return files


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.notebooks", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a notebook is missing or out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in expected_files().items():
        if path.exists() and path.read_text() == text:
            continue
        if args.check:
            stale.append(str(path.relative_to(REPO_ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO_ROOT)}")
    if stale:
        print("out of date (run python -m bench.notebooks): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
