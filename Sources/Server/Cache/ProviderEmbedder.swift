import Engine
import NIOCore

/// The semantic cache's vectors from an embeddings model of a configured provider: OpenAI-compatible
/// `/embeddings`, Ollama's `/api/embed` or Gemini's `batchEmbedContents`, through the same
/// translation the `/v1/embeddings` endpoint uses.
struct ProviderEmbedder: Embedder {
    let upstream: UpstreamPool.Upstream
    let model: String
    /// The request the lookup is for, passed upstream as `x-request-id`.
    let requestID: String
    /// A lookup waits this long at most: past it the request goes on as a miss.
    let deadline: Duration

    func embed(_ texts: [String]) async throws -> [[Float]] {
        try await self.embedWithUsage(texts).vectors
    }

    /// The vectors and the tokens the provider counted for them (for the ledger).
    func embedWithUsage(_ texts: [String]) async throws -> (vectors: [[Float]], usage: Usage) {
        let body = OpenAIEmbeddings.request(model: self.model, texts: texts)
        let request = try EmbeddingsHandler.upstreamRequest(body, model: self.model, route: self.model, upstream: self.upstream)
        let sent = ContinuousClock.now
        let timer = AttemptTimer(timeouts: self.upstream.settings.timeouts, sent: sent, requestDeadline: sent + self.deadline, streaming: false)
        let reply = try await UpstreamCall.post(request.body, path: request.path, model: self.model, to: self.upstream, requestID: self.requestID, timer: timer)
        let provider = self.upstream.settings.id
        guard reply.isSuccess, let responseBody = reply.body else { throw reply.error(provider: provider) }
        let answer = try EmbeddingsHandler.openAIAnswer(responseBody, request: body, model: self.model, upstream: self.upstream)
        return (try OpenAIEmbeddings.unitVectors(answer.body, count: texts.count, provider: provider), answer.usage)
    }
}
