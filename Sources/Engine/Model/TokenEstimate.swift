/// A tokenizer-free estimate of a request's prompt tokens, for `count_tokens` (and later for
/// reserving limits before the upstream reports the real count).
///
/// About four bytes of UTF-8 text a token, a few tokens of framing per message and per tool, and a
/// flat 1,600 tokens an image (Anthropic's cost for a picture near 1.15 megapixels, the size its API
/// scales larger ones down to). It overestimates CJK-free English slightly and is never zero.
public enum TokenEstimate {
    public static func inputTokens(_ request: ChatRequest) -> Int {
        var bytes = request.system?.utf8.count ?? 0
        var tokens = 3
        for message in request.messages {
            tokens += 4
            for part in message.content {
                switch part {
                case .text(let text): bytes += text.utf8.count
                case .image: tokens += 1_600
                case .toolUse(let id, let name, let input): bytes += id.utf8.count + name.utf8.count + input.jsonText.utf8.count
                case .toolResult(_, let content, _):
                    tokens += 4
                    for inner in content {
                        if case .text(let text) = inner { bytes += text.utf8.count } else { tokens += 1_600 }
                    }
                }
            }
        }
        for tool in request.tools {
            tokens += 8
            bytes += tool.name.utf8.count + (tool.description?.utf8.count ?? 0) + tool.parameters.jsonText.utf8.count
        }
        return tokens + (bytes + 3) / 4
    }
}
