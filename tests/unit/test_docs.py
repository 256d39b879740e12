"""The manual's code runs: every runnable block of docs/ and README.md, and the API reference's
own examples.

A block is runnable when the line right before its ```python fence is ``<!-- runnable -->``;
each one runs in a fresh interpreter (warnings are errors) and must exit 0. The other ```python
blocks (fragments) are not run, but must compile or declare an API (a signature).

The execution API reference (``tests/reference/execution-api.md``, a copy of the one maintained
beside the repository, which it must match) shows fragments that use ``executor``, ``task``,
``tasks``, ``context`` and ``task_id`` without defining them. They are extracted from the file at
test time and run as written, after a prelude that defines those names. Its bare signature blocks
(``execute_task(task: Task, ...) -> TaskResult``) are not statements and are skipped as examples;
instead each is compared with the code's signature (``inspect.signature``), as are the calls
``supporting-api.md`` writes out with their parameters.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _scripts import ROOT, RUNS_TIMEOUT, Run, run_all

#: All of this module's tests read one costly run (a module fixture): on one worker, it runs once.
pytestmark = pytest.mark.xdist_group("docs_blocks")

MARKER = "<!-- runnable -->"
DOCS = ROOT / "docs"
#: The API reference this package implements, kept with the tests (``tests/reference``), so
#: that a checkout checks itself against it. ``LAIOS_SPEC_DIR`` points at another copy instead.
KEPT_SPEC_DIR = ROOT / "tests" / "reference"
SPEC = (
    Path(os.environ["LAIOS_SPEC_DIR"]) if "LAIOS_SPEC_DIR" in os.environ else KEPT_SPEC_DIR
) / "execution-api.md"
#: Where the reference is maintained, beside the repository: the kept copy must match it.
UPSTREAM_SPEC_DIR = ROOT.parent / "shared" / "spec"

#: Defines what the reference's fragments use but do not define.
SPEC_PRELUDE = """\
import asyncio
from enum import Enum
from typing import Any, Callable, Dict, List, Optional

from laios import Context, Task, TaskResult, TaskStatus
from laios.execution.executor import (
    ExecutionMetrics,
    ExecutionMode,
    Executor,
    ResourceLimits,
    TaskMonitor,
)
from laios.execution.monitor import get_execution_monitor, get_performance_monitor
from laios.tools.base import create_simple_tool
from laios.tools.registry import ToolRegistry

registry = ToolRegistry()
registry.register_tool(create_simple_tool("echo", "Returns its text.", lambda text="": text))
context = Context(session_id="spec-session", user_id="spec-user")
task = Task(plan_id="spec-plan", description="echo", tool_name="echo", parameters={"text": "hi"})
tasks = [
    Task(plan_id="spec-plan", description=f"echo {n}", tool_name="echo", parameters={"text": n})
    for n in range(3)
]
task_id = task.id
max_retries = 3
executor = Executor(registry, max_workers=4)
"""
SPEC_EPILOGUE = "\nexecutor.shutdown()\n"

_FENCE = re.compile(r"^(\s*)```")
_SIGNATURE_START = re.compile(r"^\s*(@\w+\s*)?(async\s+)?[A-Za-z_][\w.]*\s*\(")
_ANNOTATION = re.compile(
    r"\b\w+\s*:\s*(Optional|List|Dict|Callable|Task|Context|str|int|float|bool)\b"
)


@dataclass(frozen=True)
class Block:
    """A fenced code block: where it is and what it says."""

    source: Path
    line: int  # 1-based line of the opening fence
    code: str

    @property
    def id(self) -> str:
        try:
            where = self.source.relative_to(ROOT)
        except ValueError:
            where = Path(self.source.name)
        return f"{where}:{self.line}"


def fenced_blocks(path: Path, language: str = "python") -> Iterator[tuple[Block, bool]]:
    """Yield ``(block, marked_runnable)`` for every ```language block of a Markdown file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        opening = _FENCE.match(line)
        if opening and line.strip() == f"```{language}":
            indent = len(opening.group(1))
            body: list[str] = []
            end = index + 1
            while end < len(lines) and lines[end].strip() != "```":
                body.append(lines[end][indent:])
                end += 1
            marked = index > 0 and lines[index - 1].strip() == MARKER
            yield Block(path, index + 1, "\n".join(body) + "\n"), marked
            index = end + 1
        else:
            index += 1


