"""Whether OpenTelemetry's global tracer provider is a real (SDK) one, checked per task.

``opentelemetry.trace.get_tracer_provider()`` builds a proxy provider on its first call and
takes a lock-free but several-call path; the executor asks once per task. The API keeps the
provider it was given in the module global ``_TRACER_PROVIDER`` (``None`` until one is set),
which is a single dictionary read. When that global is gone (a future API version), the public
call is used instead.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider

__all__ = ["PROVIDER_SLOT_READABLE", "global_provider_is_sdk"]

_NOT_SDK = (ProxyTracerProvider, NoOpTracerProvider)

#: Whether the API still keeps the global provider in ``trace._TRACER_PROVIDER``.
PROVIDER_SLOT_READABLE: bool = "_TRACER_PROVIDER" in vars(trace)


def _from_slot() -> bool:
    provider = trace._TRACER_PROVIDER  # noqa: SLF001 (the guarded read this module exists for)
    return provider is not None and not isinstance(provider, _NOT_SDK)


def _from_api() -> bool:
    return not isinstance(trace.get_tracer_provider(), _NOT_SDK)


#: Whether a real tracer provider (not the default proxy or a no-op) is set globally.
global_provider_is_sdk = _from_slot if PROVIDER_SLOT_READABLE else _from_api
