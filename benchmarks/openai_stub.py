"""A fast OpenAI-compatible stub on loopback for the gateway benchmark: a fixed answer, as JSON or as a stream of
server-sent events, with no model behind it, so that what is measured is the gateway's own cost.

    python -m benchmarks.openai_stub PORT
"""

from __future__ import annotations

import asyncio
import json
import sys

from aiohttp import web

ANSWER = "Thanks, Anna Schmidt (anna.schmidt@example.org): your refund for order 1182 is on its way."
BODY = json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "stub",
                   "choices": [{"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": ANSWER}}],
                   "usage": {"prompt_tokens": 20, "completion_tokens": 24, "total_tokens": 44}}).encode()
TEXT_BODY = json.dumps({"id": "cmpl-1", "object": "text_completion", "created": 0, "model": "stub",
                        "choices": [{"index": 0, "finish_reason": "stop", "text": " was a nurse."}],
                        "usage": {"prompt_tokens": 6, "completion_tokens": 4, "total_tokens": 10}}).encode()
CHUNKS = [("data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "choices": [
    {"index": 0, "delta": {"content": word + " "}}]}) + "\n\n").encode() for word in ANSWER.split()]
CHUNKS.append(b'data: {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\ndata: [DONE]\n\n')


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    # Failure modes for the gateway's tests, chosen by the model name.
    if body.get("model") == "unknown-model":
        return web.json_response({"error": {"message": "model unknown-model not found", "type": "not_found"}},
                                 status=404)
    if body.get("model") == "broken":
        return web.json_response({"error": {"message": "CUDA out of memory", "type": "server_error"}}, status=500)
    if body.get("model") == "slow":
        await asyncio.sleep(5)
    if body.get("model") == "auth-echo":  # what credentials reached the upstream
        return web.json_response({"choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": request.headers.get("authorization", "none")}}]})
    if not body.get("stream"):
        return web.Response(body=BODY, content_type="application/json")
    resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await resp.prepare(request)
    for chunk in CHUNKS:
        await resp.write(chunk)
    await resp.write_eof()
    return resp


async def completion(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=TEXT_BODY, content_type="application/json")


def main(port: int) -> None:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/completions", completion)
    app.router.add_get("/v1/models", lambda r: web.json_response({"object": "list", "data": [{"id": "stub"}]}))
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))