def doc_files() -> list[Path]:
    return [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]


def runnable_blocks() -> list[Block]:
    return [block for path in doc_files() for block, marked in fenced_blocks(path) if marked]


def is_signature(code: str) -> bool:
    """Whether a block that does not compile is a bare signature, not a broken example."""
    return bool(_SIGNATURE_START.match(code)) and ("->" in code or bool(_ANNOTATION.search(code)))


def spec_blocks() -> list[Block]:
    if not SPEC.is_file():
        return []
    return [block for block, _ in fenced_blocks(SPEC)]


def spec_fragments() -> list[Block]:
    """The reference's blocks that are statements (the ones that compile)."""
    fragments = []
    for block in spec_blocks():
        try:
            compile(block.code, block.id, "exec")
        except SyntaxError:
            continue
        fragments.append(block)
    return fragments


DOC_BLOCKS = runnable_blocks()
SPEC_FRAGMENTS = spec_fragments()
SPEC_MISSING = f"the execution API reference is not at {SPEC} (set LAIOS_SPEC_DIR to its directory)"


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Run]:
    """Run every selected block, several at a time, once for the whole module."""
    wanted = {
        item.callspec.params["block"].id
        for item in request.session.items
        if hasattr(item, "callspec") and isinstance(item.callspec.params.get("block"), Block)
    }
    workdir = tmp_path_factory.mktemp("doc-blocks")
    scripts: dict[str, Path] = {}
    for number, block in enumerate(DOC_BLOCKS):
        if block.id in wanted:
            scripts[block.id] = _write(workdir, f"doc_{number}.py", block.code)
    for number, block in enumerate(SPEC_FRAGMENTS):
        if block.id in wanted:
            code = f"{SPEC_PRELUDE}\n# --- {block.id} ---\n{block.code}{SPEC_EPILOGUE}"
            scripts[block.id] = _write(workdir, f"spec_{number}.py", code)
    return run_all(scripts, workdir)


def _write(directory: Path, name: str, code: str) -> Path:
    path = directory / name
    path.write_text(code, encoding="utf-8")
    return path


@pytest.mark.timeout(RUNS_TIMEOUT)
@pytest.mark.parametrize("block", DOC_BLOCKS, ids=[b.id for b in DOC_BLOCKS])
def test_runnable_doc_block(block: Block, runs: dict[str, Run]) -> None:
    run = runs[block.id]
    assert run.returncode == 0, f"{block.id} failed: {run.describe()}"


@pytest.mark.timeout(RUNS_TIMEOUT)
@pytest.mark.skipif(not SPEC_FRAGMENTS, reason=SPEC_MISSING)
@pytest.mark.parametrize("block", SPEC_FRAGMENTS, ids=[b.id for b in SPEC_FRAGMENTS])
def test_reference_example_runs_as_written(block: Block, runs: dict[str, Run]) -> None:
    run = runs[block.id]
    assert run.returncode == 0, f"{block.id} failed: {run.describe()}"


def test_docs_have_runnable_blocks() -> None:
    """Guards the extraction itself: the manual is full of runnable examples."""
    per_file = {block.source for block in DOC_BLOCKS}
    assert len(DOC_BLOCKS) >= 30, [b.id for b in DOC_BLOCKS]
    for page in ("quickstart.md", "spans.md", "guides/asyncio.md", "reference/executor.md"):
        assert DOCS / page in per_file, f"docs/{page} has no runnable block"


