import Engine
import Foundation

/// Faults the simulator can inject, chosen by the model name (`gpt-4o-mini:fault=429`) or the
/// `x-simulator-fault` header, so tests can provoke every failure a real provider shows.
enum SimulatedFault: String, CaseIterable {
    /// 429 with `Retry-After`.
    case rateLimited = "429"
    case serverError = "500"
    case unavailable = "503"
    /// Anthropic's "overloaded".
    case overloaded = "529"
    /// The stream (or body) stops half-way and the connection closes.
    case cut
    /// The response stops sending for `stall` (default 30s).
    case stall
    /// A body or stream event that is not JSON.
    case malformed
    /// An error event half-way through a stream that had started fine.
    case streamError = "stream-error"
    /// OpenAI's 429 `insufficient_quota`: the account is out of credit.
    case quota
    /// 400: the prompt exceeds the model's context window, in the dialect's words.
    case context
}

/// How one simulated request behaves: pacing and fault.
struct SimulatorBehaviour {
    var fault: SimulatedFault?
    var timeToFirstToken: Duration
    var tokensPerSecond: Double
    var stall: Duration = .seconds(30)
    /// The share of requests the fault hits (1 = all), so a test can make a target flaky.
    var faultRate = 1.0
    /// The `Retry-After` a 429 carries, in seconds.
    var retryAfterSeconds = 1.0

    /// Reads options from `name:key=value:key=value` and the `x-simulator-*` headers.
    /// - Returns: the behaviour and the model name without its options.
    static func parse(model: String, header: (String) -> String?, defaults: SimulatorSettings) -> (SimulatorBehaviour, String) {
        var behaviour = SimulatorBehaviour(fault: nil, timeToFirstToken: defaults.timeToFirstToken, tokensPerSecond: defaults.tokensPerSecond)
        let parts = model.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        var options: [(String, String)] = parts.dropFirst().compactMap { part in
            guard let equals = part.firstIndex(of: "=") else { return nil }
            return (String(part[..<equals]), String(part[part.index(after: equals)...]))
        }
        for name in ["fault", "ttft", "tps", "stall", "fault-rate", "retry-after"] {
            if let value = header("x-simulator-\(name)") { options.append((name, value)) }
        }
        for (key, value) in options {
            switch key {
            case "fault": behaviour.fault = SimulatedFault(rawValue: value)
            case "ttft": behaviour.timeToFirstToken = DurationText.parse(value) ?? behaviour.timeToFirstToken
            case "tps": behaviour.tokensPerSecond = Double(value) ?? behaviour.tokensPerSecond
            case "stall": behaviour.stall = DurationText.parse(value) ?? behaviour.stall
            case "fault-rate": behaviour.faultRate = Double(value) ?? behaviour.faultRate
            case "retry-after": behaviour.retryAfterSeconds = Double(value) ?? behaviour.retryAfterSeconds
            default: continue
            }
        }
        if behaviour.faultRate < 1 && Double.random(in: 0..<1) >= behaviour.faultRate { behaviour.fault = nil }
        return (behaviour, parts.first ?? model)
    }

    /// The pause before token `index` (0-based) after the first: 1/tps each. (The first token's wait,
    /// TTFT, comes before the stream's first event: a real provider sends nothing until prefill is done.)
    func delay(beforeToken index: Int) -> Duration {
        if index == 0 { return .zero }
        guard self.tokensPerSecond > 0 else { return .zero }
        return .nanoseconds(Int64(1_000_000_000 / self.tokensPerSecond))
    }
}

/// Parses request bodies of each dialect into a `SimulatorPrompt`.
enum SimulatorRequestParser {
    enum Failure: Error {
        case invalid(String)
        /// Refused with this answer (a dialect's own error, as a provider words it).
        case refused(SimulatedError)
    }

