"""The Python way in: an application that calls its model itself records each call as the gateway would.

    from ftaudit.monitor.api import Monitor

    with Monitor("runs/demo-…", ledger="runs/ledger.sqlite", content="redacted") as monitor:
        answer = my_model(prompt)
        monitor.record(prompt=prompt, answer=answer, model="support-v1", latency_ms=412.0, finish_reason="stop")

A call is described in the OpenTelemetry GenAI attributes, so it takes the OTLP receiver's path into the same
event log (same checks, content policy, chains and checkpoints).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from ftaudit.monitor.content import load_salt
from ftaudit.monitor.events import EventBuilder
from ftaudit.monitor.log import EventLog
from ftaudit.monitor.otlp import Span


class Monitor:
    def __init__(self, run_dir: str | Path, *, ledger: str | None = None, content: str = "hash",
                 key_path: str | None = None, deployment: str | None = None):
        from ftaudit.monitor.gateway import deployment_for_run

        dep = deployment_for_run(run_dir, deployment, None)
        self.log = EventLog(ledger, run_id=dep.run_id, deployment=dep.name, key_path=key_path,
                            build=EventBuilder(deployment=dep, policy=content, salt=load_salt(),
                                               run_dir=str(run_dir)))
        self.log.start()

    def record(self, *, prompt: str, answer: str, latency_ms: float, model: str | None = None,
               finish_reason: str | None = None, input_tokens: int | None = None, output_tokens: int | None = None,
               params: dict[str, Any] | None = None, error: bool = False) -> str:
        """Queue one call; returns its request id (for feedback). Blocks briefly while the log's queue is full."""
        end = time.time_ns()
        attrs: dict[str, Any] = {"gen_ai.prompt": prompt, "gen_ai.completion": answer}
        for key, value in (("gen_ai.request.model", model), ("gen_ai.usage.input_tokens", input_tokens),
                           ("gen_ai.usage.output_tokens", output_tokens)):
            if value is not None:
                attrs[key] = value
        if finish_reason:
            attrs["gen_ai.response.finish_reasons"] = [finish_reason]
        for name, value in (params or {}).items():
            attrs[f"gen_ai.request.{name}"] = value
        span = Span(span_id=uuid.uuid4().hex, name="python-api", start_ns=end - int(latency_ms * 1e6), end_ns=end,
                    error=error, attributes=attrs)
        while not self.log.reserve():
            time.sleep(0.05)
        self.log.submit(span, span.span_id)
        return span.span_id

    def close(self) -> None:
        self.log.stop()

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
