"""A real OTLP/HTTP trace receiver for the tests: `POST /v1/traces` decoded with PyPI's
`opentelemetry-proto`, spans kept in memory for the tests to read; and a recording OpenAI-compatible
upstream, so a test can see the `traceparent` each attempt was sent with.
"""
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest, ExportTraceServiceResponse
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

KINDS = {
    ProtoSpan.SPAN_KIND_INTERNAL: "internal",
    ProtoSpan.SPAN_KIND_SERVER: "server",
    ProtoSpan.SPAN_KIND_CLIENT: "client",
    ProtoSpan.SPAN_KIND_PRODUCER: "producer",
    ProtoSpan.SPAN_KIND_CONSUMER: "consumer",
}


def _value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


@dataclass
class Span:
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str
    start: int
    end: int
    attributes: dict
    status: str
    resource: dict = field(default_factory=dict)


class Receiver:
    """Every span exported to it, in arrival order."""

    def __init__(self, delay=0.0):
        """`delay`: seconds each export waits before it is answered (a slow collector)."""
        self.spans = []
        self.requests = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.path != "/v1/traces" or self.headers.get("content-type") != "application/x-protobuf":
                    self.send_response(404)
                    self.end_headers()
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                time.sleep(delay)
                receiver._keep(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _keep(self, request):
        spans = []
        for resource_spans in request.resource_spans:
            resource = {item.key: _value(item.value) for item in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(Span(
                        name=span.name,
                        kind=KINDS.get(span.kind, str(span.kind)),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        start=span.start_time_unix_nano,
                        end=span.end_time_unix_nano,
                        attributes={item.key: _value(item.value) for item in span.attributes},
                        status={0: "unset", 1: "ok", 2: "error"}.get(span.status.code, "?"),
                        resource=resource,
                    ))
        with self._lock:
            self.spans.extend(spans)
            self.requests += 1

    def trace(self, predicate, settle=0.3, timeout=15):
        """Every span of the first trace whose server span satisfies `predicate`, once its spans stop
        arriving (the exporter sends a batch a second)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                servers = [span for span in self.spans if span.kind == "server" and predicate(span)]
                if servers:
                    trace_id = servers[0].trace_id
                    found = [span for span in self.spans if span.trace_id == trace_id]
            if servers:
                time.sleep(settle)
                with self._lock:
                    again = [span for span in self.spans if span.trace_id == trace_id]
                if len(again) == len(found):
                    return again
            time.sleep(0.1)
        raise AssertionError(f"no such trace within {timeout} s; server spans seen: "
                             f"{[(s.name, s.attributes.get('switchyard.request_id')) for s in self.spans if s.kind == 'server']}")

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class LoopbackUpstream:
    """An upstream on a free loopback port, served by its own thread: `serve` starts it with a
    handler class, `base_url` names its `/v1`, `stop` ends it."""

    def serve(self, handler):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class RecordingUpstream(LoopbackUpstream):
    """An OpenAI-compatible upstream that answers every chat completion, whole or streamed, and keeps
    the `traceparent` of each request it got."""

    def __init__(self):
        self.traceparents = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
                upstream.traceparents.append(self.headers.get("traceparent"))
                usage = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
                if body.get("stream"):
                    events = [
                        {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": body["model"],
                         "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": None}]},
                        {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": body["model"],
                         "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                        {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": body["model"], "choices": [], "usage": usage},
                    ]
                    payload = "".join(f"data: {json.dumps(event)}\n\n" for event in events) + "data: [DONE]\n\n"
                    content_type = "text/event-stream"
                else:
                    payload = json.dumps({
                        "id": "c1", "object": "chat.completion", "created": 1, "model": body["model"],
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi there"}, "finish_reason": "stop"}],
                        "usage": usage,
                    })
                    content_type = "application/json"
                data = payload.encode()
                self.send_response(200)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.serve(Handler)
