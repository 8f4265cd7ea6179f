"""Marks the heads of the loops in the user's own code by rewriting its AST.

Only code compiled from the user's source passes through here: a notebook cell, or
the script that `python -m terra run` starts (with the functions and classes it
defines). Library code is never rewritten.

A marked loop::

    for target in iterable:          while test:
        body                             body
    else:                            else:
        orelse                           orelse

becomes (every new node carries the loop's own line, so tracebacks stay exact)::

    with __terra_loop__(KEY, NAME, FILE, LINE) as __terra_loop_3__:
        for target in iterable:
            __terra_loop_3__.begin()
            try:
                body
            except BaseException:
                __terra_loop_3__.abort()
                raise
            finally:
                __terra_loop_3__.end()
        else:
            orelse

`break`, `continue`, `return`, `else` and exceptions keep their meaning: the body is
only wrapped, and a bare `raise` re-raises the same exception with its traceback.

An innermost loop (no loop inside it) also keeps an unwrapped copy, which a run of the loop
takes, without entering a run either, when the policy has already given up on its site
(`inert`: it never takes an iteration again) or when no run can take one now (co-execution
off, another thread, a forked child, a plain sample of the speed check)::

    __terra_loop_3__ = __terra_inner_loop__(KEY, NAME, FILE, LINE)  # None once inert
    if __terra_loop_3__ is None:
        for target in iterable:
            body
        else:
            orelse
    else:
        with __terra_loop_3__:
            for target in iterable:
                ...                      # wrapped, as above

The wrapper's two calls cost about 110 ns per iteration, and entering and leaving the run
about 900 ns per run (Python 3.11), against 19 ns for a `s += i` body: a pure-Python loop of
the user's (parsing, building a vocabulary; a short loop in a function called per sample)
ran 5-8 times slower. Only innermost loops get the copy, so that nested loops do not double
the code at every level; a body with `global` or `nonlocal` gets none (a second declaration
after the first copy's uses is a SyntaxError).

`__terra_loop__` and `__terra_inner_loop__` are found in `builtins` (installed by
`terra.regions`), so the user's
namespaces gain no names except the loop handle, which is deleted again after loops
at module and class level.

Which loops are NOT marked (the sound rule for suspension): a loop whose body, in
its own scope, contains `yield`, `yield from` or `await`, and every `async for`.
Their frames can be suspended in mid-body and foreign code would then run inside an
open iteration. Such loops are transparent; a loop that encloses them, or that
consumes the generator, can still be a region, because `next()` on the iterator
runs between iterations, never inside one. Comprehensions are not loops here.
"""

from __future__ import annotations

import ast
import copy
import hashlib

RUNTIME_NAME = "__terra_loop__"
INNER_RUNTIME_NAME = "__terra_inner_loop__"


def source_key(source: str) -> str:
    """A short stable key for a piece of source text (a cell re-run keeps its key)."""
    return hashlib.sha1(source.encode("utf-8", "surrogatepass")).hexdigest()[:12]


class _SuspensionFinder(ast.NodeVisitor):
    """Finds yield / yield from / await in one scope (nested scopes are skipped)."""

    def __init__(self) -> None:
        self.found = False

    def visit_Yield(self, node: ast.AST) -> None:
        self.found = True

    visit_YieldFrom = visit_Yield
    visit_Await = visit_Yield
    visit_AsyncFor = visit_Yield
    visit_AsyncWith = visit_Yield

    def visit_FunctionDef(self, node: ast.AST) -> None:
        """A nested function is another scope: its yields do not suspend us."""

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef
    visit_ClassDef = visit_FunctionDef


def body_can_suspend(statements: list[ast.stmt]) -> bool:
    """True when executing these statements may suspend the current frame."""
    finder = _SuspensionFinder()
    for statement in statements:
        finder.visit(statement)
        if finder.found:
            return True
    return False


