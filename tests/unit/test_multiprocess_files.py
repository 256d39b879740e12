"""The totals file of multiprocess mode, and how totals are added up (no processes involved).

A file must give back exactly the totals written (every family, exemplars, hostile names),
read generically from the dataclasses' annotations; totals of several processes add up per
label, only when their histogram bounds match; a gone process keeps its counters and loses
its gauges.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from pathlib import Path

import pytest
from multiprocess_work import run_tasks, varied_workload
from store_fakes import SteppedClock

from laios.execution import _shared_totals
from laios.execution._aggregates import (
    DURATION_BUCKETS,
    QUEUE_WAIT_BUCKETS,
    Exemplar,
    ToolAggregates,
)
from laios.execution._exposition import StoreRenderer
from laios.execution._families import FAMILIES
from laios.execution._shared_totals import SUMMED_FIELDS, SharedDirectory, add_up, without_gauges
from laios.execution._totals import ExportedTotals, read_stores, sum_totals
from laios.execution._totals_files import (
    FORMAT,
    OtherVersion,
    Section,
    UnreadableFile,
    decode,
    dump,
    encode,
    read_document,
    section_data,
    sections_of,
    write_document,
)
from laios.execution.store import MetricStore

BOUNDS = tuple(DURATION_BUCKETS)


def totals_of(store: MetricStore) -> ExportedTotals:
    (totals,) = read_stores([store])
    return totals


def written_and_read(tmp_path: Path, sections: list[Section]) -> list[Section]:
    path = tmp_path / "laios-proc-1-test.json"
    write_document(path, dump({"kind": "process", "sections": [section_data(s) for s in sections]}))
    return sections_of(read_document(path))


def render(totals: ExportedTotals) -> str:
    return StoreRenderer().render([totals], "1.0", openmetrics=True)


def test_a_file_gives_back_exactly_the_totals_written(tmp_path: Path) -> None:
    """Every family of a varied workload (exemplars and hostile names included) survives a
    write and a read unchanged."""
    store = MetricStore()
    varied_workload(store)
    totals = totals_of(store)
    [section] = written_and_read(tmp_path, [Section(BOUNDS, totals)])
    assert section == Section(BOUNDS, totals)
    assert render(section.totals) == render(totals)


def test_writing_leaves_no_temporary_file(tmp_path: Path) -> None:
    """A write replaces the file whole through a temporary name that does not stay behind."""
    store = MetricStore()
    run_tasks(store, 3)
    written_and_read(tmp_path, [Section(BOUNDS, totals_of(store))])
    written_and_read(tmp_path, [Section(BOUNDS, totals_of(store))])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["laios-proc-1-test.json"]


def test_a_dataclass_with_a_label_set_round_trips_without_a_change_to_the_codec() -> None:
    """The codec reads any dataclass from its annotations: a label tuple added next to the
    totals needs no new code."""

    @dataclasses.dataclass(frozen=True)
    class Labelled:
        labels: tuple[tuple[str, str], ...]
        totals: ExportedTotals
        note: str | None = None

    store = MetricStore()
    run_tasks(store, 2)
    value = Labelled((("service", "api"), ("zone", "b")), totals_of(store))
    data = json.loads(json.dumps(encode(value)))
    assert decode(Labelled, data) == value


def test_a_field_with_a_default_may_be_missing_from_an_older_file() -> None:
    """A file written before a field (with a default) existed reads with the default."""
    data = encode(ExportedTotals({}, {}, workers=3))
    del data["abandoned_threads"]
    assert decode(ExportedTotals, data) == ExportedTotals({}, {}, workers=3)


def test_a_file_written_before_busy_workers_were_counted_reads_them_as_0(tmp_path: Path) -> None:
    """A file of a process that did not export laios_executor_busy_workers yet (no
    ``busy_workers`` in its totals) is read, its busy workers 0, its other numbers whole."""
    store = MetricStore()
    varied_workload(store)
    totals = totals_of(store)
    assert totals.busy_workers == 2
    sections = [section_data(Section(BOUNDS, totals))]
    document = json.loads(dump({"kind": "process", "sections": sections}))
    del document["sections"][0]["totals"]["busy_workers"]
    path = tmp_path / "laios-proc-1-older.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    [section] = sections_of(read_document(path))
    assert section.totals == dataclasses.replace(totals, busy_workers=0)


def test_a_field_this_version_does_not_know_makes_the_file_unreadable() -> None:
    """An unknown field (one a newer version added, say) is refused, not dropped."""
    data = encode(ExportedTotals({}, {}))
    data["shard"] = "eu-1"
    with pytest.raises(UnreadableFile, match="shard"):
        decode(ExportedTotals, data)


def test_a_required_field_missing_makes_the_file_unreadable() -> None:
    """Totals without their tools are refused."""
    data = encode(ExportedTotals({}, {}))
    del data["tools"]
    with pytest.raises(UnreadableFile, match="tools"):
        decode(ExportedTotals, data)


def test_a_value_of_the_wrong_type_makes_the_file_unreadable() -> None:
    """A count written as text is refused."""
    data = encode(ExportedTotals({}, {}))
    data["workers"] = "3"
    with pytest.raises(UnreadableFile, match="whole number"):
        decode(ExportedTotals, data)


def test_a_file_of_a_newer_format_is_another_versions(tmp_path: Path) -> None:
    """A file written in a format this version does not know is refused as another laios
    version's (not as garbage), with both versions named."""
    path = tmp_path / "laios-proc-1-x.json"
    path.write_text(json.dumps({"format": FORMAT + 1, "sections": []}))
    with pytest.raises(OtherVersion, match=f"format {FORMAT + 1}.*reads formats 1 and {FORMAT}"):
        read_document(path)


