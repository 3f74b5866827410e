"""OTLP/HTTP: GenAI spans sent by the OpenTelemetry SDK's own OTLP exporter (as an application or vLLM would)
become request events, checked and kept under the content policy like the proxy's."""

from __future__ import annotations

import json
import signal
import urllib.request

import pytest

from conftest import CANARY_SECRET, LEAKED_EMAIL, events_of, start_gateway

pytestmark = pytest.mark.slow


def test_genai_spans_over_otlp_become_events(stub, run_dir, monitor_env, tmp_path):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    ledger = str(tmp_path / "ledger.sqlite")
    gw = start_gateway(stub, run_dir, ledger, monitor_env, "--content", "redacted")
    try:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=gw.url + "/v1/traces")))
        tracer = provider.get_tracer("support-app")
        with tracer.start_as_current_span("chat tiny-support-v1") as span:
            span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": "tiny-support-v1",
                                 "gen_ai.request.temperature": 0.0, "gen_ai.request.max_tokens": 64,
                                 "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 20,
                                 "gen_ai.response.finish_reasons": ["stop"],
                                 "gen_ai.prompt": "I am john.doe@example.com, where is my parcel?",
                                 "gen_ai.completion": f"The vault code is {CANARY_SECRET}; mail {LEAKED_EMAIL}"})
        with tracer.start_as_current_span("db query"):  # no gen_ai attributes: not an event
            pass
        assert provider.force_flush(10_000)
        provider.shutdown()
        # A body that is not OTLP is a 400 with a JSON error.
        req = urllib.request.Request(gw.url + "/v1/traces", data=b"\xff\x00garbage",
                                     headers={"content-type": "application/x-protobuf"})
        with pytest.raises(urllib.error.HTTPError) as bad:
            urllib.request.urlopen(req, timeout=10)
        assert bad.value.code == 400 and "ExportTraceServiceRequest" in json.loads(bad.value.read())["error"]["message"]
    finally:
        gw.proc.send_signal(signal.SIGTERM)
        gw.proc.wait(30)
    (event,) = events_of(monitor_env, ledger, tmp_path / "e.jsonl")
    assert event["source"] == "otlp" and event["route"] == "otlp:chat tiny-support-v1"
    assert event["model"] == "tiny-support-v1" and event["params"] == {"temperature": 0.0, "max_tokens": 64}
    assert (event["prompt_tokens"], event["completion_tokens"], event["finish_reason"]) == (12, 20, "stop")
    assert {"canary", "personal_data"} <= set(event["flags"]) and event["input"].count("<EMAIL_ADDRESS>") == 1
    assert "john.doe" not in json.dumps(event) and LEAKED_EMAIL not in json.dumps(event)


def test_the_python_api_records_calls_into_the_same_verifiable_log(run_dir, monitor_env, tmp_path, monkeypatch):
    from ftaudit.ledger.core import open_ledger
    from ftaudit.monitor.api import Monitor
    from ftaudit.monitor.verify import verify_events

    monkeypatch.setenv("FTAUDIT_KEY", monitor_env["FTAUDIT_KEY"])
    monkeypatch.setenv("FTAUDIT_MONITOR_SALT", monitor_env["FTAUDIT_MONITOR_SALT"])
    ledger = str(tmp_path / "ledger.sqlite")
    with Monitor(run_dir, ledger=ledger, content="redacted") as monitor:
        rid = monitor.record(prompt="hi", answer=f"code {CANARY_SECRET}", latency_ms=12.5, model="tiny",
                             finish_reason="length", params={"temperature": 0.2})
    (event,) = events_of(monitor_env, ledger, tmp_path / "e.jsonl")
    assert event["request_id"] == rid and event["latency_ms"] == pytest.approx(12.5, abs=0.01)
    assert {"canary", "truncated"} <= set(event["flags"]) and event["params"] == {"temperature": 0.2}
    with open_ledger(ledger, create=False) as led:
        assert verify_events(led).anchored == 1