def test_every_marker_precedes_a_python_fence() -> None:
    """A marker anywhere else would silently leave its example untested."""
    stray = []
    for path in doc_files():
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if line.strip() == MARKER and (
                number >= len(lines) or lines[number].strip() != "```python"
            ):
                stray.append(f"{path.relative_to(ROOT)}:{number}")
    assert stray == [], f"{MARKER} not directly before a ```python fence: {stray}"


@pytest.mark.skipif(not SPEC.is_file(), reason=SPEC_MISSING)
def test_reference_blocks_are_examples_or_signatures() -> None:
    """Every block of the reference either runs (above) or is a bare signature."""
    blocks = spec_blocks()
    broken = []
    signatures = 0
    for block in blocks:
        try:
            compile(block.code, block.id, "exec")
        except SyntaxError as exc:
            if is_signature(block.code):
                signatures += 1
            else:
                broken.append(f"{block.id}: {exc}")
    assert broken == [], f"blocks that neither compile nor look like signatures: {broken}"
    assert signatures >= 10, "the reference's signature blocks were not recognised"
    assert len(SPEC_FRAGMENTS) >= 7, [b.id for b in SPEC_FRAGMENTS]


REFERENCE_FILES = ("execution-api.md", "supporting-api.md")


def test_the_reference_is_kept_with_the_tests() -> None:
    """The checks against the reference run in every checkout: its copy is in the repository
    (the tests reading it skip only when ``LAIOS_SPEC_DIR`` names another directory)."""
    for name in REFERENCE_FILES:
        assert (KEPT_SPEC_DIR / name).is_file(), f"tests/reference/{name} is missing"


@pytest.mark.skipif(
    not UPSTREAM_SPEC_DIR.is_dir(), reason=f"no reference maintained at {UPSTREAM_SPEC_DIR}"
)
@pytest.mark.parametrize("name", REFERENCE_FILES)
def test_the_kept_reference_matches_the_maintained_one(name: str) -> None:
    kept = (KEPT_SPEC_DIR / name).read_text(encoding="utf-8")
    maintained = (UPSTREAM_SPEC_DIR / name).read_text(encoding="utf-8")
    assert kept == maintained, (
        f"tests/reference/{name} differs from {UPSTREAM_SPEC_DIR / name}: copy it over"
    )


def test_signature_detection() -> None:
    assert is_signature("execute_task(\n    task: Task,\n    context: Context,\n) -> TaskResult\n")
    assert is_signature(
        "@classmethod\nfrom_config(cls, config: Dict[str, Any]) -> ResourceLimits\n"
    )
    assert is_signature("async execute_async(\n    task: Task,\n) -> TaskResult\n")
    assert not is_signature("result = executor.execute_task(task, context\n")
    assert not is_signature("print('unbalanced'\n")


# -- the reference's signatures are the code's --------------------------------------------

SUPPORTING = SPEC.parent / "supporting-api.md"

#: The ``## Section`` of execution-api.md -> the module whose class of that name it documents.
_SPEC_MODULE = "laios.execution.executor"

#: Calls supporting-api.md writes inline (``record_metric(task_id, metric_name, value,
#: unit="")``), with what each one is: (module, class or None for a function, attribute).
SUPPORTING_CALLS = {
    "update_progress": ("laios.execution.monitor", "ProgressTracker", "update_progress"),
    "update_task_progress": ("laios.execution.monitor", "ExecutionMonitor", "update_task_progress"),
    "complete_task": ("laios.execution.monitor", "ExecutionMonitor", "complete_task"),
    "record_metric": ("laios.execution.monitor", "PerformanceMonitor", "record_metric"),
    "clear_metrics": ("laios.execution.monitor", "PerformanceMonitor", "clear_metrics"),
    "create_simple_tool": ("laios.tools.base", None, "create_simple_tool"),
    "list_tools": ("laios.tools.registry", "ToolRegistry", "list_tools"),
    "execute_tool": ("laios.tools.registry", "ToolRegistry", "execute_tool"),
    "ExecutionMetrics": ("laios.execution.executor", None, "ExecutionMetrics"),
}
_INLINE_CALL = re.compile(r"`(\w+)\(([^`()]+)\)")