@pytest.mark.parametrize("value", [None, "2", True, 2.0])
def test_a_file_without_a_whole_format_number_is_garbage(tmp_path: Path, value: object) -> None:
    """A JSON object whose format is missing or not a whole number is no version's file."""
    path = tmp_path / "laios-proc-1-x.json"
    path.write_text(json.dumps({"sections": []} if value is None else {"format": value}))
    with pytest.raises(UnreadableFile) as raised:
        read_document(path)
    assert not isinstance(raised.value, OtherVersion)


#: A process's file as laios 0.1.0 wrote it (format 1): 5 successes spread over its 17 duration
#: buckets and +Inf, 2 errors, 2 retries, a custom metric, an in-flight task and 4 workers.
LAIOS_0_1_0_FILE = Path(__file__).parent / "multiprocess_files" / "laios-0.1.0-process.json"


def test_a_file_written_by_laios_0_1_0_reads_as_this_versions_totals() -> None:
    """laios 0.1.0's retries (one number) count as retries of error type ``error``, and its
    histograms move into this version's default buckets, every bound of which was one of
    its own: no count changes bucket bound, none is lost."""
    (section,) = sections_of(read_document(LAIOS_0_1_0_FILE))
    totals = section.totals
    assert section.bounds == BOUNDS
    assert (totals.duration_buckets, totals.queue_wait_buckets) == (BOUNDS, QUEUE_WAIT_BUCKETS)
    echo = totals.tools["echo"]
    assert (echo.duration_bounds, echo.queue_wait_bounds) == (BOUNDS, QUEUE_WAIT_BUCKETS)
    count, total, buckets, exemplars = echo.outcomes["success"]
    assert (count, total) == (5, 500.25)
    # 0.001, 0.0025 -> 0.005; 0.025 -> 0.025; 120 -> 300; +Inf -> +Inf
    assert buckets == (2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1)
    assert exemplars[0] is not None
    assert exemplars[0].span_id == "00f067aa0ba902b8"  # the newer of the two merged
    assert exemplars[1:] == (None,) * 12
    assert echo.outcomes["error"][:3] == (2, 4.348010406829417e-06, (2,) + (0,) * 12)
    assert echo.queue_wait[:3] == (7, 1.346398494206369e-05, (7, 0, 0, 0, 0, 0, 0))
    assert echo.retry_errors == {"error": 2}
    assert echo.errors["ValueError"][0] == 2
    assert (echo.in_flight, totals.workers) == (1, 4)
    assert totals.custom == {("response_time", "seconds"): (1, 1.25)}
    assert list(totals.tools) == ["echo"]  # not the empty "unknown" tool 0.1.0 wrote
    assert "laios_task_retries_total" in render(totals)


