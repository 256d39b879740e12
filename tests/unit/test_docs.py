"""The manual's code runs: every runnable block of docs/ and README.md, and the API reference's
own examples.

A block is runnable when the line right before its ```python fence is ``<!-- runnable -->``;
each one runs in a fresh interpreter (warnings are errors) and must exit 0. The other ```python
blocks (fragments) are not run, but must compile or declare an API (a signature).

The execution API reference (``execution-api.md`` in the shared spec directory) shows fragments
that use ``executor``, ``task``, ``tasks``, ``context`` and ``task_id`` without defining them.
They are extracted from the file at test time and run as written, after a prelude that defines
those names. Its bare signature blocks (``execute_task(task: Task, ...) -> TaskResult``) are not
statements and are skipped.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _scripts import ROOT, RUNS_TIMEOUT, Run, run_all

MARKER = "<!-- runnable -->"
DOCS = ROOT / "docs"
SPEC = (
    Path(os.environ["LAIOS_SPEC_DIR"])
    if "LAIOS_SPEC_DIR" in os.environ
    else ROOT.parent / "shared" / "spec"
) / "execution-api.md"

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


def test_signature_detection() -> None:
    assert is_signature("execute_task(\n    task: Task,\n    context: Context,\n) -> TaskResult\n")
    assert is_signature(
        "@classmethod\nfrom_config(cls, config: Dict[str, Any]) -> ResourceLimits\n"
    )
    assert is_signature("async execute_async(\n    task: Task,\n) -> TaskResult\n")
    assert not is_signature("result = executor.execute_task(task, context\n")
    assert not is_signature("print('unbalanced'\n")


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
