"""The length of the code a complexity program runs, independent of how that code is written down.

A strategy's driver (zero-shot, prompting, prequential, weight delta) and the harness every program shares
(scoring.py: format a test input, generate, cut the answer; coding.py: decode what the program carries) are
counted from a canonical form of their source: parsed, docstrings and type annotations dropped, printed back
by `ast.unparse` (so comments, formatting and quoting are gone), then compressed with raw DEFLATE at level 9.
Reformatting a file, editing a comment or docstring, or adding type hints leaves the count unchanged; a change
to what the code does changes it, and so does its hash, which every complexity row records.
"""

from __future__ import annotations

import ast
import hashlib
import zlib
from functools import cache
from pathlib import Path

HARNESS = ("scoring.py", "coding.py")  # in posttrain/complexity/: the part of every program that is the same


class _Canonical(ast.NodeTransformer):
    """Drops docstrings and annotations: neither changes what the code does."""

    def _body(self, node):
        self.generic_visit(node)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            body = body[1:] or [ast.Pass()]
        node.body = body
        return node

    visit_Module = visit_ClassDef = _body

    def visit_FunctionDef(self, node):
        node.returns = None
        return self._body(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_arg(self, node):
        node.annotation = None
        return node

    def visit_AnnAssign(self, node):
        if node.value is None:  # a bare `x: int` does nothing at run time
            return None
        return ast.copy_location(ast.Assign(targets=[node.target], value=node.value), node)

    def visit_ImportFrom(self, node):  # `from __future__ import annotations` only serves the annotations
        return None if node.module == "__future__" else node


def canonical_source(path: str | Path) -> str:
    tree = _Canonical().visit(ast.parse(Path(path).read_text(encoding="utf-8")))
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


@cache
def source_bits(path: str) -> tuple[int, str]:
    """(8 x bytes of the raw-DEFLATE-compressed canonical source, its sha256 in 12 hex digits)."""
    text = canonical_source(path).encode("utf-8")
    squeezer = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw DEFLATE: no header or checksum to charge
    return 8 * len(squeezer.compress(text) + squeezer.flush()), hashlib.sha256(text).hexdigest()[:12]


def driver(module_file: str) -> dict:
    """The columns of a strategy's driver: its bits and the hash of its canonical source."""
    bits, sha = source_bits(str(Path(module_file).resolve()))
    return {"driver_bits": float(bits), "driver_sha256": sha}


def harness() -> dict:
    """The shared harness, charged once to every program alike."""
    root = Path(__file__).parent
    parts = [source_bits(str((root / name).resolve())) for name in HARNESS]
    digest = hashlib.sha256("".join(sha for _, sha in parts).encode()).hexdigest()[:12]
    return {"harness_bits": float(sum(bits for bits, _ in parts)), "harness_sha256": digest}