def _declared(signature: str) -> ast.FunctionDef:
    """A reference signature (``async execute_async(task: Task, ...) -> TaskResult``) as the
    ``def`` it declares."""
    lines = [line for line in signature.strip().splitlines() if not line.startswith("@")]
    text = re.sub(r"^async\s+", "", "\n".join(lines))
    node = ast.parse(f"def {text}: pass").body[0]
    assert isinstance(node, ast.FunctionDef), signature
    return node


def spec_signatures() -> list[tuple[str, str, ast.FunctionDef]]:
    """``(where, class name, declaration)`` for every signature of execution-api.md's bare
    signature blocks, the class being the one its ``## Section`` documents."""
    if not SPEC.is_file():
        return []
    text = SPEC.read_text(encoding="utf-8").splitlines()
    found = []
    for block in spec_blocks():
        try:
            compile(block.code, block.id, "exec")
            continue
        except SyntaxError:
            pass
        section = next(
            line[3:].split()[0] for line in reversed(text[: block.line]) if line.startswith("## ")
        )
        for part in re.split(r"\n(?=[A-Za-z@])", block.code.strip()):
            if not part.startswith("@"):
                found.append((block.id, section, _declared(part)))
    return found


def supporting_signatures() -> list[tuple[str, str, ast.FunctionDef]]:
    """``(name, where, declaration)`` for the calls of supporting-api.md in SUPPORTING_CALLS."""
    if not SUPPORTING.is_file():
        return []
    text = SUPPORTING.read_text(encoding="utf-8")
    return [
        (match[1], f"supporting-api.md: {match[0]}", _declared(f"{match[1]}({match[2]})"))
        for match in _INLINE_CALL.finditer(text)
        if match[1] in SUPPORTING_CALLS
    ]


def _default_of(node: ast.expr) -> object:
    """A documented default: a literal, or a name such as ``CUSTOM`` (an enum member's)."""
    if isinstance(node, ast.Name):
        return node.id
    return ast.literal_eval(node)


def signature_mismatches(target: Any, declared: ast.FunctionDef) -> list[str]:
    """How the code's signature of ``target`` differs from a documented one: each documented
    parameter is at the same place, takes the same default, and can be passed the way the
    documentation shows it (by position or by keyword before ``*``, by keyword after); what the
    code adds must have a default."""
    code = [
        parameter
        for name, parameter in inspect.signature(target).parameters.items()
        if name not in {"self", "cls"}
    ]
    arguments = declared.args
    documented = [a for a in arguments.args if a.arg not in {"self", "cls"}]
    defaults: list[ast.expr | None] = [None] * (len(documented) - len(arguments.defaults))
    defaults += arguments.defaults
    # A name the documentation takes only by position (``execute_tool(name, **kwargs)``) may
    # be positional-only in the code, so that a keyword argument of that name reaches **kwargs.
    only_positional = arguments.kwarg is not None
    problems = []
    for place, (argument, default) in enumerate(zip(documented, defaults, strict=True)):
        if place >= len(code) or code[place].name != argument.arg:
            actual = [p.name for p in code]
            problems.append(f"{argument.arg} is not parameter {place + 1} of {actual}")
            continue
        parameter = code[place]
        kinds = {parameter.POSITIONAL_OR_KEYWORD}
        if only_positional:
            kinds.add(parameter.POSITIONAL_ONLY)
        if parameter.kind not in kinds:
            problems.append(f"{argument.arg} is {parameter.kind.description}")
        problems += _default_mismatch(argument.arg, parameter, default)
    keyword_only = {p.name: p for p in code if p.kind is p.KEYWORD_ONLY}
    for argument, default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
        if argument.arg not in keyword_only:
            problems.append(f"{argument.arg} is not a keyword-only parameter")
        else:
            problems += _default_mismatch(argument.arg, keyword_only[argument.arg], default)
    known = {a.arg for a in documented} | {a.arg for a in arguments.kwonlyargs}
    problems += [
        f"{p.name} is required but not documented"
        for p in code
        if p.name not in known
        and p.default is p.empty
        and p.kind not in {p.VAR_POSITIONAL, p.VAR_KEYWORD}
    ]
    if arguments.kwarg is not None and not any(p.kind is p.VAR_KEYWORD for p in code):
        problems.append(f"takes no **{arguments.kwarg.arg}")
    return problems