def test_a_format_1_file_in_this_versions_layout_is_read_as_it_is(tmp_path: Path) -> None:
    """Development builds wrote this layout as format 1 too: read unchanged, buckets and all."""
    store = MetricStore(duration_buckets=(0.5, 2.0))
    varied_workload(store)
    totals = totals_of(store)
    path = tmp_path / "laios-proc-1-test.json"
    section = section_data(Section((0.5, 2.0), totals))
    data = json.loads(dump({"kind": "process", "sections": [section]}))
    data["format"] = 1
    path.write_text(json.dumps(data))
    (section,) = sections_of(read_document(path))
    assert section.totals == totals


#: The fields of each type a totals file holds, as of :data:`FORMAT`. A change here changes
#: what older versions can read: bump FORMAT and teach :func:`sections_of` the old layout.
LAYOUT = {
    "ExportedTotals": [
        "tools", "custom", "workers", "busy_workers", "queue_depth", "abandoned_threads",
        "labels", "duration_buckets", "queue_wait_buckets", "live",
    ],
    "ToolAggregates": [
        "tool", "outcomes", "queue_wait", "in_flight", "errors", "duration_bounds",
        "queue_wait_bounds", "results", "retry_errors",
    ],
    "Exemplar": ["trace_id", "span_id", "value", "timestamp"],
}  # fmt: skip


def test_the_file_layout_changes_only_with_the_format_number() -> None:
    """A field added to or removed from the totals makes files another version cannot read:
    such a change must come with a new FORMAT (this test names the layout of format 2)."""
    assert FORMAT == 2, "a new format: record its layout in LAYOUT"
    assert {
        "ExportedTotals": [f.name for f in dataclasses.fields(ExportedTotals)],
        "ToolAggregates": [f.name for f in dataclasses.fields(ToolAggregates)],
        "Exemplar": list(Exemplar._fields),
    } == LAYOUT


def test_a_file_that_is_not_json_is_unreadable(tmp_path: Path) -> None:
    """Garbage is refused as such."""
    path = tmp_path / "laios-proc-1-x.json"
    path.write_bytes(b"\x00{not json")
    with pytest.raises(UnreadableFile, match="JSON"):
        read_document(path)


def test_a_histogram_with_the_wrong_number_of_buckets_is_unreadable() -> None:
    """A histogram whose buckets do not match its section's bounds is refused."""
    store = MetricStore()
    run_tasks(store, 2)
    [data] = json.loads(dump({"sections": [section_data(Section(BOUNDS, totals_of(store)))]}))[
        "sections"
    ]
    with pytest.raises(UnreadableFile, match="buckets"):
        sections_of({"sections": [{**data, "bounds": list(BOUNDS[:-1])}]})


def test_totals_of_several_processes_add_up_per_tool_and_outcome() -> None:
    """Counts, buckets, sums, custom metrics and gauges are summed across processes."""
    first, second, both = (MetricStore(clock=SteppedClock()) for _ in range(3))
    for store in (first, both):
        varied_workload(store)
        run_tasks(store, 3)
    for store in (second, both):
        varied_workload(store)
        run_tasks(store, 4, "other-tool", "error")
    [added] = add_up([Section(BOUNDS, totals_of(first)), Section(BOUNDS, totals_of(second))])
    render = StoreRenderer().render  # (exemplars differ: they are the newer of two)
    assert render([added.totals], "1", openmetrics=False) == render(
        [totals_of(both)], "1", openmetrics=False
    )


