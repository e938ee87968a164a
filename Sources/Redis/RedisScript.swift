import Crypto

/// A Lua script, run by its SHA-1 so only the first run on a server sends its source.
public struct RedisScript: Sendable {
    public let source: String
    /// The SHA-1 Redis names it by (`EVALSHA`), in lowercase hex.
    public let sha1: String

    public init(_ source: String) {
        self.source = source
        self.sha1 = Insecure.SHA1.hash(data: Array(source.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    func evalsha(keys: [RedisArgument], arguments: [RedisArgument]) -> RedisCommand {
        RedisCommand("EVALSHA", [RedisArgument(self.sha1), RedisArgument(keys.count)] + keys + arguments)
    }

    func eval(keys: [RedisArgument], arguments: [RedisArgument]) -> RedisCommand {
        RedisCommand("EVAL", [RedisArgument(self.source), RedisArgument(keys.count)] + keys + arguments)
    }
}
