#!/usr/bin/env python3
"""Scores the gateway's semantic cache on labelled question pairs. Standard library only.

For every route (one per embedder and threshold) and every pair i, in the cache namespace `pair-i`:
the first question is sent (a miss, which stores its answer), then the second; the second's
`x-switchyard-cache` header is the prediction (`semantic-hit` = "the same question"). All first
questions go before any second one, so an index that stores its vector just after answering has
had time to. Also prints the cosine similarities per label, from the embeddings server (minilm) and
from a Python port of the gateway's built-in character-trigram embedder (ngram), and how often the
gateway's decision agrees with "cosine >= threshold" computed here.

    evaluate.py --pairs pairs.tsv --embed-url http://127.0.0.1:18111/v1 \\
                --gateway-url http://127.0.0.1:18112 --embedders "minilm ngram" --thresholds "0.80 0.90"

The report is markdown on stdout; progress goes to stderr. Exits non-zero when a request failed or
the cache said something a fresh gateway should not (a first question that was not a miss).
"""

import argparse
import json
import statistics
import sys
import threading
import time
import unicodedata
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

NAMESPACE_HEADER = "x-switchyard-cache-namespace"
CACHE_HEADER = "x-switchyard-cache"
REFUSED_HEADER = "x-switchyard-cache-refused"
OUTCOMES = ("hit", "semantic-hit", "miss", "bypass")


def load_pairs(path):
    """[(label, first, second, category)] from `label<TAB>first<TAB>second` or
    `label<TAB>category<TAB>first<TAB>second`, with a header line."""
    pairs = []
    with open(path, encoding="utf-8") as handle:
        header = handle.readline().rstrip("\n").split("\t")
        if header not in (["label", "first", "second"], ["label", "category", "first", "second"]):
            raise SystemExit(f"{path}: the first line must be 'label<TAB>[category<TAB>]first<TAB>second', not {header}")
        categorized = len(header) == 4
        for number, line in enumerate(handle, start=2):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != len(header) or fields[0] not in ("0", "1") or not fields[-2].strip() or not fields[-1].strip():
                raise SystemExit(f"{path}:{number}: expected {len(header)} tab-separated fields with label 0 or 1")
            category = fields[1] if categorized else ("paraphrase" if fields[0] == "1" else "different")
            pairs.append((int(fields[0]), fields[-2], fields[-1], category))
    seen = {}
    for index, (_, first, second, _) in enumerate(pairs):
        for text in (first, second):
            if text in seen:
                raise SystemExit(f"{path}: '{text}' appears in pairs {seen[text]} and {index}; every question must be unique")
            seen[text] = index
    return pairs