def test_sections_with_other_bucket_bounds_are_kept_apart() -> None:
    """Histograms are added only when their bounds match: other bounds stay a section apart."""
    store = MetricStore()
    run_tasks(store, 3)
    ours = Section(BOUNDS, totals_of(store))
    theirs = Section((*BOUNDS[:-1], 600.0), totals_of(store))
    added = add_up([ours, theirs, ours])
    assert [s.bounds for s in added] == [BOUNDS, theirs.bounds]
    assert added[0].totals.tools["echo"].outcomes["success"][0] == 6
    assert added[1].totals.tools["echo"].outcomes["success"][0] == 3


def test_every_field_of_the_totals_is_summed_or_keeps_sections_apart() -> None:
    """sum_totals adds up every field the shared directory treats as summed (any other field
    keeps sections apart)."""
    store = MetricStore()
    varied_workload(store)
    one = totals_of(store)
    (added,) = sum_totals([one, one])
    assert added.live is one.live is True  # (any of them)
    for field in dataclasses.fields(ExportedTotals):
        value = getattr(one, field.name)
        if field.name in SUMMED_FIELDS and type(value) is int:
            assert getattr(added, field.name) == 2 * getattr(one, field.name), field.name
    assert added.custom == {k: (2 * c, 2 * s) for k, (c, s) in one.custom.items()}
    assert added.tools["fetch"].retries == 2 * one.tools["fetch"].retries
    assert {f.name for f in dataclasses.fields(ExportedTotals)} >= SUMMED_FIELDS


def test_a_gone_process_keeps_its_counters_and_loses_its_gauges() -> None:
    """Without gauges, no gauge family has a sample (as a label set whose stores are all gone
    in one process) and every other line is unchanged."""
    store = MetricStore()
    varied_workload(store)
    section = Section(BOUNDS, totals_of(store))
    before, after = render(section.totals), render(without_gauges(section).totals)
    gauges = {f.name for f in FAMILIES if f.kind == "gauge"}
    kept = [line for line in before.splitlines() if line.split("{")[0].split(" ")[0] not in gauges]
    assert after.splitlines() == kept
    assert len(kept) < len(before.splitlines())  # the workload had gauges to drop


@pytest.mark.parametrize("held_shared", [False, True])
def test_the_directory_stays_locked_when_its_lock_file_is_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held_shared: bool
) -> None:
    """A fold's exclusive lock on the directory keeps every other reader and folder out even
    when ``laios-dir.lock`` is deleted under it (a temp-file cleaner, an ``rm``): a newcomer
    would otherwise create a new lock file and lock that one. Two opens in one process conflict
    as two processes do (an ``flock`` belongs to the open file)."""
    monkeypatch.setattr(_shared_totals, "LOCK_TIMEOUT", 0.2)
    with SharedDirectory(tmp_path).locked(shared=held_shared):
        (tmp_path / "laios-dir.lock").unlink()
        with pytest.raises(TimeoutError), SharedDirectory(tmp_path).locked(shared=False):
            pass
        if not held_shared:
            with pytest.raises(TimeoutError), SharedDirectory(tmp_path).locked(shared=True):
                pass
    # Let go, the directory can be locked again, and the lock file is there again.
    with SharedDirectory(tmp_path).locked(shared=False):
        assert (tmp_path / "laios-dir.lock").exists()


def test_a_child_forked_while_a_thread_holds_the_warning_limiter_can_still_warn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The multiprocess warnings' limiter works in a forked child even when another thread of
    the parent held its lock at the fork (the limiter replaces its own lock in the child)."""
    from forked import in_child

    limiter = _shared_totals._warnings
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with limiter._lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)

        def work() -> dict[str, object]:
            records: list[logging.LogRecord] = []
            handler = logging.Handler()
            handler.emit = records.append  # type: ignore[method-assign]
            logging.getLogger("laios.execution.multiprocess").addHandler(handler)
            _shared_totals.warn("fork test", "warned in the child")
            return {
                "messages": [record.getMessage() for record in records],
                "same limiter": _shared_totals._warnings is limiter,
            }

        result = in_child(work)
    finally:
        release.set()
        holder.join()
    assert result == {"messages": ["warned in the child"], "same limiter": True}
