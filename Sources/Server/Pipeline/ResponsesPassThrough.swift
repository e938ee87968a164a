import Engine
import HTTPTypes
import Hummingbird
import NIOCore

/// A Responses request passed through to an upstream that serves the API: its answer goes back as
/// it came, whole or event for event, read on the way for its usage, how it ended and its id (kept,
/// when the client keeps it, so that a follow-up finds its way back to that upstream). The
/// upstream's own errors pass on as they came, as for chat.
enum ResponsesPassThrough {
    static func respond(_ exchange: ExchangeContext) async throws -> Response {
        let outcome = exchange.outcome
        let reply = outcome.reply
        guard reply.isSuccess else { return reply.openAIErrorResponse(exchange, overhead: outcome.overhead(since: exchange.started)) }
        guard let body = reply.body else {
            guard let stream = reply.stream else { throw GatewayError.internalFailure("a successful reply with neither body nor stream") }
            let (provider, records) = (exchange.target.provider, exchange.recordsAnswer)
            return Response(
                status: .ok,
                headers: ChatCompletionsHandler.streamHeaders(exchange, overhead: outcome.overhead(since: exchange.started)),
                body: UpstreamCall.relayedStream(stream, exchange) { ResponsesStreamRelay(provider: provider, records: records) }
            )
        }
        let answer = try ResponsesResponseDecoder.decode(body, provider: exchange.target.provider)
        exchange.remember(answer)
        exchange.logCompletion(usage: answer.usage, finishReason: OpenAIResponseEncoder.finishReason(answer.stopReason), streamed: false)
        var headers = HTTPFields()
        exchange.setAnswerHeaders(&headers, usage: answer.usage)
        await exchange.keep(answer)
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: body))
    }
}
