/// Whether `check` came to hold within `limit`, tried every 50 ms: for what another process or
/// replica does in its own time (a bound, never a timing assertion).
public func eventually(within limit: Duration = .seconds(10), _ check: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if (try? await check()) == true { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return false
}
