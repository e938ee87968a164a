import Foundation

/// How names (tenants, keys, routes) are written into Redis keys and `SCAN` patterns.
enum RedisKeyText {
    /// Braces would end a hash tag early, and colons would blur a key's parts.
    static func escaped(_ name: String) -> String {
        // Most names have none of them: admission builds a request's keys twice a request.
        guard name.utf8.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "{") || $0 == UInt8(ascii: "}") || $0 == UInt8(ascii: ":") }) else {
            return name
        }
        return name.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: "{", with: "%7B").replacingOccurrences(of: "}", with: "%7D")
            .replacingOccurrences(of: ":", with: "%3A")
    }

    /// `escaped`, with the characters a `MATCH` pattern gives meaning to (`* ? [ ] \`) taken literally.
    static func literalInPattern(_ name: String) -> String {
        var pattern = ""
        for character in self.escaped(name) {
            if "*?[]\\".contains(character) { pattern.append("\\") }
            pattern.append(character)
        }
        return pattern
    }
}
