"""OpenTelemetry spans for tasks, checkpoints, retries and batches.

Span catalogue (see ``docs/spans.md``):

* ``execute_tool {tool_name}`` (INTERNAL): one per task run, parent = the caller's current span
  (or the retry/batch span). GenAI attributes at start, plus ``laios.task.id``,
  ``laios.plan.id``, ``laios.session.id``; ``laios.retry.attempt`` under a retry.
* ``checkpoint {name}``: child of the task span, covering the phase since the previous
  checkpoint (or the task start); data as ``laios.checkpoint.*`` attributes.
* ``laios.execute_with_retry {tool_name}``: one per ``execute_with_retry`` call.
* ``laios.execute_parallel``: one per ``execute_parallel`` batch.

A task span may carry ``exception`` (the tool raised) and ``laios.callback_error`` (the
caller's ``on_progress`` raised) events, their text scrubbed of secrets.

Only ``opentelemetry-api`` is needed. Without an SDK tracer provider installed (and none passed
to the executor) no span work is done at all.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.trace import (
    NoOpTracerProvider,
    ProxyTracerProvider,
    Span,
    SpanKind,
    Status,
    StatusCode,
    TracerProvider,
    TraceState,
)

from laios._compat.otel import (
    attribute_length_limit,
    global_provider_is_sdk,
    global_tracer_provider,
    instrumentation_suppressed,
)
from laios._exceptions import exception_message, qualified_type_name
from laios._text import shorten
from laios.execution._checks import (
    TRACER_PROVIDER_INSTEAD,
    is_boolean,
    is_real,
    not_a_class,
    not_a_module,
    reading,
    require_method,
    whole_number,
)
from laios.execution._logs import WarningLimiter, unknown_setting
from laios.execution._records import UNPRINTABLE_KEY, printable
from laios.execution.redaction import (
    MAX_ERROR_BYTES,
    REDACTED,
    SecretFields,
    SecretForms,
    exception_traceback,
    held_secrets,
    is_secret_key,
    scrub,
    scrub_head,
    scrub_within,
    secret_values,
    to_json,
    truncate_bytes,
    utf8_text,
)

_log = logging.getLogger("laios.execution")

__all__ = [
    "CAPTURE_CONTENT_ENV",
    "MAX_CHECKPOINT_ATTRIBUTES",
    "MAX_CHECKPOINT_VALUE_CHARS",
    "MAX_HELD_SECRETS",
    "MAX_STACKTRACE_BYTES",
    "SCHEMA_URL",
    "Tracing",
]

#: The OpenTelemetry semantic conventions the spans' attribute names follow.
SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"
#: The standard switch for recording tool arguments and results on spans.
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
#: Longest string value of a ``laios.checkpoint.*`` attribute, in characters.
MAX_CHECKPOINT_VALUE_CHARS = 256
#: Most ``laios.checkpoint.*`` attributes per checkpoint span.
MAX_CHECKPOINT_ATTRIBUTES = 32
#: Longest checkpoint name in a ``checkpoint {name}`` span's name, in characters.
MAX_CHECKPOINT_NAME_CHARS = 256
#: Longest exception stack trace recorded on a span, in UTF-8 bytes.
MAX_STACKTRACE_BYTES = 8192
#: Most secret values a captured result or checkpoint data holds itself (the longest) that
#: it is scrubbed of where it quotes them: each costs every text recorded of it the search
#: for its forms (a result listing thousands of API keys is redacted under their names all
#: the same).
MAX_HELD_SECRETS = 16
#: Longest checkpoint data key kept in a ``laios.checkpoint.*`` attribute name, in characters.
_KEY_CHARS = 64
#: Checkpoint values read for the secrets they hold only under a secret-looking name.
_CONTAINERS = (Mapping, list, tuple, set, frozenset)
#: Checkpoint data and progress details read for the secrets they hold only under
#: secret-looking names (see :func:`with_held_secrets`).
_READ_UNDER_SECRET_NAMES = (*_CONTAINERS, int, float, type(None))


def _names_a_secret(key: Any, text: str) -> bool:
    """Whether ``text``, a checkpoint data key's (``printable(key, UNPRINTABLE_KEY)``), looks
    like a secret's name; a key that cannot be printed does not (its placeholder,
    ``<unprintable key>``, would)."""
    return is_secret_key(text) and (text != UNPRINTABLE_KEY or type(key) is str)


#: Values of ``CAPTURE_CONTENT_ENV`` that turn capture on: laios's own words, and the
#: OpenTelemetry GenAI capture modes that put content on spans (laios records it on spans).
_CAPTURE_ON = frozenset({"1", "true", "yes", "on", "span_only", "span_and_event"})
#: Values that turn it off (``event_only``: laios emits no content events).
_CAPTURE_OFF = frozenset({"", "0", "false", "no", "off", "no_content", "event_only"})


def _env_capture() -> bool:
    raw = os.environ.get(CAPTURE_CONTENT_ENV, "").strip()
    value = raw.lower()
    if value in _CAPTURE_ON:
        return True
    if value not in _CAPTURE_OFF:
        unknown_setting(
            CAPTURE_CONTENT_ENV,
            raw,
            "content capture stays off",
            "true/false, or SPAN_ONLY, SPAN_AND_EVENT, EVENT_ONLY, NO_CONTENT",
        )
    return False


def checked_tracing(tracer_provider: object, capture_content: object) -> bool | None:
    """``capture_content`` as a bool (``None`` kept), once both options of :class:`Tracing`
    (and the executor's of the same names) are found usable.

    Raises:
        TypeError: Naming the option: ``tracer_provider`` a class, the module
            ``opentelemetry.trace``, or a value without ``get_tracer``; ``capture_content``
            not ``None``, ``True`` or ``False`` (a string like ``"false"`` would read as true
            and turn content capture on); also when looking either over raises.
    """
    not_a_class("tracer_provider", tracer_provider, "get_tracer")
    # (the API module's get_tracer hands out the tracer of whatever provider is installed
    # globally, not of one the caller chose: the same mistake refused as meter_provider)
    not_a_module(
        "tracer_provider",
        tracer_provider,
        "an OpenTelemetry TracerProvider",
        TRACER_PROVIDER_INSTEAD,
    )
    require_method(
        "tracer_provider", tracer_provider, "get_tracer", "an OpenTelemetry TracerProvider"
    )
    if capture_content is None:
        return None
    with reading("capture_content"):
        a_boolean = is_boolean(capture_content)
    if not a_boolean:
        given = type(capture_content).__name__
        if isinstance(capture_content, (str, bytes)):
            given += " (a string like 'false' would read as true)"
        raise TypeError(f"capture_content must be None, True or False, got {given}")
    return bool(capture_content)  # (NumPy's booleans too)


#: Longest ``exception.type`` of an event, in characters (a class named at run time may have a
#: name of any length).
_TYPE_CHARS = 256


def _qualified_name(kind: type, secrets: Sequence[str] = ()) -> str:
    """A class's name as the SDK's ``record_exception`` writes ``exception.type``: module and
    qualified name, or the bare name for builtins (see :func:`qualified_type_name`), scrubbed
    of ``secrets`` (a class made at run time may be named after one), then cut to
    ``_TYPE_CHARS`` characters."""
    name = utf8_text(qualified_type_name(kind))
    if secrets:
        return utf8_text(scrub_head(name, secrets, _TYPE_CHARS))
    return shorten(name, _TYPE_CHARS)


def _utf8_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """``attributes`` with every key and string value valid UTF-8 (see :func:`utf8_text`)."""
    return {
        utf8_text(key): utf8_text(value) if isinstance(value, str) else value
        for key, value in attributes.items()
    }


#: The range of the signed 64-bit ints OTLP carries (an exporter drops an int outside it).
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def _number(value: int | float, secrets: Sequence[str]) -> str | int | float | None:
    """A checkpoint number (not a bool) as an attribute value.

    Read as the plain number it is (an ``int`` or ``float`` subclass's own ``__str__`` may
    fail, or lie): ``[REDACTED]`` when written as one of ``secrets``; an int outside the 64-bit
    range as its decimal text, cut like strings; ``None`` for an int too long to print.
    """
    try:
        text = int.__repr__(value) if isinstance(value, int) else float.__repr__(value)
    except ValueError:  # an int with too many digits to print
        return None
    if secrets and text in secrets:
        return REDACTED
    if isinstance(value, float):
        return float.__float__(value)
    number = int.__index__(value)
    if _INT64_MIN <= number <= _INT64_MAX:
        return number
    return scrub_head(text, secrets, MAX_CHECKPOINT_VALUE_CHARS)


def _other_number(value: Any, secrets: Sequence[str]) -> str | bool | int | float | None:
    """A checkpoint value of another number class (NumPy's ``int64``, ``float32`` and
    ``bool_``, which are no ``int``, ``float`` or ``bool``: ``array.sum()`` gives one) as the
    plain bool, int or float it holds, then as :func:`_number` records it (``[REDACTED]`` when
    written, as ``str`` writes it, as one of ``secrets``); ``None`` for anything else (an array,
    a ``Decimal``, text) and for a value that fails to convert."""
    try:
        if is_boolean(value):
            return bool(value)
        number: int | float | None = whole_number(value)
        if number is None and is_real(value):
            number = float(value)
        if number is None:
            return None
        if secrets and str(value) in secrets:  # (NumPy writes float32(0.1) as 0.1)
            return REDACTED
    except Exception:  # a number class of its own whose conversions raise: left out
        return None
    return _number(number, secrets)


def _capture(
    span: Span,
    key: str,
    value: Any,
    secrets: Sequence[str],
    fields: SecretFields | None = None,
) -> None:
    """Set ``value`` as the captured-content attribute ``key`` of ``span``: JSON cut to
    ``MAX_VALUE_BYTES`` and to the span's own attribute length limit (so that the SDK never
    cuts it again into text that is not JSON), or left off when no valid JSON fits that limit.
    """
    chars = attribute_length_limit(span)
    text = to_json(value, secrets=secrets, fields=fields, max_chars=chars)
    if chars is None or len(text) <= chars:
        span.set_attribute(key, text)


def _with_secrets_of(value: Any, secrets: Sequence[str]) -> Sequence[str]:
    """``secrets`` and the secret values ``value`` holds itself (see :func:`secret_values`),
    the ``MAX_HELD_SECRETS`` longest of them (a short one with all its forms, see
    :func:`held_secrets`): a credential a tool returns (or checkpoints)
    under a secret-looking name, which no parameter held, is scrubbed where the same value
    quotes it elsewhere, as it is redacted under its name."""
    try:
        own = held_secrets(secret_values(value), MAX_HELD_SECRETS)
    except Exception:  # (a result whose items cannot be read: captured as its placeholder)
        return secrets
    if not own:
        return secrets  # (the common case: the forms of ``secrets`` are not worked out again)
    return [*secrets, *own]


def with_held_secrets(
    entries: Sequence[tuple[Any, str, Any]], secrets: Sequence[str]
) -> Sequence[str]:
    """``secrets`` and the secret values held by ``entries``, ``(key, key's text, value)``
    of a checkpoint's data or a progress report's details (see :func:`_with_secrets_of`): a
    token a tool reports under its name, which no parameter held, is scrubbed where the
    checkpoint's name, its other entries or the report's message quote it. Containers under
    ordinary names are not read (they are not recorded: a list of rows would cost every
    report its reading), nor numbers and ``None`` under ordinary names (which hold none)."""
    held = [
        (key, value)
        for key, text, value in entries
        if not isinstance(value, _READ_UNDER_SECRET_NAMES) or _names_a_secret(key, text)
    ]
    if held:
        with contextlib.suppress(Exception):  # (a key that cannot be hashed again)
            secrets = _with_secrets_of(dict(held), secrets)
    return secrets


def with_secrets_of_details(details: Mapping[Any, Any], secrets: Sequence[str]) -> Sequence[str]:
    """``secrets`` and the secret values a progress report's ``details`` hold, read as a
    checkpoint's data is (its first ``MAX_CHECKPOINT_ATTRIBUTES`` entries, see
    :func:`with_held_secrets`): the message is scrubbed of them, as a checkpoint's name is of
    those its data holds. ``secrets`` when the details cannot be read (or hold an object
    whose class cannot be told: a proxy whose ``__class__`` raises)."""
    try:
        entries = [
            (key, printable(key, UNPRINTABLE_KEY), value)
            for key, value in itertools.islice(details.items(), MAX_CHECKPOINT_ATTRIBUTES)
        ]
        return with_held_secrets(entries, secrets)
    except Exception:  # (details that cannot be read: kept as their description)
        return secrets


#: Longest line kept whole in a stack trace past ``MAX_STACKTRACE_BYTES`` (a huge message).
_STACK_LINE_BYTES = 1024
#: Bytes of the start of a stack trace kept when its middle is cut (the rest is its end).
_STACK_HEAD_BYTES = 2048
_CUT = "…[truncated]"


def _cut_stacktrace(stack: str) -> str:
    """``stack`` in at most ``MAX_STACKTRACE_BYTES`` bytes of UTF-8, keeping what says most.

    Its long lines (a huge message) are cut first; then, if it is still too long (a deep or
    chained traceback), its middle: its start and its end stay, so the innermost frames and
    the exception's own line (the last one, after any cause) are never the part lost.
    """
    stack = utf8_text(stack)
    encoded = stack.encode("utf-8")
    if len(encoded) <= MAX_STACKTRACE_BYTES:
        return stack
    lines = []
    for line in stack.split("\n"):
        if len(line) > _STACK_LINE_BYTES // 4:  # (may be past the limit once encoded)
            line = truncate_bytes(line, _STACK_LINE_BYTES)
        lines.append(line)
    return _cut_middle("\n".join(lines))


#: What stands for the middle of a stack trace that is cut out.
_MIDDLE_CUT = f"\n{_CUT}\n"


def _cut_middle(stack: str) -> str:
    """``stack`` (its long lines cut) in at most ``MAX_STACKTRACE_BYTES`` bytes: its start and
    its end, without its middle when it is longer."""
    encoded = stack.encode("utf-8")
    if len(encoded) <= MAX_STACKTRACE_BYTES:
        return stack
    tail = MAX_STACKTRACE_BYTES - _STACK_HEAD_BYTES - len(_MIDDLE_CUT.encode("utf-8"))
    head = encoded[:_STACK_HEAD_BYTES].decode("utf-8", "ignore")
    end = encoded[-tail:].decode("utf-8", "ignore")
    return head + _MIDDLE_CUT + end


def _keep_ends(stack: str, limit: int) -> str:
    """``stack`` in at most ``limit`` characters (a span's attribute length limit, which the
    SDK counts in characters and would meet by cutting the end): its start and its end, without
    its middle; only its end, where the exception's own line is, when ``limit`` leaves too
    little room for both."""
    if len(stack) <= limit:
        return stack
    if limit <= 0:
        return ""
    room = limit - len(_MIDDLE_CUT)
    if room < 2 * len(_MIDDLE_CUT):
        return stack[-limit:]
    head = min(room // 4, _STACK_HEAD_BYTES)
    return stack[:head] + _MIDDLE_CUT + stack[len(stack) - (room - head) :]


#: Characters of a stack trace up to which it is scrubbed whole before it is cut; a longer one
#: (a huge message) is scrubbed line by line, reading only what the bytes kept need.
_WHOLE_STACK_CHARS = 4 * MAX_STACKTRACE_BYTES


def _scrubbed_stacktrace(stack: str, secrets: Sequence[str]) -> str:
    """``stack`` scrubbed of ``secrets``, then cut to ``MAX_STACKTRACE_BYTES`` (see
    :func:`_cut_stacktrace`), reading of a long one only as much as the bytes kept need: a
    message of many megabytes costs no more than a short one.

    Scrubbing replaces no line break unless a form of a secret holds one (a key file): then
    each line of the scrubbed text is its line scrubbed, and the cut keeps the start of each
    long line (see :func:`scrub_head`), the lines that make its first bytes and those that make
    its last. With a secret of several lines, or a text that scrubbing shrinks below the limit,
    the whole text is scrubbed.
    """
    if len(stack) <= _WHOLE_STACK_CHARS:
        return _cut_stacktrace(scrub(stack, secrets, limit=None))
    forms = secrets if type(secrets) is SecretForms else SecretForms(secrets)
    if any("\n" in form for form in forms.forms):
        return _cut_stacktrace(scrub(stack, forms, limit=None))
    # The lines from the start until they pass the limit, then those from the end until they
    # make the bytes kept of it (or until they meet: then every line is read)
    head: list[str] = []
    known = head_bytes = -1  # (bytes of the scrubbed text, at least; of the head's lines)
    start = 0
    while start <= len(stack) and head_bytes <= MAX_STACKTRACE_BYTES:
        end = stack.find("\n", start)
        end = len(stack) if end < 0 else end
        line, at_least = _scrubbed_line(stack[start:end], forms)
        head.append(line)
        head_bytes += len(line.encode("utf-8")) + 1
        known += at_least + 1
        start = end + 1
    tail: list[str] = []
    tail_bytes = -1
    room = MAX_STACKTRACE_BYTES - _STACK_HEAD_BYTES - len(_MIDDLE_CUT.encode("utf-8"))
    end = len(stack)
    while end >= start and tail_bytes < room:
        # (stack[start - 1] is the line break that ends the head's lines: one is found)
        begin = stack.rfind("\n", start - 1, end) + 1
        line, at_least = _scrubbed_line(stack[begin:end], forms)
        tail.append(line)
        tail_bytes += len(line.encode("utf-8")) + 1
        known += at_least + 1
        end = begin - 1
    if end < start:  # (every line read: the whole text as cut)
        if known <= MAX_STACKTRACE_BYTES:  # (it may be kept whole, its long lines too)
            return _cut_stacktrace(scrub(stack, forms, limit=None))
        return _cut_middle("\n".join(head + tail[::-1]))
    # (more than the limit in the head's lines alone: the middle is cut)
    kept = "\n".join(head).encode("utf-8")[:_STACK_HEAD_BYTES].decode("utf-8", "ignore")
    last = "\n".join(tail[::-1]).encode("utf-8")[-room:].decode("utf-8", "ignore")
    return kept + _MIDDLE_CUT + last


def _scrubbed_line(line: str, secrets: SecretForms) -> tuple[str, int]:
    """``line`` (of no line break) scrubbed of ``secrets`` and, when longer than a quarter of
    ``_STACK_LINE_BYTES`` characters, cut to that many bytes (as :func:`_cut_stacktrace` cuts
    it), reading only the start of a long one (a little more than the limit of the whole
    trace); with it, the bytes of the line scrubbed (at least)."""
    # (scrubbed and cut to one more character than the limit, ending in "…" when cut: then
    # the line is longer than the limit, which says the whole trace is, and than the bytes
    # kept of it, which it starts with)
    scrubbed = scrub_head(line, secrets, MAX_STACKTRACE_BYTES + 1)
    head = utf8_text(scrubbed)
    size = len(head.encode("utf-8"))
    if len(scrubbed) > MAX_STACKTRACE_BYTES:  # (cut: "…" stands for one character or more)
        size -= len("…".encode()) - 1
    if len(head) > _STACK_LINE_BYTES // 4:
        return truncate_bytes(head, _STACK_LINE_BYTES), size
    return head, size


def exception_stacktrace(exception: BaseException, secrets: Sequence[str]) -> str:
    """The ``exception.stacktrace`` of ``exception``: its traceback (causes included) scrubbed
    of ``secrets``, then cut to ``MAX_STACKTRACE_BYTES``; never raises.

    A runner in another process sends this text back with the exception (see
    ``RawOutcome.traceback``): a pickled exception loses its frames and its causes.
    """
    return _scrubbed_stacktrace(exception_traceback(exception), secrets)


#: How Python's tracebacks join an exception raised while another was handled.
_DURING = "\nDuring handling of the above exception, another exception occurred:\n\n"


def stacktrace_then(stack: str, exception: BaseException) -> str:
    """``stack`` (a stack trace made by :func:`exception_stacktrace`) followed by ``exception``
    as raised while it was handled, as Python chains them (its own line: it has no frames of
    interest), cut to ``MAX_STACKTRACE_BYTES``; never raises."""
    try:
        line = f"{_qualified_name(type(exception))}: {exception}\n"
    except Exception:  # (a __str__ that raises)
        line = f"{_qualified_name(type(exception))}\n"
    return _cut_stacktrace(stack + _DURING + line)


def _hands_out_no_op(provider: object) -> bool:
    """Whether ``provider`` (the global one, once seen) hands out the API's no-op tracer, as an
    SDK provider built with ``OTEL_SDK_DISABLED=true`` does; ``False`` when asking it fails
    (each task then meets the fault, as it would without this check)."""
    try:
        tracer = provider.get_tracer("laios.execution")  # type: ignore[attr-defined]
    except Exception:
        return False
    return isinstance(tracer, trace.NoOpTracer)


class Tracing:
    """The executor's access to OpenTelemetry.

    Args:
        tracer_provider: A provider to use; ``None`` follows the global provider (so an SDK
            configured after the executor was created is still picked up), and so does the
            API's ``ProxyTracerProvider``. The API's ``NoOpTracerProvider`` turns tracing off,
            whatever the global provider is, and so does a provider whose ``get_tracer``
            raises or returns no tracer (a warning names it and its error).
        capture_content: Record arguments and results on task spans (redacted, truncated).
            ``None`` reads ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``.

    Raises:
        TypeError: ``tracer_provider`` is a class, the module ``opentelemetry.trace``, or
            has no ``get_tracer``; ``capture_content`` is not ``None``, ``True`` or ``False``
            (see :func:`checked_tracing`).
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        capture_content: bool | None = None,
    ) -> None:
        from laios import __version__

        capture_content = checked_tracing(tracer_provider, capture_content)
        # A no-op provider's spans are the caller's own span, passed through: ids taken from
        # them would name the caller's span as the task's. A proxy forwards to the global one.
        #: ``False`` when tracing was turned off with a ``NoOpTracerProvider``.
        self.allowed = not isinstance(tracer_provider, NoOpTracerProvider)
        if not self.allowed or isinstance(tracer_provider, ProxyTracerProvider):
            tracer_provider = None
        #: ``True`` once spans are known to be recorded (a provider was passed in, or an SDK
        #: provider was seen as the global one). Until then :attr:`enabled` looks again.
        self.known_enabled = tracer_provider is not None
        self._tracer: trace.Tracer
        if tracer_provider is not None:
            try:
                self._tracer = tracer_provider.get_tracer(
                    "laios.execution", __version__, schema_url=SCHEMA_URL
                )
            except Exception as exc:  # a faulty provider: the executor runs untraced
                _log.warning(
                    "the tracer provider %s raised %s: %s from get_tracer; this executor runs "
                    "untraced (fix the provider, or pass tracer_provider=None to follow the "
                    "global one)",
                    type(tracer_provider).__name__,
                    type(exc).__name__,
                    shorten(utf8_text(exception_message(exc)), 256),
                )
                self.allowed = self.known_enabled = False
                self._tracer = trace.NoOpTracer()
            if not callable(getattr(self._tracer, "start_span", None)):
                # (a faulty provider too: every task's span would fail, each one counted as
                # an internal error of its tool)
                _log.warning(
                    "the tracer provider %s returned %s from get_tracer, not a tracer (it has "
                    "no start_span method); this executor runs untraced (fix the provider, or "
                    "pass tracer_provider=None to follow the global one)",
                    type(tracer_provider).__name__,
                    type(self._tracer).__name__,
                )
                self.allowed = self.known_enabled = False
                self._tracer = trace.NoOpTracer()
            if isinstance(self._tracer, trace.NoOpTracer):
                # (an SDK provider built with OTEL_SDK_DISABLED=true: it records nothing)
                self.allowed = self.known_enabled = False
        else:
            try:
                self._tracer = trace.get_tracer(
                    "laios.execution", __version__, schema_url=SCHEMA_URL
                )
            except Exception:  # a faulty global provider: asked again for each span, whose
                # faults are logged as the task spans' (see Engine.new_job)
                self._tracer = trace.ProxyTracer("laios.execution", __version__, SCHEMA_URL)
        self.capture_content = _env_capture() if capture_content is None else capture_content
        #: Limits the errors logged with a traceback when a task span cannot be started (a
        #: faulty provider fails every task): one a minute, each failure still counted.
        self.span_faults = WarningLimiter()

    @property
    def enabled(self) -> bool:
        """Whether spans are recorded (an SDK provider is installed or was passed in, and it
        was not turned off: one built with ``OTEL_SDK_DISABLED=true`` records nothing).

        Checked for every task (see :mod:`laios._compat.otel`); once a real provider is seen
        the answer is kept (the global provider can be set only once).
        """
        if self.known_enabled:
            return True
        if not global_provider_is_sdk() or not self.allowed:
            return False
        if _hands_out_no_op(global_tracer_provider()):
            self.allowed = False  # (for good: the global provider is set only once)
            return False
        self.known_enabled = True
        return True

    @staticmethod
    def suppressed(parent: Context | None) -> bool:
        """Whether instrumentation is suppressed in ``parent`` (the current context when
        ``None``), with ``suppress_instrumentation()`` of ``opentelemetry-instrumentation``:
        the task then makes no spans."""
        return instrumentation_suppressed(parent)

    def start_task_span(
        self,
        tool_name: str,
        attributes: dict[str, Any],
        parent: Context | None,
    ) -> Span:
        """Open the ``execute_tool`` span of one task run (the caller's context is the parent).

        ``tool_name`` and the text of ``attributes`` are used as they are: valid UTF-8 already
        (see :func:`utf8_text`; the engine makes them so as it cuts them to length).
        With content capture on, the caller adds the arguments with :meth:`capture_arguments`.
        """
        return self._tracer.start_span(
            f"execute_tool {tool_name}",
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )

    def capture_arguments(
        self, span: Span, arguments: Mapping[str, Any], fields: SecretFields | None = None
    ) -> None:
        """Record a task's arguments on its span (when content capture is on): redacted by
        key (and where ``fields``, the :func:`~laios.execution.redaction.secret_fields` of the
        tool's input model, declares a secret by type), then scrubbed of secret values
        repeated under ordinary keys.

        The work is bounded whatever the size of the arguments: only what fits in the
        ``MAX_VALUE_BYTES`` of the attribute is read (see :func:`to_json`), and secret values
        are looked for in a bounded number of items (see :func:`secret_values`).
        """
        if self.capture_content:
            secrets = secret_values(arguments, fields)
            _capture(span, "gen_ai.tool.call.arguments", arguments, secrets, fields)

    def start_parent_span(self, name: str, attributes: dict[str, Any]) -> Span | None:
        """Open a retry or batch span under the caller's current span; never raises.

        ``None`` when instrumentation is suppressed in the caller's context (see
        :meth:`suppressed`), when the tracer makes no spans (see :func:`made_no_span`), and when the
        tracer fails (a span processor raising from
        ``on_start``…): the fault is logged (with its traceback at most once a minute per kind
        of span and error) and the call goes on without the span, its task spans under the
        caller's own.
        """
        try:
            if instrumentation_suppressed():
                return None
            span = self._tracer.start_span(
                utf8_text(name),
                kind=SpanKind.INTERNAL,
                attributes=_utf8_attributes(attributes),
                record_exception=False,
                set_status_on_exception=False,
            )
            return None if made_no_span(span, None) else span
        except Exception as exc:
            self._parent_span_failed(
                "could not start the span %r; the call goes on untraced", name, exc
            )
            return None

    def end_parent_span(
        self, span: Span, attributes: Mapping[str, Any], error: str | None = None
    ) -> None:
        """Set ``attributes`` (and an ERROR status described by ``error``) on a retry or batch
        span and end it; never raises: a failing span is logged (with its traceback at most
        once a minute per kind of span and error) and left as it is."""
        name = getattr(span, "name", None)
        name = name if isinstance(name, str) else "?"
        try:
            span.set_attributes(attributes)
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, error))
        except Exception as exc:
            message = "could not record the outcome on the span %r; it is ended without it"
            self._parent_span_failed(message, name, exc)
        try:
            span.end()
        except Exception as exc:
            self._parent_span_failed("could not end the span %r", name, exc)

    def _parent_span_failed(self, message: str, name: str, exc: Exception) -> None:
        """Log a retry or batch span's fault: a faulty provider fails every call, so its
        traceback is logged at most once a minute per message, kind of span and error (the
        rest at DEBUG level)."""
        kind = f"{message[:24]} {name.split(' ', 1)[0][:64]} {type(exc).__name__}"
        held = self.span_faults.should_log(kind)
        if held is None:
            _log.debug(message + " (%s)", name[:128], type(exc).__name__)
        elif held:
            _log.error(
                message + " (and %d more such errors since the last one logged)",
                name[:128],
                held,
                exc_info=exc,
            )
        else:
            _log.error(message, name[:128], exc_info=exc)

    def checkpoint_span(
        self,
        task_span: Span,
        name: str,
        start_ns: int,
        end_ns: int,
        data: Mapping[str, Any],
        secrets: Sequence[str] = (),
    ) -> None:
        """Record a finished ``checkpoint {name}`` span under ``task_span`` (``name`` scrubbed of
        ``secrets``, then cut to :data:`MAX_CHECKPOINT_NAME_CHARS`).

        Scalar data become ``laios.checkpoint.*`` attributes; values under secret-looking keys,
        and numbers equal to one of ``secrets``, are replaced by ``[REDACTED]``, and string
        values and the keys themselves (a secret value may be used as a key) are scrubbed of
        ``secrets``. The secret values the entries read hold themselves (see
        :func:`secret_values`, the ``MAX_HELD_SECRETS`` longest; not in containers under
        ordinary names) count among ``secrets``. An int outside the 64-bit range OTLP carries
        becomes its decimal text. Only the entries recorded are read; data whose entries cannot
        be read records none.
        """
        attributes: dict[str, Any] = {}
        # (only the entries recorded are read: a huge mapping costs no more than a small one)
        try:
            entries = list(itertools.islice(data.items(), MAX_CHECKPOINT_ATTRIBUTES))
        except Exception:  # a mapping that cannot be read: the span has no data attributes
            entries = []
        # A token the tool checkpoints under its name, quoted in another entry: the entries
        # recorded are read for it, and the containers under secret-looking names (not others,
        # which are not recorded: a list of rows would cost every checkpoint its reading).
        shown = [(key, printable(key, UNPRINTABLE_KEY), value) for key, value in entries]
        secrets = with_held_secrets(shown, secrets)
        for key, text, value in shown:
            label = text
            if secrets:  # (scrubbed before it is cut, as values are; cut without a mark)
                label = scrub_head(label, secrets, _KEY_CHARS + 1)
            # A key that is not a string (an enum member, a header-name object) is judged by
            # the text that names its attribute: `Field.PASSWORD`, `Authorization`.
            if is_secret_key(key) or (
                type(key) is not str and text != UNPRINTABLE_KEY and is_secret_key(text)
            ):
                scalar: str | bool | int | float | None = REDACTED
            elif isinstance(value, str):
                # Read as the plain text it is (a ``str`` subclass's own ``len()`` or slicing
                # may fail, as its ``__str__`` may: the record keeps its text too).
                value = str.__str__(value)
                # Scrubbed before it is cut: a secret across the cut leaves nothing behind.
                if secrets:
                    scalar = scrub_head(value, secrets, MAX_CHECKPOINT_VALUE_CHARS)
                else:
                    scalar = value[:MAX_CHECKPOINT_VALUE_CHARS]
            elif isinstance(value, bool):
                scalar = value
            elif isinstance(value, (int, float)):
                scalar = _number(value, secrets)
            else:
                scalar = _other_number(value, secrets)
            if scalar is not None:
                attributes[f"laios.checkpoint.{label[:_KEY_CHARS]}"] = scalar
        # The name scrubbed before it is cut, as values are: a secret across the cut leaves
        # nothing behind.
        if secrets:
            name = scrub_head(name, secrets, MAX_CHECKPOINT_NAME_CHARS)
        else:
            name = shorten(name, MAX_CHECKPOINT_NAME_CHARS)
        span = self._tracer.start_span(
            utf8_text(f"checkpoint {name}"),
            context=trace.set_span_in_context(task_span),
            kind=SpanKind.INTERNAL,
            attributes=_utf8_attributes(attributes),
            start_time=start_ns,
        )
        span.end(end_time=end_ns)

    def end_span(
        self,
        span: Span,
        *,
        error_type: str | None,
        message: str | None,
        secrets: Sequence[str],
        exception: BaseException | None = None,
        result: Any = None,
        capture_result: bool = False,
        stacktrace: str | None = None,
    ) -> None:
        """Set the outcome on a span and end it.

        Success leaves the status UNSET. A failure sets ERROR with a short scrubbed message and
        ``error.type``; a raised exception is recorded once, as a scrubbed ``exception`` event,
        whose stack trace is ``stacktrace`` when given (the traceback as formatted in the
        process the tool ran in), else ``exception``'s own.
        A captured result is scrubbed of ``secrets`` and of the secret values it holds itself
        (a token it returns under ``access_token``, quoted in its message), as captured
        arguments are of theirs; it costs work bounded by ``MAX_VALUE_BYTES`` and
        ``MAX_SECRET_SCAN_ITEMS``, not by its size.
        """
        if capture_result and self.capture_content:
            _capture(span, "gen_ai.tool.call.result", result, _with_secrets_of(result, secrets))
        if error_type is not None:
            short = scrub_within(message or error_type, secrets, MAX_ERROR_BYTES)
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR, short))
            if exception is not None:
                if stacktrace is None:
                    stack = exception_stacktrace(exception, secrets)
                else:
                    stack = _scrubbed_stacktrace(stacktrace, secrets)
                # (under an SDK limit below it, cut here, keeping the end the SDK would cut)
                limit = attribute_length_limit(span, events=True)
                if limit is not None:
                    stack = _keep_ends(stack, limit)
                span.add_event(
                    "exception",
                    {
                        "exception.type": _qualified_name(type(exception), secrets),
                        "exception.message": short,
                        "exception.stacktrace": stack,
                    },
                )
        span.end()

    def callback_error_event(
        self,
        span: Span,
        event: str,
        exception: BaseException,
        message: str,
        secrets: Sequence[str],
    ) -> None:
        """Record on a task span that the caller's ``on_progress`` callback raised.

        Adds a ``laios.callback_error`` event with ``laios.callback.event`` (the event being
        reported: ``started``, ``progress``, ``completed``…), ``exception.type`` and
        ``exception.message`` (``message`` scrubbed of ``secrets``, at most
        ``MAX_ERROR_BYTES``). The span's status is left as it is: the task's outcome is the
        tool's.
        """
        span.add_event(
            "laios.callback_error",
            {
                "laios.callback.event": event[:64],
                "exception.type": _qualified_name(type(exception), secrets),
                "exception.message": scrub(message, secrets, limit=MAX_ERROR_BYTES),
            },
        )