def _default_mismatch(
    name: str, parameter: inspect.Parameter, default: ast.expr | None
) -> list[str]:
    if default is None:
        if parameter.default is not parameter.empty:
            return [f"{name} is documented as required, has the default {parameter.default!r}"]
        return []
    expected = _default_of(default)
    actual = parameter.default
    if isinstance(default, ast.Name):
        actual = getattr(actual, "name", actual)
    if actual != expected or isinstance(actual, bool) != isinstance(expected, bool):
        return [f"{name} defaults to {parameter.default!r}, documented {ast.unparse(default)}"]
    return []


SPEC_SIGNATURES = spec_signatures()


@pytest.mark.skipif(not SPEC_SIGNATURES, reason=SPEC_MISSING)
@pytest.mark.parametrize(
    ("where", "section", "declared"),
    SPEC_SIGNATURES,
    ids=[f"{section}.{declared.name}" for _, section, declared in SPEC_SIGNATURES],
)
def test_reference_signature_is_the_code_signature(
    where: str, section: str, declared: ast.FunctionDef
) -> None:
    """Each signature of the reference is what ``inspect.signature`` (so ``help()`` and
    editors) shows, and calls written from it, by position or by keyword, bind as documented."""
    owner = getattr(importlib.import_module(_SPEC_MODULE), section)
    target = owner if declared.name == section else getattr(owner, declared.name)
    assert signature_mismatches(target, declared) == [], where


@pytest.mark.skipif(not SUPPORTING.is_file(), reason=SPEC_MISSING)
def test_supporting_signatures_are_the_code_signatures() -> None:
    """The calls supporting-api.md spells out with their parameters are the code's."""
    found = supporting_signatures()
    assert {name for name, _, _ in found} == set(SUPPORTING_CALLS)
    mismatches = {}
    for name, where, declared in found:
        module, owner, attribute = SUPPORTING_CALLS[name]
        holder = importlib.import_module(module)
        if owner is not None:
            holder = getattr(holder, owner)
        problems = signature_mismatches(getattr(holder, attribute), declared)
        if problems:
            mismatches[where] = problems
    assert mismatches == {}


def test_signature_mismatches_are_found() -> None:
    """Guards the comparison itself."""

    def code(a: int, b: int = 1, *, c: bool = True, **kwargs: Any) -> None: ...

    assert signature_mismatches(code, _declared("f(a, b=1, *, c=True, **kw)")) == []
    assert signature_mismatches(code, _declared("f(b, a)")) != []
    assert signature_mismatches(code, _declared("f(a, b=2)")) != []
    assert signature_mismatches(code, _declared("f(a, b=1, c=True)")) != []
    assert signature_mismatches(code, _declared("f(a=1)")) != []

    def keywords_only(*values: Any, a: int = 1) -> None: ...

    assert signature_mismatches(keywords_only, _declared("f(a=1)")) != []
    assert len(SPEC_SIGNATURES) >= 20 or not SPEC.is_file()


_CLASS_HEADER = re.compile(r"^class\s+\w+(\([^()]*\))?:?\s*$")
_ANNOTATED_PARAMETER = re.compile(r"\(\s*\w+\s*:\s*[A-Za-z_]")


