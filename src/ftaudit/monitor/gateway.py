"""`ftaudit monitor gateway`: an OpenAI-compatible reverse proxy in front of any OpenAI-compatible server (vLLM,
`transformers serve`, llama.cpp's server, a SageMaker endpoint behind one) that records one event per request.

The answer is passed through byte for byte (status, body, content type; streamed answers chunk by chunk as they
arrive). The hot path only copies bytes and reads clocks; everything else — parsing, the content policy, the
checks, hashing, storage — happens in the event log's writer process. Each exchange is handed over before the
client sees the end of its answer, so an answered request is never missing from the log.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web
from aiohttp.client_exceptions import ClientConnectionError, ClientPayloadError
from multidict import CIMultiDict

from ftaudit.errors import BadInput
from ftaudit.ledger.core import open_ledger
from ftaudit.monitor import switch
from ftaudit.monitor.content import ContentPolicy, findings
from ftaudit.monitor.events import Deployment, Exchange, FeedbackEvent
from ftaudit.monitor.log import EventLog

ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/models")
# Not forwarded: hop-by-hop headers, the length (recomputed) and the encoding request (answers are read as sent,
# uncompressed, so that their text can be checked).
_DROP_REQUEST = {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "accept-encoding",
                 "upgrade", "te", "trailer", "proxy-authorization", "proxy-connection", "x-ftaudit-probe"}
_DROP_RESPONSE = {"content-length", "connection", "keep-alive", "transfer-encoding", "upgrade", "trailer",
                  "server", "date"}
REQUEST_ID_HEADER = "x-ftaudit-request-id"
PROBE_HEADER = "x-ftaudit-probe"
MAX_BODY = 8 * 1024 * 1024
CAPTURE_MAX = 1024 * 1024


def error(status: int, message: str, kind: str, request_id: str | None = None) -> web.Response:
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    return web.json_response({"error": {"message": message, "type": kind, "code": status}}, status=status,
                             headers=headers)


@web.middleware
async def json_errors(request: web.Request, handler):
    """aiohttp's own errors (unknown route, body too large, wrong method) as JSON bodies, like every other."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 413:
            return error(413, f"request body over {MAX_BODY // (1024 * 1024)} MiB; send a smaller request",
                         "request_too_large")
        return error(exc.status, exc.reason or "error", "invalid_request")


