"""OTLP/HTTP traces as events: `POST /v1/traces` on the gateway takes the spans an application or a server already
emits under the OpenTelemetry GenAI semantic conventions (`gen_ai.*` attributes; e.g. vLLM's
`--otlp-traces-endpoint`), protobuf or JSON, and turns every span that carries `gen_ai.*` attributes into the same
request event the proxy writes. Spans without them are counted and ignored.

Mapped: gen_ai.request.model, gen_ai.request.{temperature, top_p, top_k, max_tokens, seed}, gen_ai.usage.
{input_tokens, output_tokens} (and the older prompt_tokens / completion_tokens), gen_ai.response.finish_reasons,
gen_ai.latency.time_to_first_token (vLLM, seconds), the span's start and end times, its status; prompt and answer
text where the span carries it (gen_ai.prompt / gen_ai.completion, or gen_ai.input.messages /
gen_ai.output.messages), kept under the deployment's content policy like any other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ftaudit.errors import BadInput

PARAM_KEYS = {"gen_ai.request.temperature": "temperature", "gen_ai.request.top_p": "top_p",
              "gen_ai.request.top_k": "top_k", "gen_ai.request.max_tokens": "max_tokens",
              "gen_ai.request.seed": "seed"}


@dataclass
class Span:
    """One GenAI span, reduced to plain values (picklable, for the event log's writer)."""

    span_id: str
    name: str
    start_ns: int
    end_ns: int
    error: bool
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def received_at(self) -> datetime:
        return datetime.fromtimestamp(self.start_ns / 1e9, tz=timezone.utc)


def _value(v: Any) -> Any:
    """An OTLP AnyValue (protobuf message or its JSON form) as a plain value."""
    if isinstance(v, dict):
        for key in ("stringValue", "boolValue", "doubleValue"):
            if key in v:
                return v[key]
        if "intValue" in v:
            return int(v["intValue"])
        if "arrayValue" in v:
            return [_value(x) for x in v["arrayValue"].get("values", [])]
        return None
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind in ("string_value", "bool_value", "int_value", "double_value") else None


def parse(body: bytes, content_type: str) -> tuple[list[Span], int]:
    """(GenAI spans, spans ignored) of an ExportTraceServiceRequest; BadInput when it is not one."""
    if "json" in content_type:
        try:
            doc = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadInput("the OTLP body is not JSON") from None
        raw = [(s, {a["key"]: _value(a.get("value", {})) for a in s.get("attributes", [])})
               for rs in doc.get("resourceSpans", []) for ss in rs.get("scopeSpans", []) for s in ss.get("spans", [])]
        spans = [Span(span_id=s.get("spanId", ""), name=s.get("name", ""), start_ns=int(s.get("startTimeUnixNano", 0)),
                      end_ns=int(s.get("endTimeUnixNano", 0)), error=(s.get("status") or {}).get("code") in (2, "2",
                      "STATUS_CODE_ERROR"), attributes=attrs) for s, attrs in raw]
    else:
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        req = ExportTraceServiceRequest()
        try:
            req.ParseFromString(body)
        except DecodeError:
            raise BadInput("the OTLP body is not an ExportTraceServiceRequest (protobuf)") from None
        spans = [Span(span_id=s.span_id.hex(), name=s.name, start_ns=s.start_time_unix_nano,
                      end_ns=s.end_time_unix_nano, error=s.status.code == 2,
                      attributes={a.key: _value(a.value) for a in s.attributes})
                 for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]
    genai = [s for s in spans if any(k.startswith("gen_ai.") for k in s.attributes)]
    return genai, len(spans) - len(genai)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:  # gen_ai.input.messages / output.messages are JSON arrays of {role, parts|content}
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return value
        value = parsed
    if isinstance(value, list):
        out = []
        for m in value:
            if isinstance(m, dict):
                parts = m.get("parts") or [{"content": m.get("content")}]
                out += [str(p.get("content") or p.get("text") or "") for p in parts if isinstance(p, dict)]
            else:
                out.append(str(m))
        return "\n".join(out)
    return str(value)


def span_fields(span: Span) -> dict[str, Any]:
    """The request-event fields a span gives."""
    a = span.attributes
    reasons = a.get("gen_ai.response.finish_reasons")
    ttft = a.get("gen_ai.latency.time_to_first_token")
    return {
        "model": a.get("gen_ai.request.model") or a.get("gen_ai.response.model"),
        "params": {name: a[key] for key, name in PARAM_KEYS.items() if key in a},
        "prompt_tokens": a.get("gen_ai.usage.input_tokens", a.get("gen_ai.usage.prompt_tokens")),
        "completion_tokens": a.get("gen_ai.usage.output_tokens", a.get("gen_ai.usage.completion_tokens")),
        "finish_reason": reasons[0] if isinstance(reasons, list) and reasons else reasons,
        "latency_ms": max(span.end_ns - span.start_ns, 0) / 1e6,
        "ttft_ms": float(ttft) * 1000 if isinstance(ttft, (int, float)) else None,
        "prompt": _text(a.get("gen_ai.input.messages", a.get("gen_ai.prompt"))),
        "answer": _text(a.get("gen_ai.output.messages", a.get("gen_ai.completion"))),
    }