def ngram_vector(text, dimensions=384):
    """The gateway's NGramEmbedder (Sources/Engine/Cache/SemanticIndex.swift), ported: lowercased,
    punctuation (Unicode P*) dropped, padded with two spaces each side, every 3 code points hashed
    with 64-bit FNV-1a into one of `dimensions` buckets, signed by the hash's top bit, unit length."""
    kept = "".join(ch for ch in text.lower() if not unicodedata.category(ch).startswith("P"))
    scalars = [ord(ch) for ch in "  " + kept + "  "]
    vector = [0.0] * dimensions
    for index in range(len(scalars) - 2):
        value = 0xCBF29CE484222325
        for scalar in scalars[index:index + 3]:
            value = ((value ^ scalar) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        vector[value % dimensions] += 1.0 if value >> 63 == 0 else -1.0
    norm = sum(x * x for x in vector) ** 0.5
    return [x / norm for x in vector] if norm > 0 else vector


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def post_json(url, payload, headers=None, timeout=30.0):
    """(status, headers, body bytes); HTTP errors are returned, not raised."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def remote_vectors(embed_url, model, texts, timeout):
    """Unit vectors from an OpenAI-compatible /embeddings endpoint, in batches."""
    vectors = []
    for start in range(0, len(texts), 128):
        batch = texts[start:start + 128]
        status, _, body = post_json(f"{embed_url.rstrip('/')}/embeddings", {"model": model, "input": batch}, timeout=timeout)
        if status != 200:
            raise SystemExit(f"evaluate.py: the embeddings server answered {status}: {body[:300]!r}")
        data = sorted(json.loads(body)["data"], key=lambda item: item["index"])
        if len(data) != len(batch):
            raise SystemExit(f"evaluate.py: asked for {len(batch)} embeddings, got {len(data)}")
        for item in data:
            vector = item["embedding"]
            norm = dot(vector, vector) ** 0.5
            vectors.append([x / norm for x in vector] if norm > 0 else vector)
    return vectors


def similarities(pairs, embedder, embed_url, embed_model, timeout):
    """Cosine similarity of each pair under one embedder."""
    if embedder == "ngram":
        return [dot(ngram_vector(first), ngram_vector(second)) for _, first, second, _ in pairs]
    texts = [text for _, first, second, _ in pairs for text in (first, second)]
    vectors = remote_vectors(embed_url, embed_model, texts, timeout)
    return [dot(vectors[2 * i], vectors[2 * i + 1]) for i in range(len(pairs))]


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def scores(tp, fp, fn):
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return precision, recall, f1


def fmt(value):
    return "–" if value is None else f"{value:.3f}"


class Driver:
    """Sends the pairs through the gateway, two phases, a bounded pool, a deadline."""

    def __init__(self, gateway_url, timeout, workers, deadline, max_tokens, namespace_prefix):
        self.url = f"{gateway_url.rstrip('/')}/v1/chat/completions"
        self.timeout = timeout
        self.workers = workers
        self.deadline = time.monotonic() + deadline
        self.max_tokens = max_tokens
        self.prefix = namespace_prefix
        self.lock = threading.Lock()
        self.done = 0
        self.total = 0
        self.last_report = 0.0

    def ask(self, route, index, text):
        """The cache outcome of one request, or 'error: ...'."""
        if time.monotonic() > self.deadline:
            return "error: past the deadline"
        payload = {"model": route, "messages": [{"role": "user", "content": text}], "max_tokens": self.max_tokens}
        try:
            status, headers, body = post_json(self.url, payload, {NAMESPACE_HEADER: f"{self.prefix}{index}"}, self.timeout)
        except (OSError, urllib.error.URLError) as problem:
            outcome = f"error: {problem}"
        else:
            outcome = (headers.get(CACHE_HEADER) or "").strip().lower() if status == 200 else None
            if status != 200:
                outcome = f"error: HTTP {status} {body[:200].decode(errors='replace')}"
            elif outcome not in OUTCOMES:
                outcome = f"error: {CACHE_HEADER} is {outcome or 'missing'!r}"
            elif headers.get(REFUSED_HEADER):
                # A match the guard refused: a miss, with the reason.
                outcome = f"refused:{headers.get(REFUSED_HEADER).strip()}"
        with self.lock:
            self.done += 1
            now = time.monotonic()
            if now - self.last_report > 5 or self.done == self.total:
                self.last_report = now
                print(f"evaluate.py: {self.done}/{self.total} requests", file=sys.stderr, flush=True)
        return outcome

    def run(self, routes, pairs, settle):
        """{route: [(first outcome, second outcome)]}."""
        jobs = [(route, index) for route in routes for index in range(len(pairs))]
        self.total = 2 * len(jobs)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            firsts = list(pool.map(lambda job: self.ask(job[0], job[1], pairs[job[1]][1]), jobs))
            time.sleep(settle)
            seconds = list(pool.map(lambda job: self.ask(job[0], job[1], pairs[job[1]][2]), jobs))
        results = {route: [None] * len(pairs) for route in routes}
        for (route, index), first, second in zip(jobs, firsts, seconds):
            results[route][index] = (first, second)
        return results


def main():
    parser = argparse.ArgumentParser(description="Scores the gateway's semantic cache on labelled question pairs.")
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--embedders", default="minilm ngram", help="space-separated; routes are named EMBEDDER-THRESHOLD")
    parser.add_argument("--thresholds", default="0.70 0.75 0.80 0.85 0.90 0.95", help="space-separated, as written in the route names")
    parser.add_argument("--guards", default="on off", help="'on' routes are EMBEDDER-THRESHOLD, 'off' routes EMBEDDER-THRESHOLD-unguarded")
    parser.add_argument("--embed-url", default="http://127.0.0.1:18111/v1", help="the minilm embeddings server")
    parser.add_argument("--embed-model", default="all-minilm-l6-v2")
    parser.add_argument("--gateway-url", default="http://127.0.0.1:18112", help="omit with --no-gateway")
    parser.add_argument("--no-gateway", action="store_true", help="only the similarities and what they predict")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument("--deadline", type=float, default=1200.0, help="seconds for all gateway requests")
    parser.add_argument("--settle", type=float, default=0.5, help="seconds between the first and the second phase")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--namespace-prefix", default="pair-")
    args = parser.parse_args()

    pairs = load_pairs(args.pairs)
    embedders = args.embedders.split()
    thresholds = args.thresholds.split()
    for threshold in thresholds:
        if not 0 < float(threshold) <= 1:
            raise SystemExit(f"evaluate.py: threshold {threshold} is not in (0, 1]")
    labels = [label for label, _, _, _ in pairs]
    categories = [category for _, _, _, category in pairs]
    guards = args.guards.split()
    positives = sum(labels)
    out = []
    out.append(f"## Semantic cache quality: {len(pairs)} pairs ({positives} paraphrases, {len(pairs) - positives} hard near misses)")
    out.append("")

    cosines = {}
    for embedder in embedders:
        print(f"evaluate.py: cosine similarities under {embedder}", file=sys.stderr, flush=True)
        cosines[embedder] = similarities(pairs, embedder, args.embed_url, args.embed_model, args.timeout)
    out.append("### Cosine similarity of the two questions, per label")
    out.append("")
    out.append("| embedder | label | n | mean | min | p10 | median | p90 | max |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for embedder in embedders:
        for label, name in ((1, "paraphrase"), (0, "different")):
            values = [c for c, l in zip(cosines[embedder], labels) if l == label]
            if not values:
                continue
            out.append(
                f"| {embedder} | {name} | {len(values)} | {statistics.fmean(values):.3f} | {min(values):.3f} | "
                f"{percentile(values, 0.1):.3f} | {statistics.median(values):.3f} | {percentile(values, 0.9):.3f} | {max(values):.3f} |"
            )
    out.append("")
    out.append("ngram: computed here with a Python port of the gateway's built-in embedder; minilm: from the embeddings server.")
    out.append("")

    failed = False
    if args.no_gateway:
        out.append("### Predicted from the cosines alone (cosine >= threshold = same question)")
        out.append("")
        out.append("| embedder | threshold | TP | FP | FN | TN | precision | recall | F1 |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for embedder in embedders:
            for threshold in thresholds:
                predicted = [c >= float(threshold) for c in cosines[embedder]]
                tp = sum(p and l == 1 for p, l in zip(predicted, labels))
                fp = sum(p and l == 0 for p, l in zip(predicted, labels))
                fn = sum(not p and l == 1 for p, l in zip(predicted, labels))
                tn = sum(not p and l == 0 for p, l in zip(predicted, labels))
                precision, recall, f1 = scores(tp, fp, fn)
                out.append(f"| {embedder} | {threshold} | {tp} | {fp} | {fn} | {tn} | {fmt(precision)} | {fmt(recall)} | {fmt(f1)} |")
    else:
        variants = [(embedder, threshold, guard) for embedder in embedders for threshold in thresholds for guard in guards]
        name = lambda embedder, threshold, guard: f"{embedder}-{threshold}" + ("" if guard == "on" else "-unguarded")
        routes = [name(*variant) for variant in variants]
        driver = Driver(args.gateway_url, args.timeout, args.workers, args.deadline, args.max_tokens, args.namespace_prefix)
        started = time.monotonic()
        results = driver.run(routes, pairs, args.settle)
        elapsed = time.monotonic() - started
        out.append("### The gateway's decisions (the second question answered `semantic-hit` = same question)")
        out.append("")
        out.append("| embedder | threshold | guard | TP | FP | FN | TN | precision | recall | F1 | refused by the guard | agrees with cosine |")
        out.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        problems = []
        per_category = {}
        for embedder, threshold, guard in variants:
            route = name(embedder, threshold, guard)
            tp = fp = fn = tn = agree = errors = refused = 0
            by_category = {}
            for index, ((first, second), label) in enumerate(zip(results[route], labels)):
                if first.startswith("error") or second.startswith("error"):
                    errors += 1
                    problems.append(f"{route} pair {index}: {first if first.startswith('error') else second}")
                    continue
                if first != "miss":
                    problems.append(f"{route} pair {index}: the first question was '{first}', not 'miss'")
                if second == "hit":
                    problems.append(f"{route} pair {index}: the second question was an exact 'hit'")
                if second == "bypass":
                    problems.append(f"{route} pair {index}: the second question bypassed the cache")
                if second.startswith("refused:") and guard != "on":
                    problems.append(f"{route} pair {index}: refused by a guard that is off")
                predicted = second == "semantic-hit"
                refused += second.startswith("refused:")
                cosine = cosines[embedder][index]
                # The threshold decides whether the index finds a match; the guard, whether it is served.
                matched = predicted or second.startswith("refused:")
                # A cosine within 1e-4 of the threshold may round either way in the gateway's float32.
                agree += matched == (cosine >= float(threshold)) or abs(cosine - float(threshold)) < 1e-4
                tp += predicted and label == 1
                fp += predicted and label == 0
                fn += (not predicted) and label == 1
                tn += (not predicted) and label == 0
                counts = by_category.setdefault(categories[index], [0, 0, 0])
                counts[0] += 1
                counts[1] += predicted
                counts[2] += second.startswith("refused:")
            per_category[route] = by_category
            precision, recall, f1 = scores(tp, fp, fn)
            judged = tp + fp + fn + tn
            if judged and agree < 0.95 * judged:
                problems.append(
                    f"{route}: the gateway's matches agree with {embedder}'s cosine >= {threshold} on only {agree}/{judged} pairs; "
                    f"is the route really comparing {embedder} vectors?"
                )
            note = f" ({errors} failed)" if errors else ""
            out.append(
                f"| {embedder} | {threshold} | {guard} | {tp} | {fp} | {fn} | {tn} | {fmt(precision)} | {fmt(recall)} | {fmt(f1)} | {refused} | {agree}/{judged}{note} |"
            )
        out.append("")
        out.append(
            f"{2 * len(routes) * len(pairs)} requests in {elapsed:.1f}s ({args.workers} at a time). "
            "\"refused by the guard\": second questions whose match (cosine >= threshold) the guard did not serve. "
            "\"agrees with cosine\": pairs where the gateway found a match exactly when cosine >= threshold as computed here (ties within 1e-4 agree)."
        )
        out.append("")
        out.append("### Per category: served from the cache (semantic hits) / pairs, and the guard's refusals")
        out.append("")
        names = sorted(set(categories), key=lambda category: (category != "paraphrase", category))
        out.append("| route | " + " | ".join(names) + " |")
        out.append("|---|" + "---:|" * len(names))
        for route in routes:
            cells = []
            for category in names:
                total, hits, refusals = per_category[route].get(category, [0, 0, 0])
                cells.append(f"{hits}/{total}" + (f" ({refusals} refused)" if refusals else ""))
            out.append(f"| {route} | " + " | ".join(cells) + " |")
        out.append("")
        out.append("A paraphrase's cell is what the cache served (higher is better); a near miss's cell counts wrong answers served (0 is the goal).")
        if problems:
            failed = True
            out.append("")
            out.append(f"**Problems: {len(problems)}** (the first 20):")
            out.append("")
            out.extend(f"- {problem}" for problem in problems[:20])
    print("\n".join(out), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
