/// The client dialect an endpoint speaks, which decides how its errors look.
enum ClientDialect {
    case openAI
    case anthropic
}

extension ClientDialect {
    /// The API's name in cache keys.
    var cacheFormat: String {
        switch self {
        case .openAI: "openai"
        case .anthropic: "anthropic"
        }
    }
}