#: Writes a context's baggage as the W3C ``baggage`` header (a fixed format both ends read: a
#: worker process need not share the caller's ``OTEL_PROPAGATORS``).
_BAGGAGE = W3CBaggagePropagator()
#: The W3C baggage limits: bytes of a header, members in it, bytes of one member.
_MAX_BAGGAGE_HEADER = 8192
_MAX_BAGGAGE_MEMBERS = 180
_MAX_BAGGAGE_MEMBER = 4096


def baggage_header(context: Context | None = None) -> str | None:
    """The OpenTelemetry baggage of ``context`` (the current context when ``None``) as a W3C
    ``baggage`` header, within the W3C limits (8,192 bytes, 180 members of at most 4,096
    bytes: the first that fit are kept); ``None`` when it has no baggage."""
    carrier: dict[str, str] = {}
    _BAGGAGE.inject(carrier, context)
    header = carrier.get("baggage")
    if not header:
        return None
    if len(header) <= _MAX_BAGGAGE_HEADER and header.count(",") < _MAX_BAGGAGE_MEMBERS:
        return header
    # Past the limits (OpenTelemetry API before 1.27 writes such a header whole, and the
    # receiving propagator then drops all of it and logs it, values included): the first
    # members that fit are kept, as later versions keep them.
    kept: list[str] = []
    size = -1  # (no comma before the first member)
    for member in header.split(","):
        if len(member) > _MAX_BAGGAGE_MEMBER:
            continue
        if len(kept) == _MAX_BAGGAGE_MEMBERS or size + 1 + len(member) > _MAX_BAGGAGE_HEADER:
            break
        kept.append(member)
        size += 1 + len(member)
    return ",".join(kept) or None


