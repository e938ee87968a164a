import Crypto
import Engine
import Foundation
import Synchronization

/// Who made a request: a tenant and key, or nobody (anonymous local use).
struct Caller: Sendable, Equatable {
    let tenant: String?
    let key: KeyRecord?

    static let anonymous = Caller(tenant: nil, key: nil)

    var label: String {
        if let key { return "key '\(key.name)' (\(key.prefix)…) of tenant '\(key.tenant)'" }
        return self.tenant.map { "tenant '\($0)'" } ?? "anonymous requests"
    }
}

/// Every valid virtual key, in memory: a request's key is checked without touching the database.
/// Keys are `sk-sy-` + 40 random base62 characters; only their SHA-256 is kept, found by the
/// 12-character prefix and compared in constant time.
final class KeyRing: Sendable {
    static let keyPrefix = DeclaredKey.prefix
    private let byPrefix = Mutex<[String: [KeyRecord]]>([:])

    /// Replaces the ring with `records` (from the store) plus the keys declared in `config`.
    func load(_ records: [KeyRecord], config: GatewayConfig) {
        var index: [String: [KeyRecord]] = [:]
        for record in records + Self.declared(config) { index[record.prefix, default: []].append(record) }
        self.byPrefix.withLock { $0 = index }
    }

    /// Replaces the keys declared in the config (after a reload); keys made through the API stay.
    func reloadDeclared(_ config: GatewayConfig) {
        let kept = self.all.filter { !$0.id.hasPrefix("cfg_") }
        self.load(kept, config: config)
    }

    /// Replaces the stored keys with `records` (a shared database's, read again); declared keys stay.
    func replaceStored(_ records: [KeyRecord]) {
        let declared = self.all.filter { $0.id.hasPrefix("cfg_") }
        var index: [String: [KeyRecord]] = [:]
        for record in records + declared { index[record.prefix, default: []].append(record) }
        self.byPrefix.withLock { $0 = index }
    }

    /// Adds the key, or replaces the ring's copy of it (another replica revoked it, say).
    func upsert(_ record: KeyRecord) {
        self.byPrefix.withLock { index in
            var records = index[record.prefix, default: []]
            records.removeAll { $0.id == record.id }
            records.append(record)
            index[record.prefix] = records
        }
    }

    /// The record of `token`, whatever its state (revoked and expired ones too), or nil.
    func record(for token: String) -> KeyRecord? {
        let prefix = String(token.prefix(12))
        let hash = Self.hash(token)
        let candidates = self.byPrefix.withLock { $0[prefix] ?? [] }
        return candidates.first { ConstantTime.equal($0.hash, hash) }
    }

    var all: [KeyRecord] { self.byPrefix.withLock { $0.values.flatMap { $0 } }.sorted { $0.createdAt < $1.createdAt } }

    /// Lowercase hex of the SHA-256 (written by hand: a formatted string per byte costs more than the hash).
    static func hash(_ token: String) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var hex = [UInt8]()
        hex.reserveCapacity(64)
        for byte in SHA256.hash(data: Data(token.utf8)) {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: hex, as: UTF8.self)
    }

    /// A new key and its record. The key itself is shown once and never stored.
    static func make(tenant: String, name: String, limits: LimitSettings, models: [String], expires: Duration?, now: Double) -> (key: String, record: KeyRecord) {
        var generator = SystemRandomNumberGenerator()
        func random(_ count: Int, from alphabet: String) -> String {
            let characters = Array(alphabet)
            return String((0..<count).map { _ in characters[Int.random(in: 0..<characters.count, using: &generator)] })
        }
        let key = Self.keyPrefix + random(40, from: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        let record = KeyRecord(
            // Drawn apart from the secret: the id is shown in listings, the audit log and the ledger,
            // which must reveal no more of the key than its public prefix.
            id: "key_" + random(16, from: "abcdefghijklmnopqrstuvwxyz0123456789"),
            tenant: tenant, name: name, prefix: String(key.prefix(12)), hash: Self.hash(key), createdAt: now,
            expiresAt: expires.map { now + $0.seconds }, revokedAt: nil,
            rpm: limits.requestsPerMinute, rpd: limits.requestsPerDay, tpm: limits.tokensPerMinute, concurrency: limits.concurrency,
            budgetDailyUsd: limits.dailyBudgetUSD, budgetMonthlyUsd: limits.monthlyBudgetUSD, models: models.joined(separator: ",")
        )
        return (key, record)
    }

    /// Keys written in the config file: their records are made from the file at every load.
    static func declared(_ config: GatewayConfig) -> [KeyRecord] {
        config.tenants.flatMap { tenant in
            tenant.keys.map { key in
                let token = key.secret.exposedValue
                return KeyRecord(
                    id: "cfg_\(tenant.name)_\(key.name)", tenant: tenant.name, name: key.name, prefix: String(token.prefix(12)),
                    hash: Self.hash(token), createdAt: 0, expiresAt: nil, revokedAt: nil,
                    rpm: key.limits.requestsPerMinute, rpd: key.limits.requestsPerDay, tpm: key.limits.tokensPerMinute,
                    concurrency: key.limits.concurrency, budgetDailyUsd: key.limits.dailyBudgetUSD, budgetMonthlyUsd: key.limits.monthlyBudgetUSD,
                    models: key.models.joined(separator: ",")
                )
            }
        }
    }
}

extension KeyRecord {
    var view: KeyView {
        KeyView(
            id: self.id, tenant: self.tenant, name: self.name, prefix: self.prefix, source: self.id.hasPrefix("cfg_") ? "config" : "api",
            createdAt: self.createdAt, expiresAt: self.expiresAt, revokedAt: self.revokedAt, limits: self.limits.summary, models: self.models
        )
    }

    var limits: LimitSettings {
        LimitSettings(
            requestsPerMinute: self.rpm, requestsPerDay: self.rpd, tokensPerMinute: self.tpm, concurrency: self.concurrency,
            dailyBudgetUSD: self.budgetDailyUsd, monthlyBudgetUSD: self.budgetMonthlyUsd
        )
    }

    var modelGlobs: [String] { self.models.split(separator: ",").map(String.init) }
}
