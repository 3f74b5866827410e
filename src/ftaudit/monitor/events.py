"""One event per request through the gateway (Art. 12(1): automatic recording of events over the system's
lifetime; Art. 12(2)-(3) ask that the logs let the system's functioning be traced and monitored), and one per
feedback.

The gateway's hot path only captures an `Exchange` (bytes and clocks); parsing, the content policy and the checks
run on the log's writer thread, off the request path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from ftaudit.data.stats import detect_language
from ftaudit.monitor import checks
from ftaudit.monitor.content import ContentPolicy, count_types, findings
from ftaudit.monitor.otlp import Span, span_fields
from ftaudit.monitor.terms import OutputFormat
from ftaudit.strict import Strict

# Decoding parameters kept on every event (Art. 12(2)(a): situations that may lead to a risk include the settings
# the system ran under).
PARAMS = ("temperature", "top_p", "top_k", "max_tokens", "max_completion_tokens", "seed", "stop", "n",
          "frequency_penalty", "presence_penalty", "response_format")


@dataclass
class Exchange:
    """What the gateway saw of one request, as bytes and clocks."""

    request_id: str
    received_at: datetime
    route: str
    request_body: bytes
    status: int
    response_body: bytes
    streamed: bool
    latency_ms: float
    ttft_ms: float | None
    error: str | None = None
    captured_all: bool = True  # False: the answer was longer than the capture limit; only its start was read
    probe: bool = False  # sent by `ftaudit monitor probe` (header x-ftaudit-probe), not by a user


class Deployment(Strict):
    """Who is answering: the deployment and the run whose weights it serves (the link to the RunRecord)."""

    name: str
    run_id: str | None = None
    weights_sha256: str | None = Field(None, description="sha256 of the served adapter or model weights file.")
    weights_path: str | None = None
    output_format: OutputFormat = "text"


class RequestEvent(Strict):
    kind: Literal["request"] = "request"
    request_id: str
    time: datetime = Field(description="UTC time the gateway received the request.")
    deployment: str
    run_id: str | None
    weights_sha256: str | None
    route: str
    model: str | None = Field(None, description="The model name the client asked for.")
    stream: bool
    params: dict[str, Any] = Field(default_factory=dict)
    status: int
    error: str | None = None
    latency_ms: float
    ttft_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    content_policy: str
    input: str | None = None
    output: str | None = None
    input_findings: dict[str, int] = Field(default_factory=dict, description="Personal data/secret types by count.")
    output_findings: dict[str, int] = Field(default_factory=dict)
    flags: list[str] = Field(default_factory=list, description=f"Unexpected outputs: {', '.join(checks.FLAGS)}.")
    input_chars: int = 0
    output_chars: int = 0
    input_language: str | None = Field(None, description="ISO 639-1 code of the prompt (ftaudit.data.stats).")
    probe: bool = Field(False, description="A probe run's request, kept out of the live traffic figures.")
    source: Literal["gateway", "otlp"] = "gateway"


class FeedbackEvent(Strict):
    kind: Literal["feedback"] = "feedback"
    request_id: str
    time: datetime
    deployment: str
    label: Literal["correct", "incorrect"] | None = None
    score: float | None = Field(None, ge=0, le=1)
    correction: str | None = Field(None, description="Kept under the content policy, like an answer.")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, {"type": "image_url", ...}]
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def request_text(body: dict[str, Any]) -> str:
    if "messages" in body:
        return "\n".join(_text(m.get("content")) for m in body["messages"] if isinstance(m, dict))
    prompt = body.get("prompt", "")
    return "\n".join(map(str, prompt)) if isinstance(prompt, list) else str(prompt)


@dataclass
class Answer:
    text: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


def _read_choice(answer: Answer, choice: dict[str, Any], streamed: bool) -> None:
    if streamed:
        delta = choice.get("delta") or {}
        answer.text += _text(delta.get("content")) if "content" in delta else str(choice.get("text") or "")
    else:
        message = choice.get("message") or {}
        answer.text += _text(message.get("content")) if message else str(choice.get("text") or "")
    answer.finish_reason = choice.get("finish_reason") or answer.finish_reason


def _read_usage(answer: Answer, usage: Any) -> None:
    if isinstance(usage, dict):
        answer.prompt_tokens = usage.get("prompt_tokens", answer.prompt_tokens)
        answer.completion_tokens = usage.get("completion_tokens", answer.completion_tokens)


def parse_answer(body: bytes, streamed: bool) -> Answer:
    """The first choice's text, finish reason and usage, from a JSON answer or a server-sent event stream."""
    answer = Answer()
    chunks: list[Any] = []
    if streamed:
        for line in body.decode("utf-8", "replace").splitlines():
            if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
                try:
                    chunks.append(json.loads(line[5:]))
                except json.JSONDecodeError:
                    continue
    else:
        try:
            chunks.append(json.loads(body))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return answer
    for chunk in chunks:
        if not isinstance(chunk, dict):
            continue
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                _read_choice(answer, choice, streamed)
        _read_usage(answer, chunk.get("usage"))
    return answer


