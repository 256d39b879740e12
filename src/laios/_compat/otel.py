"""Whether OpenTelemetry's global providers are real (SDK) ones.

``opentelemetry.trace.get_tracer_provider()`` builds a proxy provider on its first call and
takes a lock-free but several-call path; the executor asks once per task. The API keeps the
provider it was given in the module global ``_TRACER_PROVIDER`` (``None`` until one is set),
which is a single dictionary read. When that global is gone (a future API version), the public
call is used instead.

The metrics API keeps its global meter provider the same way, in
``opentelemetry.metrics._internal._METER_PROVIDER``; an executor reads it once, when it is
created, to decide whether to report OpenTelemetry metrics (see
:mod:`laios.execution.otel_metrics`). Reading the slot, rather than calling
``get_meter_provider()``, neither installs a provider nor loads one named by
``OTEL_PYTHON_METER_PROVIDER``: the answer is "has one been installed", as for traces.

The logs API lives in ``opentelemetry._logs`` (a private module name, though its functions are
the API's own), and keeps its global logger provider in ``_logs._internal._LOGGER_PROVIDER``
the same way; :func:`global_logger_provider` reads it there, or asks
``_logs.get_logger_provider()`` where the slot is gone (where the module is, ``None``).

``suppress_instrumentation()`` (of ``opentelemetry-instrumentation``, used by exporters around
their own requests) sets the API context's ``_SUPPRESS_INSTRUMENTATION_KEY`` and a plain
``"suppress_instrumentation"`` key; :func:`instrumentation_suppressed` reads both, and only the
plain one where the API no longer has the private key.

An SDK span cuts a string attribute longer than its provider's
``SpanLimits.max_span_attribute_length`` (given to the provider, or read from
``OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`` / ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``); the span
keeps those limits in its private ``_limits``; an event's attributes are cut to the general
``max_attribute_length``. :func:`attribute_length_limit` reads them there,
and falls back to ``SpanLimits()`` (the environment's limits) where a span no longer has them.
The SDK is not imported for this: a span of its own means it is loaded already.

An SDK meter provider that was shut down keeps saying so in its private ``_shutdown``;
:func:`meter_provider_shut_down` reads it there (``False`` where the flag is gone), so that a
store stops reporting to a provider that will export nothing more.

A provider of one's own over an SDK one (one whose ``get_meter`` hands out the SDK provider's
meter, or a wrapper over it) says nothing of the SDK provider under it, and neither do the SDK's
meters and instruments: they know only the provider's private measurement consumer
(``_measurement_consumer``, which the provider keeps too). :func:`sdk_meter_provider_under`
finds the SDK provider whose consumer an instrument records into among the wrapper's
attributes; ``None`` where it finds none there (a wrapper that keeps its provider out of
sight, or an SDK that keeps the consumer elsewhere), which reads as running.
"""

from __future__ import annotations

import sys

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.metrics import MeterProvider, NoOpMeterProvider
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider

__all__ = [
    "METER_SLOT_READABLE",
    "PROVIDER_SLOT_READABLE",
    "attribute_length_limit",
    "global_logger_provider",
    "global_meter_provider",
    "global_provider_is_sdk",
    "global_tracer_provider",
    "instrumentation_suppressed",
    "is_proxy_meter_provider",
    "meter_provider_shut_down",
    "sdk_meter_provider_under",
    "suppress_instrumentation_in",
]

_NOT_SDK = (ProxyTracerProvider, NoOpTracerProvider)

#: Whether the API still keeps the global provider in ``trace._TRACER_PROVIDER``.
PROVIDER_SLOT_READABLE: bool = "_TRACER_PROVIDER" in vars(trace)

#: Whether the metrics API still keeps its global provider in ``_METER_PROVIDER``.
METER_SLOT_READABLE: bool = "_METER_PROVIDER" in vars(metrics_internal)


def _from_slot() -> bool:
    provider = trace._TRACER_PROVIDER  # noqa: SLF001 (the guarded read this module exists for)
    return provider is not None and not isinstance(provider, _NOT_SDK)


def _from_api() -> bool:
    return not isinstance(trace.get_tracer_provider(), _NOT_SDK)


#: Whether a real tracer provider (not the default proxy or a no-op) is set globally.
global_provider_is_sdk = _from_slot if PROVIDER_SLOT_READABLE else _from_api


def global_tracer_provider() -> object | None:
    """The tracer provider installed globally, or ``None`` while none is (or when it is the
    proxy or a no-op one); read from the slot, which neither installs one nor loads one named
    by ``OTEL_PYTHON_TRACER_PROVIDER``, where the API still has it."""
    if PROVIDER_SLOT_READABLE:
        provider: object = trace._TRACER_PROVIDER  # noqa: SLF001 (the guarded read)
    else:
        provider = trace.get_tracer_provider()
    return None if provider is None or isinstance(provider, _NOT_SDK) else provider


def is_proxy_meter_provider(provider: object) -> bool:
    """Whether ``provider`` is the proxy that ``metrics.get_meter_provider()`` hands out until a
    provider is installed (a private class of the API), which forwards to the one installed."""
    return type(provider).__name__ == "_ProxyMeterProvider"


def meter_provider_shut_down(provider: object) -> bool:
    """Whether ``provider`` is an SDK meter provider that was shut down: the SDK keeps it in the
    provider's private ``_shutdown`` (``False`` for any other provider, or where the flag is
    gone). The SDK is not imported for this: a provider of its own means it is loaded."""
    provider_class = _sdk_meter_provider_class()
    if provider_class is None or not isinstance(provider, provider_class):
        return False
    return getattr(provider, "_shutdown", False) is True