    static func object(_ body: Data) throws(Failure) -> [String: Any] {
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            throw .invalid("the body is not a JSON object")
        }
        return object
    }

    /// OpenAI Chat Completions (and Ollama's `/v1`).
    static func openAI(_ json: [String: Any]) throws(Failure) -> SimulatorPrompt {
        guard let model = json["model"] as? String else { throw .invalid("you must provide a model parameter") }
        guard let messages = json["messages"] as? [[String: Any]], !messages.isEmpty else {
            throw .invalid("'messages' must be a non-empty array")
        }
        var prompt = SimulatorPrompt(model: model)
        for message in messages {
            let role = message["role"] as? String ?? ""
            let text = self.text(of: message["content"], images: &prompt.imageCount)
            prompt.messageTexts.append(text)
            if role == "user" { prompt.lastUserText = text }
            prompt.lastIsToolResult = role == "tool"
        }
        prompt.tools = self.functionTools(json["tools"])
        prompt.toolsDisabled = (json["tool_choice"] as? String) == "none"
        prompt.parallelToolCalls = json["parallel_tool_calls"] as? Bool ?? true
        prompt.maxTokens = json["max_completion_tokens"] as? Int ?? json["max_tokens"] as? Int
        prompt.stream = json["stream"] as? Bool ?? false
        prompt.includeUsage = (json["stream_options"] as? [String: Any])?["include_usage"] as? Bool ?? false
        return prompt
    }

    /// OpenAI Responses, after the turns of the response it continues (`history`: their texts).
    static func responses(_ json: [String: Any], history: [String]) throws(Failure) -> SimulatorPrompt {
        guard let model = json["model"] as? String else { throw .invalid("Missing required parameter: 'model'.") }
        var prompt = SimulatorPrompt(model: model)
        prompt.messageTexts = history
        if let instructions = json["instructions"] as? String { prompt.messageTexts.append(instructions) }
        switch json["input"] {
        case let text as String:
            prompt.messageTexts.append(text)
            prompt.lastUserText = text
        case let items as [[String: Any]]:
            for item in items {
                switch item["type"] as? String ?? "message" {
                case "message":
                    let text = self.text(of: item["content"], images: &prompt.imageCount)
                    prompt.messageTexts.append(text)
                    if item["role"] as? String == "user" { prompt.lastUserText = text }
                    prompt.lastIsToolResult = false
                case "function_call":
                    prompt.messageTexts.append(item["arguments"] as? String ?? "")
                case "function_call_output":
                    prompt.messageTexts.append(item["output"] as? String ?? "")
                    prompt.lastIsToolResult = true
                default:
                    continue
                }
            }
        default:
            guard !history.isEmpty else { throw .invalid("Missing required parameter: 'input'.") }
        }
        prompt.tools = (json["tools"] as? [[String: Any]] ?? []).compactMap { tool in
            guard tool["type"] as? String == "function", let name = tool["name"] as? String else { return nil }
            return SimulatorPrompt.Tool(name: name, properties: self.properties(tool["parameters"]))
        }
        prompt.toolsDisabled = (json["tool_choice"] as? String) == "none"
        prompt.parallelToolCalls = json["parallel_tool_calls"] as? Bool ?? true
        prompt.maxTokens = json["max_output_tokens"] as? Int
        prompt.stream = json["stream"] as? Bool ?? false
        prompt.kept = json["store"] as? Bool ?? true
        prompt.echo = SimulatedEcho(instructions: json["instructions"] as? String, previousResponseID: json["previous_response_id"] as? String, store: prompt.kept)
        return prompt
    }

    /// Anthropic Messages.
    static func anthropic(_ json: [String: Any]) throws(Failure) -> SimulatorPrompt {
        guard let model = json["model"] as? String else { throw .invalid("model: Field required") }
        guard let maxTokens = json["max_tokens"] as? Int else { throw .invalid("max_tokens: Field required") }
        guard let messages = json["messages"] as? [[String: Any]], !messages.isEmpty else {
            throw .invalid("messages: at least one message is required")
        }
        var prompt = SimulatorPrompt(model: model)
        prompt.maxTokens = maxTokens
        if let system = json["system"] {
            prompt.messageTexts.append(self.text(of: system, images: &prompt.imageCount))
        }
        for message in messages {
            let role = message["role"] as? String ?? ""
            let text = self.text(of: message["content"], images: &prompt.imageCount)
            prompt.messageTexts.append(text)
            let blocks = message["content"] as? [[String: Any]] ?? []
            prompt.lastIsToolResult = blocks.contains { $0["type"] as? String == "tool_result" }
            if role == "user" && !prompt.lastIsToolResult { prompt.lastUserText = text }
        }
        prompt.tools = (json["tools"] as? [[String: Any]] ?? []).compactMap { tool in
            guard let name = tool["name"] as? String else { return nil }
            return SimulatorPrompt.Tool(name: name, properties: self.properties(tool["input_schema"]))
        }
        let choice = json["tool_choice"] as? [String: Any]
        prompt.toolsDisabled = choice?["type"] as? String == "none"
        prompt.parallelToolCalls = !(choice?["disable_parallel_tool_use"] as? Bool ?? false)
        prompt.stream = json["stream"] as? Bool ?? false
        return prompt
    }

    /// Ollama native `/api/chat`.
    static func ollama(_ json: [String: Any]) throws(Failure) -> SimulatorPrompt {
        guard let model = json["model"] as? String else { throw .invalid("model is required") }
        var prompt = SimulatorPrompt(model: model)
        for message in json["messages"] as? [[String: Any]] ?? [] {
            let role = message["role"] as? String ?? ""
            let text = message["content"] as? String ?? ""
            prompt.imageCount += (message["images"] as? [Any])?.count ?? 0
            prompt.messageTexts.append(text)
            if role == "user" { prompt.lastUserText = text }
            prompt.lastIsToolResult = role == "tool"
        }
        prompt.tools = self.functionTools(json["tools"])
        prompt.maxTokens = (json["options"] as? [String: Any])?["num_predict"] as? Int
        // Ollama streams unless told otherwise.
        prompt.stream = json["stream"] as? Bool ?? true
        return prompt
    }

    /// Gemini `generateContent`; streaming is chosen by the URL, not the body.
    static func gemini(_ json: [String: Any], model: String, stream: Bool) throws(Failure) -> SimulatorPrompt {
        guard let contents = json["contents"] as? [[String: Any]], !contents.isEmpty else {
            throw .invalid("* GenerateContentRequest.contents: contents is not specified")
        }
        var prompt = SimulatorPrompt(model: model)
        if let system = (json["systemInstruction"] as? [String: Any])?["parts"] as? [[String: Any]] {
            prompt.messageTexts.append(system.compactMap { $0["text"] as? String }.joined(separator: "\n"))
        }
        for content in contents {
            let parts = content["parts"] as? [[String: Any]] ?? []
            let text = parts.compactMap { $0["text"] as? String }.joined(separator: "\n")
            prompt.imageCount += parts.filter { $0["inlineData"] != nil }.count
            prompt.messageTexts.append(text)
            prompt.lastIsToolResult = parts.contains { $0["functionResponse"] != nil }
            if content["role"] as? String != "model" && !prompt.lastIsToolResult { prompt.lastUserText = text }
        }
        let declarations = (json["tools"] as? [[String: Any]] ?? []).flatMap { $0["functionDeclarations"] as? [[String: Any]] ?? [] }
        prompt.tools = declarations.compactMap { declaration in
            guard let name = declaration["name"] as? String else { return nil }
            return SimulatorPrompt.Tool(name: name, properties: self.properties(declaration["parametersJsonSchema"] ?? declaration["parameters"]))
        }
        let mode = ((json["toolConfig"] as? [String: Any])?["functionCallingConfig"] as? [String: Any])?["mode"] as? String
        prompt.toolsDisabled = mode == "NONE"
        prompt.maxTokens = (json["generationConfig"] as? [String: Any])?["maxOutputTokens"] as? Int
        prompt.stream = stream
        return prompt
    }

    /// OpenAI's (and Ollama's) `[{"type":"function","function":{"name","parameters"}}]`.
    private static func functionTools(_ tools: Any?) -> [SimulatorPrompt.Tool] {
        (tools as? [[String: Any]] ?? []).compactMap { tool in
            guard let function = tool["function"] as? [String: Any], let name = function["name"] as? String else { return nil }
            return SimulatorPrompt.Tool(name: name, properties: self.properties(function["parameters"]))
        }
    }

    /// Text of a content value in any dialect: a string, or a list of parts/blocks.
    private static func text(of content: Any?, images: inout Int) -> String {
        if let string = content as? String { return string }
        guard let parts = content as? [[String: Any]] else { return "" }
        var texts: [String] = []
        for part in parts {
            switch part["type"] as? String {
            case "text", "input_text", "output_text": texts.append(part["text"] as? String ?? "")
            case "image_url", "image", "input_image": images += 1
            case "tool_result": texts.append(self.text(of: part["content"], images: &images))
            default: continue
            }
        }
        return texts.joined(separator: "\n")
    }

    private static func properties(_ schema: Any?) -> [(name: String, type: String)] {
        guard let properties = (schema as? [String: Any])?["properties"] as? [String: Any] else { return [] }
        return properties.keys.sorted().map { name in
            (name, ((properties[name] as? [String: Any])?["type"] as? String) ?? "string")
        }
    }
}
