/// The client dialect an endpoint speaks, which decides how its errors look.
enum ClientDialect {
    case openAI
    case anthropic
}