def _sdk_meter_provider_class() -> type | None:
    """The SDK's ``MeterProvider`` class, ``None`` while the SDK is not loaded (a provider of
    its own means it is: it is not imported for this)."""
    provider_class = getattr(sys.modules.get("opentelemetry.sdk.metrics"), "MeterProvider", None)
    return provider_class if isinstance(provider_class, type) else None


def _consumer(sdk_object: object) -> object:
    """The measurement consumer an SDK provider, meter or instrument records into (``None``
    where it keeps none there, or reading it raises: an object of one's own)."""
    try:
        return getattr(sdk_object, "_measurement_consumer", None)  # the guarded read
    except Exception:
        return None


def sdk_meter_provider_under(provider: object, instrument: object) -> object | None:
    """The SDK meter provider that ``instrument`` (made on the meter ``provider`` handed out)
    records into: ``provider`` itself when it is one; else the SDK provider whose measurement
    consumer ``instrument`` records into, found among ``provider``'s attributes (a wrapper's
    inner provider). ``None`` when ``instrument`` is not the SDK's, no attribute of
    ``provider`` holds its provider, or the SDK keeps its consumer elsewhere: such a provider
    reads as running. (Not searched for among every object of the process: a walk of a large
    heap, under the lock of every instrumentation, would cost more than it saves.)"""
    provider_class = _sdk_meter_provider_class()
    if provider_class is None:
        return None
    if issubclass(type(provider), provider_class):
        return provider
    consumer = _consumer(instrument)
    if consumer is None:
        return None

    try:
        attributes = list(vars(provider).values())
    except Exception:  # (no __dict__, or one of its own that raises)
        return None
    # (type(), not isinstance: the latter may ask a proxy's __class__, which may run code)
    return next(
        (
            value
            for value in attributes
            if issubclass(type(value), provider_class) and _consumer(value) is consumer
        ),
        None,
    )


def _real(provider: object) -> MeterProvider | None:
    if not isinstance(provider, MeterProvider) or isinstance(provider, NoOpMeterProvider):
        return None
    return None if is_proxy_meter_provider(provider) else provider


def _meter_from_slot() -> MeterProvider | None:
    return _real(metrics_internal._METER_PROVIDER)  # noqa: SLF001 (the guarded read)


def _meter_from_api() -> MeterProvider | None:
    return _real(metrics.get_meter_provider())


#: The meter provider installed globally (``set_meter_provider``, as ``opentelemetry-instrument``
#: does), or ``None`` while none is, or when it is a no-op one.
global_meter_provider = _meter_from_slot if METER_SLOT_READABLE else _meter_from_api


def global_logger_provider() -> object | None:
    """The logger provider installed globally (``_logs.set_logger_provider``, as an
    initializer or ``opentelemetry-instrument`` does), or ``None`` while none is (or when it
    is the API's proxy or a no-op one, or the API has no logs)."""
    try:
        from opentelemetry import _logs
        from opentelemetry._logs import _internal as logs_internal
    except ImportError:
        return None
    slots = vars(logs_internal)
    provider: object = (
        slots["_LOGGER_PROVIDER"] if "_LOGGER_PROVIDER" in slots else _logs.get_logger_provider()
    )
    if provider is None or isinstance(provider, _logs.NoOpLoggerProvider):
        return None
    return None if type(provider).__name__ == "ProxyLoggerProvider" else provider


#: The context key ``suppress_instrumentation()`` (``opentelemetry-instrumentation``) sets, as
#: exporters do around their own requests; it lives in the API, under a private name.
_SUPPRESS_KEY: str | None = getattr(otel_context, "_SUPPRESS_INSTRUMENTATION_KEY", None)
#: The plain key it also sets, which instrumentations of older versions read.
_SUPPRESS_KEY_PLAIN = "suppress_instrumentation"


def instrumentation_suppressed(context: otel_context.Context | None = None) -> bool:
    """Whether instrumentation is suppressed in ``context`` (the current one when ``None``),
    as ``opentelemetry.instrumentation.utils.is_instrumentation_enabled`` reads it."""
    return bool(
        (_SUPPRESS_KEY is not None and otel_context.get_value(_SUPPRESS_KEY, context))
        or otel_context.get_value(_SUPPRESS_KEY_PLAIN, context)
    )


def suppress_instrumentation_in(context: otel_context.Context) -> otel_context.Context:
    """``context`` with instrumentation suppressed, as ``suppress_instrumentation()`` sets it:
    both keys (only the plain one where the API no longer has the private key)."""
    if _SUPPRESS_KEY is not None:
        context = otel_context.set_value(_SUPPRESS_KEY, True, context)
    return otel_context.set_value(_SUPPRESS_KEY_PLAIN, True, context)


def _sdk_limits(span: object) -> object:
    """The ``SpanLimits`` an SDK span keeps (``None`` when it keeps none there)."""
    return getattr(span, "_limits", None)  # the guarded read


def attribute_length_limit(span: object, *, events: bool = False) -> int | None:
    """The length in characters beyond which ``span`` cuts a string attribute it is given
    (with ``events``, an attribute of an event added to it, which the SDK cuts to the general
    ``max_attribute_length``): ``None`` when it cuts none (no limit is set, or ``span`` is not
    a span of the SDK)."""
    sdk = sys.modules.get("opentelemetry.sdk.trace")
    if sdk is None or not isinstance(span, sdk.Span):
        return None
    limits = _sdk_limits(span)
    if not isinstance(limits, sdk.SpanLimits):
        limits = sdk.SpanLimits()  # public: the limits the environment sets
    limit = limits.max_attribute_length if events else limits.max_span_attribute_length
    return limit if isinstance(limit, int) else None
