import Foundation

/// Names (providers, models, routes, tenants, keys) put into admin API paths and queries, escaped so
/// that a `/`, `?`, `&`, `=` or `+` in a name stays part of it. Shared by `switchyard ctl` and the console.
public enum AdminPath {
    /// One path segment.
    public static func segment(_ name: String) -> String {
        name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/", "?", "#", ";"])) ?? name
    }

    /// One query value.
    public static func query(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: .urlQueryAllowed.subtracting(["&", "=", "+", "#", "?", "/"])) ?? value
    }
}