def is_declaration(code: str) -> bool:
    """Whether a block that does not compile declares an API rather than using it: a
    signature (also a constructor's, ``StoreCollector(store: MetricStore)``), or a class
    written as its header (``class WorkerLost(Exception)``)."""
    first = next((line for line in code.splitlines() if line.strip()), "")
    constructor = bool(_SIGNATURE_START.match(code)) and bool(_ANNOTATED_PARAMETER.search(first))
    return is_signature(code) or constructor or bool(_CLASS_HEADER.match(first))


def compiles(code: str, where: str) -> SyntaxError | None:
    """``None`` when ``code`` compiles as a fragment of async code may (``await`` at the top
    level, as a block of the asyncio guide writes it), else the error."""
    try:
        compile(code, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError as exc:
        return exc
    return None


def test_every_other_python_block_compiles() -> None:
    """The blocks not marked runnable (fragments that use names an earlier block defines, or
    that need a cluster, a web framework or a file of the reader's) are not run, but each must
    still be Python a reader can paste: it compiles, or it declares an API (a signature)."""
    broken = []
    for path in doc_files():
        for block, marked in fenced_blocks(path):
            if marked:
                continue
            error = compiles(block.code, block.id)
            if error is not None and not is_declaration(block.code):
                broken.append(f"{block.id}: {error.msg} (line {error.lineno})")
    assert broken == [], f"python blocks that neither compile nor declare an API: {broken}"


def test_declaration_detection() -> None:
    assert is_declaration("class WorkerLost(Exception)\n")
    assert is_declaration("class AsyncBaseTool(BaseTool):\n    is_async = True\n")
    assert is_declaration("get_tool(name: str) -> Optional[BaseTool]\n")
    assert is_declaration("StoreCollector(store: MetricStore)\n")
    assert not is_declaration("for item in items\n    process(item)\n")
    assert not is_declaration("class Broken(Base:\n")
    assert compiles("results = await executor.execute_parallel(tasks, context)\n", "x") is None
    assert compiles("print('unbalanced'\n", "x") is not None


_TABLE_DELIMITER = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*\|")


def broken_table_rows(text: str) -> list[int]:
    """1-based numbers of lines that a Markdown table swallows as rows without being one.

    A table runs until the first blank line: a cell's text wrapped onto a line of its own, or a
    list item right under a table, becomes a row of empty cells instead.
    """
    broken = []
    in_table = in_fence = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        if in_fence:
            continue
        if _TABLE_DELIMITER.match(line):
            in_table = True
        elif in_table and not line.strip():
            in_table = False
        elif in_table and not line.lstrip().startswith("|"):
            broken.append(number)
    return broken


def test_table_rows_stay_on_one_line() -> None:
    broken = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in doc_files()
        for number in broken_table_rows(path.read_text(encoding="utf-8"))
    ]
    assert broken == [], (
        "lines a table takes for rows (join each to its row, or end the table with a blank"
        f" line): {broken}"
    )


def test_broken_table_rows_are_found() -> None:
    text = "| a | b |\n|---|---|\n| 1 | wrapped\ntext |\n\n- item\n| c |\n|---|\n| 2 |\n- next\n"
    assert broken_table_rows(text) == [4, 10]


_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """The anchor MkDocs gives a heading (its ``toc`` extension's default slug)."""
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    return re.sub(r"[\s-]+", "-", re.sub(r"[^\w\s-]", "", text))


def test_readme_links_resolve() -> None:
    """MkDocs checks the links of docs/; the README's are checked here."""
    readme = ROOT / "README.md"
    broken = []
    for target in _LINK.findall(readme.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        where = ROOT / path
        if not where.exists():
            broken.append(target)
        elif anchor:
            headings = re.findall(r"^#+\s+(.+)$", where.read_text(encoding="utf-8"), re.MULTILINE)
            if anchor not in {_anchor(heading) for heading in headings}:
                broken.append(target)
    assert broken == [], f"README.md links to what does not exist: {broken}"