def made_no_span(span: Span, parent: Context | None) -> bool:
    """Whether ``span``, just started under ``parent`` (the current context when ``None``), is
    no span of its own: the parent's span handed back, or the invalid span.

    A tracer that makes no spans (the API's no-op one, which an SDK provider turned off with
    ``OTEL_SDK_DISABLED=true`` hands out) returns the caller's span (an older API's returns the
    invalid one): its ids are not the task's, and it must not hide the caller's span from the
    tool. Only a span that does not record can be one (the SDK's unsampled spans have ids of
    their own).
    """
    if span.is_recording():
        return False
    ids = span.get_span_context()
    if not ids.is_valid:
        return True
    return ids.span_id == trace.get_current_span(parent).get_span_context().span_id


def trace_state_header(span: Span) -> str | None:
    """The W3C ``tracestate`` of ``span`` as a header value, or ``None`` when it has none (or
    a span context of a tracer of its own holds something else there)."""
    trace_state = span.get_span_context().trace_state
    if not isinstance(trace_state, TraceState):
        return None
    return trace_state.to_header() or None


def trace_flags_of(span: Span) -> int:
    """The W3C trace flags of ``span`` as a number from 0 to 255 (0 when a span context of a
    tracer of its own holds something else there)."""
    flags = span.get_span_context().trace_flags
    return flags & 0xFF if isinstance(flags, int) else 0


def span_ids(span: Span) -> tuple[str, str, bool] | None:
    """``(trace_id, span_id, sampled)`` of a span as hex strings, or ``None`` when invalid."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    # (bytes.hex(): under half the cost of format(id, "032x"), once per traced task)
    trace_id = ctx.trace_id.to_bytes(16, "big").hex()
    return trace_id, ctx.span_id.to_bytes(8, "big").hex(), ctx.trace_flags.sampled