def build_event(ex: Exchange, deployment: Deployment, policy: ContentPolicy,
                context: checks.Context) -> RequestEvent:
    try:
        body = json.loads(ex.request_body) if ex.request_body else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = {}
    body = body if isinstance(body, dict) else {}
    answer = parse_answer(ex.response_body, ex.streamed) if ex.status < 400 else Answer()
    return _event(
        deployment, policy, context, request_id=ex.request_id, time=ex.received_at, route=ex.route,
        model=body.get("model") if isinstance(body.get("model"), str) else None, stream=ex.streamed,
        params={k: body[k] for k in PARAMS if k in body}, status=ex.status, error=ex.error,
        latency_ms=ex.latency_ms, ttft_ms=ex.ttft_ms, prompt=request_text(body) if body else None,
        output=answer.text if ex.status < 400 and ex.route != "/v1/models" else None, answer=answer,
        complete=ex.captured_all, probe=ex.probe)


def build_span_event(span: Span, deployment: Deployment, policy: ContentPolicy,
                     context: checks.Context) -> RequestEvent:
    """A GenAI span received over OTLP as the same request event the proxy writes."""
    f = span_fields(span)
    answer = Answer(text=f["answer"] or "", finish_reason=f["finish_reason"], prompt_tokens=f["prompt_tokens"],
                    completion_tokens=f["completion_tokens"])
    return _event(
        deployment, policy, context, request_id=span.span_id, time=span.received_at, route=f"otlp:{span.name}",
        model=f["model"], stream=False, params=f["params"], status=500 if span.error else 200,
        error="span status error" if span.error else None, latency_ms=f["latency_ms"], ttft_ms=f["ttft_ms"],
        prompt=f["prompt"], output=f["answer"], answer=answer, complete=True, probe=False, source="otlp")


def _event(deployment: Deployment, policy: ContentPolicy, context: checks.Context, *, prompt: str | None,
           output: str | None, answer: Answer, complete: bool, latency_ms: float, ttft_ms: float | None,
           **fields: Any) -> RequestEvent:
    in_spans = findings(prompt) if prompt else []
    out_spans = findings(output) if output else []
    flags = checks.flags(prompt or "", output, out_spans, answer.finish_reason, context, deployment.output_format,
                         complete=complete) if output is not None else []
    return RequestEvent(
        **fields, deployment=deployment.name, run_id=deployment.run_id, weights_sha256=deployment.weights_sha256,
        latency_ms=round(latency_ms, 3), ttft_ms=None if ttft_ms is None else round(ttft_ms, 3),
        prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens,
        finish_reason=answer.finish_reason, content_policy=policy.policy,
        input=policy.keep(prompt, in_spans), output=policy.keep(output, out_spans),
        input_findings=count_types(in_spans), output_findings=count_types(out_spans), flags=flags,
        input_chars=len(prompt or ""), output_chars=len(output or ""),
        input_language=detect_language(prompt) if prompt else None,
    )


@dataclass
class EventBuilder:
    """Exchange -> RequestEvent in the event log's writer process (feedback events pass through). Picklable: it
    carries the deployment, the policy and the run directory, and loads the checks' context on first use."""

    deployment: Deployment
    policy: str
    salt: bytes
    run_dir: str | None = None
    _made: tuple | None = field(default=None, repr=False)

    def __call__(self, item):
        if not isinstance(item, (Exchange, Span)):
            return item
        if self._made is None:
            self._made = (ContentPolicy(self.policy, self.salt), checks.Context.for_run(self.run_dir))
        build = build_event if isinstance(item, Exchange) else build_span_event
        return build(item, self.deployment, *self._made)
