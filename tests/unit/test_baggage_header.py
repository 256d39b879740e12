"""The caller's baggage as the header a process or Dask worker receives: within the W3C
limits whatever the OpenTelemetry API's version, so that the worker's propagator never
refuses it (and never logs it whole, values included, as older versions do)."""

from __future__ import annotations

from opentelemetry import baggage
from opentelemetry.baggage.propagation import W3CBaggagePropagator

from laios.execution.tracing import baggage_header

# The W3C baggage limits, as OpenTelemetry's propagator applies them.
MAX_HEADER = 8192
MAX_MEMBERS = 180
MAX_MEMBER = 4096


def test_no_baggage_is_no_header() -> None:
    assert baggage_header() is None


def test_a_small_baggage_is_carried_whole() -> None:
    context = baggage.set_baggage("user.id", "user 7")
    context = baggage.set_baggage("tenant", "acme", context)
    header = baggage_header(context)
    assert header is not None
    received = W3CBaggagePropagator().extract({"baggage": header})
    assert dict(baggage.get_all(received)) == {"user.id": "user 7", "tenant": "acme"}


def test_too_many_members_are_cut_to_the_limits_keeping_the_first() -> None:
    context = None
    for i in range(300):
        context = baggage.set_baggage(f"k{i:03d}", "v" * 40, context)
    header = baggage_header(context)
    assert header is not None
    members = header.split(",")
    assert len(header) <= MAX_HEADER
    assert 0 < len(members) <= MAX_MEMBERS
    assert members[0] == "k000=" + "v" * 40


def test_a_member_past_its_limit_is_left_out_and_the_others_kept() -> None:
    context = baggage.set_baggage("big", "x" * 9000)
    context = baggage.set_baggage("small", "y", context)
    assert baggage_header(context) == "small=y"
    assert baggage_header(baggage.set_baggage("big", "x" * 9000)) is None