class Gateway:
    def __init__(self, upstream: str, deployment: Deployment, log: EventLog, policy: ContentPolicy, *,
                 ledger_location: str | None, key_path: str | None = None, timeout_s: float = 300.0,
                 poll_s: float = 1.0, api_key: str | None = None, upstream_api_key: str | None = None):
        self.upstream = upstream.rstrip("/")
        if self.upstream.endswith("/v1"):
            self.upstream = self.upstream[:-3]
        self.deployment, self.log, self.policy = deployment, log, policy
        self.ledger_location, self.key_path = ledger_location, key_path
        self.timeout = ClientTimeout(total=timeout_s, sock_connect=10)
        self.poll_s = poll_s
        self.api_key = api_key
        # The gateway's own key is a credential for the gateway and never leaves it; the upstream gets its own key,
        # or, with neither key configured, whatever Authorization the client sent (the upstream's own key).
        self.upstream_auth = f"Bearer {upstream_api_key}" if upstream_api_key else None
        self.suspended: dict | None = None
        self.session: ClientSession | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[json_errors, self.authenticate])
        app.router.add_post("/v1/chat/completions", self.proxy)
        app.router.add_post("/v1/completions", self.proxy)
        app.router.add_get("/v1/models", self.proxy)
        app.router.add_post("/v1/feedback", self.feedback)
        app.router.add_post("/v1/traces", self.traces)
        app.router.add_get("/healthz", self.health)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        self.session = ClientSession(timeout=self.timeout, auto_decompress=False,
                                     connector=TCPConnector(limit=0, keepalive_timeout=60))
        follower = switch.Follower(self.deployment.run_id, self.deployment.name)
        with open_ledger(self.ledger_location, key_path=self.key_path, create=False) as ledger:
            self.suspended = follower.update(ledger)
        self._stopping = threading.Event()
        self._poller = threading.Thread(target=self._follow, args=(follower,), name="ftaudit-switch", daemon=True)
        self._poller.start()

    async def _stop(self, app: web.Application) -> None:
        self._stopping.set()
        if self.session is not None:
            await self.session.close()
        await asyncio.to_thread(self.log.stop)

    def _follow(self, follower: switch.Follower) -> None:
        """The stop switch, read every `poll_s` on one connection of this thread's own; the last known state holds
        while the ledger is unreachable."""
        ledger = None
        while not self._stopping.wait(self.poll_s):
            try:
                ledger = ledger or open_ledger(self.ledger_location, key_path=self.key_path, create=False)
                self.suspended = follower.update(ledger)
            except Exception:  # noqa: BLE001 — any backend's connection error: reconnect next time
                if ledger is not None:
                    ledger.close()
                ledger = None
        if ledger is not None:
            ledger.close()

    @property
    def _client_auth_passes(self) -> bool:
        return self.api_key is None and self.upstream_auth is None

    # -- handlers ------------------------------------------------------------------------------------------
    @web.middleware
    async def authenticate(self, request: web.Request, handler):
        """With an API key, every route needs it but the health check, which load balancers call without one."""
        if self.api_key is None or request.path == "/healthz" or hmac.compare_digest(
                request.headers.get("authorization", ""), f"Bearer {self.api_key}"):
            return await handler(request)
        return error(401, "missing or wrong API key (Authorization: Bearer ...)", "authentication_error")

    async def health(self, request: web.Request) -> web.Response:
        s = self.log.stats
        return web.json_response({"status": "suspended" if self.suspended else "serving",
                                  "deployment": self.deployment.name, "events_written": s.written,
                                  "rejected_queue_full": s.rejected, "failed_batches": s.failed_batches,
                                  "writer_alive": self.log.alive()})

    async def proxy(self, request: web.Request) -> web.StreamResponse:
        t0 = time.perf_counter()
        received = datetime.now(timezone.utc)
        rid = uuid.uuid4().hex
        body = await request.read()  # before the reservation: a body over the limit ends here with a 413
        if not self.log.reserve():
            return error(503, "the event log is full or its writer stopped (the database is slow or down); "
                         "retry shortly", "log_queue_full", rid)
        status, out, streamed, ttft, err, complete = 0, b"", False, None, None, True
        try:
            if self.suspended:
                status, err = 503, "suspended"
                return error(503, f"model version {self.deployment.name} is suspended by an operator "
                             f"({self.suspended.get('reason', 'no reason given')}); it answers again once resumed",
                             "model_suspended", rid)
            if request.method == "POST":
                try:
                    parsed = json.loads(body)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    parsed = None
                if not isinstance(parsed, dict):
                    status, err = 400, "malformed JSON body"
                    return error(400, "the request body is not a JSON object", "invalid_request_error", rid)
                streamed = parsed.get("stream") is True
            headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST
                                  and (k.lower() != "authorization" or self._client_auth_passes))
            if self.upstream_auth is not None:
                headers["authorization"] = self.upstream_auth
            try:
                async with self.session.request(request.method, self.upstream + request.path_qs, data=body or None,
                                                headers=headers) as up:
                    status = up.status
                    resp_headers = CIMultiDict((k, v) for k, v in up.headers.items()
                                               if k.lower() not in _DROP_RESPONSE)
                    resp_headers[REQUEST_ID_HEADER] = rid
                    streamed = streamed and "text/event-stream" in up.headers.get("content-type", "")
                    if not streamed:
                        out = await up.read()
                        ttft = (time.perf_counter() - t0) * 1000
                        return web.Response(status=status, body=out, headers=resp_headers)
                    resp = web.StreamResponse(status=status, headers=resp_headers)
                    await resp.prepare(request)
                    parts, size = [], 0
                    async for chunk in up.content.iter_any():
                        if ttft is None:
                            ttft = (time.perf_counter() - t0) * 1000
                        await resp.write(chunk)
                        if size < CAPTURE_MAX:
                            parts.append(chunk)
                            size += len(chunk)
                        else:
                            complete = False
                    out = b"".join(parts)
                    return resp  # aiohttp ends the stream after `finally` has handed the event over
            except asyncio.TimeoutError:
                status, err = 504, "upstream timed out"
                return error(504, f"the upstream server did not answer within {self.timeout.total:g} s",
                             "upstream_timeout", rid)
            except (ClientConnectionError, ClientPayloadError) as exc:
                if status and streamed:  # the client or the upstream went away mid-stream
                    err = f"stream cut: {type(exc).__name__}"
                    raise
                status, err = 502, f"upstream unreachable: {type(exc).__name__}"
                return error(502, f"cannot reach the upstream server {self.upstream} ({type(exc).__name__})",
                             "upstream_unreachable", rid)
            except ConnectionResetError:
                err = "client disconnected"
                raise
        finally:
            self.log.submit(Exchange(request_id=rid, received_at=received, route=request.path, request_body=body,
                                     status=status, response_body=out, streamed=streamed,
                                     latency_ms=(time.perf_counter() - t0) * 1000, ttft_ms=ttft, error=err,
                                     captured_all=complete, probe=PROBE_HEADER in request.headers), rid)

    async def traces(self, request: web.Request) -> web.Response:
        """OTLP/HTTP: GenAI spans from an application or a server that emits them, as request events."""
        from ftaudit.monitor import otlp

        kind = request.headers.get("content-type", "application/x-protobuf")
        try:
            spans, _ignored = otlp.parse(await request.read(), kind)
        except BadInput as exc:
            return error(400, str(exc), "invalid_request_error")
        taken = 0
        for _ in spans:
            if not self.log.reserve():
                self.log.release(taken)
                return error(503, "the event log is full; retry shortly", "log_queue_full")
            taken += 1
        for span in spans:
            self.log.submit(span, span.span_id)
        if "json" in kind:
            return web.json_response({})
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def feedback(self, request: web.Request) -> web.Response:
        """POST /v1/feedback {"request_id", "label": "correct"|"incorrect" and/or "score" in [0, 1],
        "correction"}: a user's or reviewer's judgement of one answer, the accuracy signal of live traffic."""
        try:
            data = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("request_id"), str):
            return error(400, "send a JSON object with request_id (from the x-ftaudit-request-id header) and a "
                         "label (correct/incorrect) or a score in [0, 1]", "invalid_request_error")
        unknown = set(data) - {"request_id", "label", "score", "correction"}
        if unknown:
            return error(400, f"unknown feedback field {sorted(unknown)[0]!r} (request_id, label, score, "
                         "correction)", "invalid_request_error")
        if data.get("label") is None and data.get("score") is None:
            return error(400, "give a label (correct/incorrect) or a score in [0, 1]", "invalid_request_error")
        from pydantic import ValidationError

        correction = data.get("correction")
        try:
            event = FeedbackEvent(request_id=data["request_id"], time=datetime.now(timezone.utc),
                                  deployment=self.deployment.name, label=data.get("label"), score=data.get("score"),
                                  correction=self.policy.keep(correction, findings(correction))
                                  if isinstance(correction, str) else None)
        except ValidationError as exc:
            first = exc.errors()[0]
            return error(400, f"feedback {'.'.join(map(str, first['loc']))}: {first['msg']}",
                         "invalid_request_error")
        if not await asyncio.to_thread(self.log.knows, event.request_id):
            return error(404, "no request with this id went through this gateway", "not_found")
        if not self.log.reserve():
            return error(503, "the event log is full; retry shortly", "log_queue_full")
        self.log.submit(event, event.request_id)
        return web.json_response({"status": "recorded", "request_id": event.request_id}, status=201)


def deployment_for_run(run_dir: str | Path, name: str | None, output_format: str | None) -> Deployment:
    """The deployment's link to the run: run id and the sha256 of the weights it serves, from the RunRecord."""
    from ftaudit.record import RECORD_FILENAME, RunRecord

    run_dir = Path(run_dir)
    if not (run_dir / RECORD_FILENAME).is_file():
        raise BadInput(f"{run_dir}: no {RECORD_FILENAME} here; pass the run directory of the model being served "
                       "(the output_dir of `ftaudit train`)")
    record = RunRecord.load(run_dir)
    weights = record.weights()
    metrics = {m.metric for f in (record.evaluation.families if record.evaluation else []) for m in f.metrics}
    fmt = output_format or ("json" if "quality.task.json_validity" in metrics else "text")
    return Deployment(name=name or record.model.output_name or record.run_id, run_id=record.run_id,
                      weights_sha256=weights.sha256 if weights else None,
                      weights_path=weights.path if weights else None, output_format=fmt)
