import Engine
import Foundation

/// What the simulator was asked, reduced to what decides its answer. Parsed from any of the three
/// dialects, so the answer (and its token counts) is the same whichever shape the request had.
struct SimulatorPrompt {
    struct Tool {
        let name: String
        /// Property names and JSON types from the tool's parameter schema, in a stable order.
        let properties: [(name: String, type: String)]
    }

    var model: String
    var messageTexts: [String] = []
    var lastUserText = ""
    var lastIsToolResult = false
    var tools: [Tool] = []
    var toolsDisabled = false
    var parallelToolCalls = true
    var maxTokens: Int?
    var stream = false
    var includeUsage = false
    var imageCount = 0
    /// Whether the answer is kept for a follow-up (the Responses API's `store`).
    var kept = true
    /// What a Response echoes of its request.
    var echo = SimulatedEcho()

    /// A deterministic prompt-token estimate: 4 bytes a token, plus a few tokens of framing per message,
    /// as chat templates add them.
    var promptTokens: Int {
        self.messageTexts.reduce(3) { $0 + 4 + ($1.utf8.count + 3) / 4 } + self.imageCount * 85
            + self.tools.reduce(0) { $0 + 8 + $1.properties.count * 4 }
    }
}

/// The simulator's answer to one prompt: deterministic text or tool calls, cut at `max_tokens`.
/// The request fields a Responses API answer repeats, as OpenAI's do.
struct SimulatedEcho {
    var instructions: String?
    var previousResponseID: String?
    var store = true
}

struct SimulatedTurn {
    struct ToolCall {
        let id: String
        let name: String
        /// The arguments as JSON text, split in the fragments a stream sends.
        let argumentFragments: [String]
        var arguments: String { self.argumentFragments.joined() }
    }

    enum Finish { case stop, length, toolCalls }

    let textTokens: [String]
    let toolCalls: [ToolCall]
    let finish: Finish
    let promptTokens: Int
    let echo: SimulatedEcho

    var text: String { self.textTokens.joined() }

    /// Every token the simulator "generated": text tokens, plus each tool call's name and argument fragments.
    var completionTokens: Int {
        self.textTokens.count + self.toolCalls.reduce(0) { $0 + 1 + $1.argumentFragments.count }
    }

    static let vocabulary = [
        "the", "gateway", "routes", "each", "request", "to", "a", "healthy", "provider", "and", "streams",
        "tokens", "back", "while", "it", "counts", "usage", "exactly", "so", "every", "team", "gets", "an",
        "honest", "bill", "with", "low", "latency", "under", "load", "for", "on-call", "engineers",
    ]

    init(prompt: SimulatorPrompt) {
        self.promptTokens = prompt.promptTokens
        self.echo = prompt.echo
        let seed = Self.fnv1a(prompt.lastUserText + "|" + prompt.model)

        if !prompt.tools.isEmpty && !prompt.toolsDisabled && !prompt.lastIsToolResult {
            let count = prompt.parallelToolCalls ? min(2, prompt.tools.count) : 1
            self.toolCalls = prompt.tools.prefix(count).enumerated().map { index, tool in
                let arguments = Self.arguments(for: tool, seed: seed &+ UInt64(index))
                return ToolCall(id: Self.identifier(seed: seed &+ UInt64(index), length: 24), name: tool.name, argumentFragments: Self.fragments(of: arguments))
            }
            self.textTokens = []
            self.finish = .toolCalls
            return
        }

        var tokens: [String]
        if prompt.lastIsToolResult {
            tokens = ["Based", " on", " the", " tool", " result", ",", " here", " is", " the", " answer", "."]
        } else {
            tokens = ["This", " is", " a", " simulated", " reply", ":"]
            let length = 10 + Int(seed % 15)
            var state = seed
            for _ in 0..<length {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                tokens.append(" " + Self.vocabulary[Int((state >> 33) % UInt64(Self.vocabulary.count))])
            }
            tokens.append(".")
        }
        if let limit = prompt.maxTokens, limit < tokens.count {
            self.textTokens = Array(tokens.prefix(max(limit, 0)))
            self.finish = .length
        } else {
            self.textTokens = tokens
            self.finish = .stop
        }
        self.toolCalls = []
    }

    /// Plausible arguments from the schema: a city for strings, 1 for numbers, true for booleans.
    static func arguments(for tool: SimulatorPrompt.Tool, seed: UInt64) -> String {
        let cities = ["Paris", "Edinburgh", "Tokyo", "Lisbon"]
        var json = JSONWriter()
        json.openObject()
        for property in tool.properties {
            switch property.type {
            case "number", "integer": json.field(property.name, 1)
            case "boolean": json.field(property.name, true)
            case "array":
                json.key(property.name)
                json.openArray()
                json.closeArray()
            case "object":
                json.key(property.name)
                json.openObject()
                json.closeObject()
            default: json.field(property.name, cities[Int(seed % UInt64(cities.count))])
            }
        }
        json.closeObject()
        return json.output
    }

    /// Splits JSON text in small fragments, as providers stream tool arguments.
    static func fragments(of text: String) -> [String] {
        var fragments: [String] = []
        var current = ""
        for character in text {
            current.append(character)
            if current.count == 6 {
                fragments.append(current)
                current = ""
            }
        }
        if !current.isEmpty { fragments.append(current) }
        return fragments
    }

    static func identifier(seed: UInt64, length: Int) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        // Spread the seed first: neighbouring seeds (parallel calls) must not share an id.
        var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
        var output = ""
        for _ in 0..<length {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            output.append(alphabet[Int((state >> 33) % UInt64(alphabet.count))])
        }
        return output
    }

    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }
}