class LoopMarker(ast.NodeTransformer):
    """Rewrites every eligible `for`/`while` of one compilation unit.

    `key_prefix` makes site keys stable across runs (a script's path, a cell's
    source hash); `display_file` is what region names show; `filename` is the
    file the code is compiled under (tracebacks).
    """

    def __init__(self, key_prefix: str, display_file: str, filename: str) -> None:
        self.key_prefix = key_prefix
        self.display_file = display_file
        self.filename = filename
        self.marked = 0
        self._scopes: list[str] = ["module"]

    # Scope tracking: the loop handle is deleted after loops at module/class level.
    def _visit_scope(self, node: ast.AST, kind: str) -> ast.AST:
        self._scopes.append(kind)
        try:
            return self.generic_visit(node)
        finally:
            self._scopes.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        return self._visit_scope(node, "function")

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> ast.AST:
        return self._visit_scope(node, "function")

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        return self._visit_scope(node, "function")

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        return self._visit_scope(node, "class")

    def visit_For(self, node: ast.For) -> ast.AST:
        return self._mark(node)

    def visit_While(self, node: ast.While) -> ast.AST:
        return self._mark(node)

    def _mark(self, loop: ast.For | ast.While):
        suspends = body_can_suspend(loop.body)
        unwrapped = copy.deepcopy(loop) if _may_keep_unwrapped_copy(loop) else None
        self.generic_visit(loop)
        if suspends:
            return loop
        handle = f"__terra_loop_{self.marked}__"
        self.marked += 1
        loop.body = [self._begin(handle, loop), self._guarded_body(handle, loop)]
        if unwrapped is None:
            result: list[ast.stmt] = [ast.With(
                items=[ast.withitem(context_expr=self._site_call(loop),
                                    optional_vars=ast.Name(handle, ast.Store()))],
                body=[loop])]
        else:
            inert = ast.Compare(left=ast.Name(handle, ast.Load()), ops=[ast.Is()],
                                comparators=[ast.Constant(None)])
            entered = ast.With(items=[ast.withitem(context_expr=ast.Name(handle, ast.Load()))],
                               body=[loop])
            result = [ast.Assign(targets=[ast.Name(handle, ast.Store())],
                                 value=self._site_call(loop, INNER_RUNTIME_NAME)),
                      ast.If(test=inert, body=[unwrapped], orelse=[entered])]
        if self._scopes[-1] != "function":
            result.append(ast.Delete(targets=[ast.Name(handle, ast.Del())]))
        for new in result:
            _locate_tree(new, loop)
        return result

    def _site_call(self, loop: ast.AST, runtime: str = RUNTIME_NAME) -> ast.Call:
        key = f"{self.key_prefix}:{loop.lineno}:{loop.col_offset}"
        name = f"{self.display_file}:{loop.lineno}"
        args = [ast.Constant(key), ast.Constant(name), ast.Constant(self.filename),
                ast.Constant(loop.lineno)]
        return ast.Call(func=ast.Name(runtime, ast.Load()), args=args, keywords=[])

    @staticmethod
    def _method_call(handle: str, method: str) -> ast.Expr:
        func = ast.Attribute(value=ast.Name(handle, ast.Load()), attr=method, ctx=ast.Load())
        return ast.Expr(ast.Call(func=func, args=[], keywords=[]))

    def _begin(self, handle: str, loop: ast.AST) -> ast.stmt:
        return _located(self._method_call(handle, "begin"), loop)

    def _guarded_body(self, handle: str, loop: ast.For | ast.While) -> ast.Try:
        abort_and_reraise = ast.ExceptHandler(
            type=ast.Name("BaseException", ast.Load()), name=None,
            body=[self._method_call(handle, "abort"), ast.Raise(exc=None, cause=None)])
        guarded = ast.Try(body=loop.body, handlers=[abort_and_reraise], orelse=[],
                          finalbody=[self._method_call(handle, "end")])
        _locate_new_nodes(guarded, loop)
        return guarded


def _may_keep_unwrapped_copy(loop: ast.For | ast.While) -> bool:
    """True for an innermost loop whose statements may be compiled twice."""
    for statement in [*loop.body, *loop.orelse]:
        for node in ast.walk(statement):
            if isinstance(node, (ast.For, ast.While, ast.AsyncFor, ast.Global, ast.Nonlocal)):
                return False
    return True


def _located(node: ast.AST, loop: ast.AST) -> ast.AST:
    _locate_tree(node, loop)
    return node


def _set_location(node: ast.AST, loop: ast.AST) -> None:
    node.lineno = loop.lineno
    node.col_offset = loop.col_offset
    node.end_lineno = loop.lineno
    node.end_col_offset = loop.col_offset


def _locate_tree(node: ast.AST, loop: ast.AST) -> None:
    """Gives every node without a location the loop head's line (the user's nodes keep theirs)."""
    for child in ast.walk(node):
        if "lineno" in child._attributes and not hasattr(child, "lineno"):
            _set_location(child, loop)


def _locate_new_nodes(node: ast.AST, loop: ast.AST) -> None:
    """Locates the synthetic parts of a Try without touching the user's body."""
    _set_location(node, loop)
    for handler in node.handlers:
        _locate_tree(handler, loop)
    for statement in node.finalbody:
        _locate_tree(statement, loop)


def mark_loops(tree: ast.Module, key_prefix: str, display_file: str,
               filename: str) -> ast.Module:
    """Rewrites `tree` in place (and returns it) so its eligible loops are marked."""
    marker = LoopMarker(key_prefix, display_file, filename)
    tree = marker.visit(tree)
    ast.fix_missing_locations(tree)
    return tree


def compile_marked(source: str | bytes, filename: str, key_prefix: str | None = None,
                   display_file: str | None = None):
    """Compiles module source with its loops marked; same filename and lines as `compile`."""
    tree = ast.parse(source, filename, "exec")
    mark_loops(tree, key_prefix or filename, display_file or filename, filename)
    return compile(tree, filename, "exec", dont_inherit=True)


class CellLoopMarker(ast.NodeTransformer):
    """IPython AST transformer: marks the loops of each cell, keyed by the cell's source."""

    def __init__(self, current_cell_source) -> None:
        self._current_cell_source = current_cell_source

    def visit_Module(self, node: ast.Module) -> ast.Module:
        source = self._current_cell_source() or ast.unparse(node)
        key = "cell-" + source_key(source)
        return mark_loops(node, key, f"cell {key[5:11]}", "<cell>")
