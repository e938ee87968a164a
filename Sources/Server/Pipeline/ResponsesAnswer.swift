import Engine

/// How a Responses API client is answered: the response's id and creation time, and what the
/// Response echoes of its request.
struct ResponsesAnswer: Sendable {
    let id: String
    let createdAt: Int
    let echo: ResponsesResponseEncoder.Echo

    func object(_ answer: ChatResponse, model: String) -> String {
        ResponsesResponseEncoder.response(answer, id: self.id, model: model, createdAt: self.createdAt, echo: self.echo)
    }

    func streamEncoder(model: String) -> ResponsesStreamEncoder {
        ResponsesStreamEncoder(id: self.id, model: model, createdAt: self.createdAt, echo: self.echo)
    }
}
