/// `${VAR}` and `${VAR:-default}` in config values; `$${` writes a literal `${`.
public enum EnvInterpolation {
    public enum Failure: Error, Equatable {
        case unset(String)
        case unterminated
    }

    public static func expand(_ text: String, environment: [String: String]) throws(Failure) -> String {
        guard text.contains("$") else { return text }
        var output = ""
        var rest = Substring(text)
        while let dollar = rest.firstIndex(of: "$") {
            output += rest[..<dollar]
            let afterDollar = rest[rest.index(after: dollar)...]
            if afterDollar.hasPrefix("${") {
                output += "${"
                rest = afterDollar.dropFirst(2)
                continue
            }
            guard afterDollar.hasPrefix("{") else {
                output += "$"
                rest = afterDollar
                continue
            }
            guard let close = afterDollar.firstIndex(of: "}") else { throw .unterminated }
            let expression = afterDollar[afterDollar.index(after: afterDollar.startIndex)..<close]
            if let colon = expression.firstIndex(of: ":"), expression[expression.index(after: colon)...].hasPrefix("-") {
                let name = String(expression[..<colon])
                let fallback = String(expression[expression.index(colon, offsetBy: 2)...])
                let value = environment[name] ?? ""
                output += value.isEmpty ? fallback : value
            } else {
                guard let value = environment[String(expression)] else { throw .unset(String(expression)) }
                output += value
            }
            rest = afterDollar[afterDollar.index(after: close)...]
        }
        output += rest
        return output
    }
}
