import Engine
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1

/// The client dialect an endpoint speaks, which decides how its errors look.
enum ClientDialect {
    case openAI
    case anthropic
}
