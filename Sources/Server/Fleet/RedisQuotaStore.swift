import Engine
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Redis
import Synchronization

/// Limits and budgets shared by every replica through Redis (`state: redis://…`): a request's whole
/// admission, every limit of its tenant and key, is one script run (`QuotaScripts.admit`), all or
/// nothing, on Redis's clock; its settlement is another, sent without the answer waiting for it.
///
/// Concurrency and reserved money are leases with an expiry (`leaseTTL`), renewed while their
/// request runs: the leases of a replica that died return within one TTL. When Redis does not
/// answer within the client's command timeout, admission follows `onError`.
final class RedisQuotaStore: QuotaStore {
    let redis: RedisClient
    private let onError: RedisStateSettings.OnError
    let leaseTTL: Duration
    private let logger: Logger
    /// Admissions Redis could not decide, by what `on_error` made of them.
    private let denied = Atomic<Int>(0)
    private let allowed = Atomic<Int>(0)
    var unavailableAdmissions: (denied: Int, allowed: Int) { (self.denied.load(ordering: .relaxed), self.allowed.load(ordering: .relaxed)) }
    private let unreachable = ThrottledWarning()
    /// The leases this replica holds, each with its request's keys (its settlement and renewals use
    /// them), renewed every third of their TTL until settled.
    private let leases = Mutex<[String: [String]]>([:])

    init(redis: RedisClient, onError: RedisStateSettings.OnError, leaseTTL: Duration = .seconds(30), logger: Logger) {
        self.redis = redis
        self.onError = onError
        self.leaseTTL = leaseTTL
        self.logger = logger
    }

    func admit(_ request: AdmissionRequest, at now: ContinuousClock.Instant, day: String, month: String) async -> Result<AdmissionTicket, QuotaRejection> {
        guard let run = self.admission(of: request, day: day, month: month) else { return Self.unlimited(request) }
        do {
            return self.interpret(try await self.redis.run(QuotaScripts.admit, keys: run.keys, arguments: run.arguments), run, request)
        } catch {
            return self.unavailable(run.first, request, error)
        }
    }

    /// `admit` for the fast lane, on its event loop and without suspending: nil when that loop has no
    /// connection to Redis ready (the request then takes the framework lane, whose `admit` connects).
    func admitOnLoop(_ request: AdmissionRequest, day: String, month: String, on eventLoop: any EventLoop) -> EventLoopFuture<Result<AdmissionTicket, QuotaRejection>>? {
        guard let run = self.admission(of: request, day: day, month: month) else { return eventLoop.makeSucceededFuture(Self.unlimited(request)) }
        guard let reply = self.redis.runOnLoop(QuotaScripts.admit, keys: run.keys, arguments: run.arguments, on: eventLoop) else { return nil }
        return reply.map { self.interpret($0, run, request) }.recover { self.unavailable(run.first, request, $0) }
    }

    /// One admission's script run: its lease, its keys and arguments.
    private struct AdmissionRun {
        let first: QuotaSubject
        let lease: String
        let keyNames: [String]
        let keys: [RedisArgument]
        let arguments: [RedisArgument]
    }

    private static func unlimited(_ request: AdmissionRequest) -> Result<AdmissionTicket, QuotaRejection> {
        .success(AdmissionTicket(subjects: [], reservedTokens: request.reservedTokens, reservedCost: request.reservedCost, report: RateLimitReport()))
    }

    /// Nil for a request with no subjects (nothing to limit).
    private func admission(of request: AdmissionRequest, day: String, month: String) -> AdmissionRun? {
        guard let first = request.subjects.first?.0 else { return nil }
        let lease = UUID().uuidString
        let keys = Self.keys(request.subjects.map(\.0), day: day, month: month)
        var arguments: [RedisArgument] = [
            RedisArgument(lease), RedisArgument(request.reservedTokens), RedisArgument(request.reservedCost),
            RedisArgument(Int(self.leaseTTL / .milliseconds(1))), RedisArgument(request.subjects.count),
        ]
        arguments.reserveCapacity(arguments.count + 6 * request.subjects.count)
        for (_, limits) in request.subjects {
            arguments += [
                Self.argument(limits.requestsPerMinute), Self.argument(limits.requestsPerDay), Self.argument(limits.tokensPerMinute),
                Self.argument(limits.concurrency), Self.argument(limits.dailyBudgetUSD), Self.argument(limits.monthlyBudgetUSD),
            ]
        }
        return AdmissionRun(first: first, lease: lease, keyNames: keys, keys: keys.map { RedisArgument($0) }, arguments: arguments)
    }

    /// The script's verdict: a ticket (its lease then renewed until settled), or the refusal.
    private func interpret(_ reply: RESPValue, _ run: AdmissionRun, _ request: AdmissionRequest) -> Result<AdmissionTicket, QuotaRejection> {
        guard let values = reply.elements, let verdict = values.first?.int else {
            return self.unavailable(run.first, request, RedisError(.protocolViolation, "admission answered \(reply)"))
        }
        if verdict == 1, values.count >= 7 {
            let subjects = request.subjects.map(\.0)
            self.leases.withLock { $0[run.lease] = run.keyNames }
            return .success(AdmissionTicket(
                subjects: subjects, reservedTokens: request.reservedTokens, reservedCost: request.reservedCost,
                report: Self.report(values[1...6]), lease: run.lease, tokensPerMinute: request.subjects.map(\.1.tokensPerMinute)
            ))
        }
        guard values.count >= 12, let index = values[1].int, index >= 1, Int(index) <= request.subjects.count,
            let refusal = Self.refusal(values[2].string, figures: values[3...5].map { Double($0.string ?? "") ?? 0 }, request: request)
        else { return self.unavailable(run.first, request, RedisError(.protocolViolation, "admission answered \(reply)")) }
        return .failure(refusal.rejection(of: request.subjects[Int(index) - 1].0, report: Self.report(values[6...11])))
    }

    /// Never decided on the spot: every admission is a round trip (the fast lane leaves keyed
    /// requests to the framework lane, as `limits_elsewhere`).
    func admitNow(_ request: AdmissionRequest, at now: ContinuousClock.Instant, day: String, month: String) -> Result<AdmissionTicket, QuotaRejection>? {
        nil
    }

    func settle(_ ticket: AdmissionTicket, tokens: Int, cost: Double, at now: ContinuousClock.Instant, day: String, month: String) {
        guard let lease = ticket.lease, !ticket.subjects.isEmpty else { return }
        // The admission's keys (its day's spend, should the day turn in between), made once.
        let keys = self.leases.withLock { $0.removeValue(forKey: lease) } ?? Self.keys(ticket.subjects, day: day, month: month)
        var arguments: [RedisArgument] = [
            RedisArgument(lease), RedisArgument(ticket.reservedTokens), RedisArgument(max(0, tokens)), RedisArgument(max(0, cost.isFinite ? cost : 0)),
            RedisArgument(ticket.subjects.count),
        ]
        arguments += ticket.tokensPerMinute.map { Self.argument($0) }
        let keyArguments = keys.map { RedisArgument($0) }
        // Its lease expires by itself if this fails; the spend is in the ledger, which stays the books.
        let failed = { @Sendable (error: any Error) in self.logger.warning("a settlement did not reach Redis", metadata: ["gw.error": "\(error)"]) }
        // On an event loop with its connection up (the fast lane), written from here without a task.
        if let loop = MultiThreadedEventLoopGroup.currentEventLoop,
            let sent = self.redis.runOnLoop(QuotaScripts.settle, keys: keyArguments, arguments: arguments, on: loop)
        {
            sent.whenFailure(failed)
            return
        }
        Task {
            do {
                _ = try await self.redis.run(QuotaScripts.settle, keys: keyArguments, arguments: arguments)
            } catch {
                failed(error)
            }
        }
    }

    static let epochKey = "sy:{fleet}:epoch"
    static let seededKey = "sy:{fleet}:seeded"

    /// Brings this replica's ledger into Redis once per Redis lifetime: after Redis restarted empty
    /// (or on a fleet's first start, or when a replica with a ledger joins), every replica adds its
    /// own rows of today and this month, so budgets count what was spent before. A replica adds its
    /// rows once per epoch: its settlements after that reach Redis one by one.
    /// - Returns: how many subjects were seeded (0 when this replica had done so in this epoch).
    func seedSpend(from store: any GatewayDatabase, replica: String) async throws -> Int {
        let turn = try await self.redis.run(
            QuotaScripts.seedTurn, keys: [RedisArgument(Self.epochKey), RedisArgument(Self.seededKey)],
            arguments: [RedisArgument(UUID().uuidString), RedisArgument(replica)]
        )
        guard turn.int == 1 else { return 0 }
        let (day, month) = BudgetCalendar.shared.dayAndMonth()
        let (dayStart, monthStart) = BudgetCalendar.starts(of: Date())
        var seeded = 0
        for row in try await store.spend(since: dayStart, monthStart: monthStart) {
            // A key's state lives under its tenant's hash tag: the tenant and the key go in one run.
            var subjects: [QuotaSubject] = []
            if let tenant = row.tenant { subjects.append(QuotaSubject(.tenant, tenant)) }
            if let key = row.key { subjects.append(QuotaSubject(.key, key)) }
            guard !subjects.isEmpty else { continue }
            var arguments = [RedisArgument(subjects.count)]
            for _ in subjects {
                arguments += [RedisArgument(row.day), RedisArgument(row.month), RedisArgument(row.requests), RedisArgument(row.tokens)]
            }
            _ = try await self.redis.run(QuotaScripts.seed, keys: Self.keys(subjects, day: day, month: month).map { RedisArgument($0) }, arguments: arguments)
            seeded += subjects.count
        }
        return seeded
    }

    /// A tenant's use. (A key's state lives under its tenant's hash tag, which the key alone does not
    /// name; nothing asks for it.)
    func usage(of subject: QuotaSubject) async -> QuotaBook.Usage? {
        guard subject.kind == .tenant else { return nil }
        let (day, month) = BudgetCalendar.shared.dayAndMonth()
        let keys = Self.keys([subject], day: day, month: month)
        guard let replies = try? await self.redis.send([
            RedisCommand("GET", [RedisArgument(keys[5])]), RedisCommand("GET", [RedisArgument(keys[6])]),
            RedisCommand("HVALS", [RedisArgument(keys[4])]), RedisCommand("ZCARD", [RedisArgument(keys[3])]),
            RedisCommand("HMGET", [RedisArgument(keys[7]), "requests", "tokens", "rejections"]),
        ]), replies.count == 5
        else { return nil }
        let counts = replies[4].elements ?? []
        func count(_ index: Int) -> Int { counts.count > index ? UntrustedNumber.count(Double(counts[index].int ?? 0)) : 0 }
        return QuotaBook.Usage(
            spentToday: Self.money(replies[0]), spentThisMonth: Self.money(replies[1]),
            reserved: (replies[2].elements ?? []).reduce(0) { $0 + Self.money($1) }, inFlight: UntrustedNumber.count(Double(replies[3].int ?? 0)),
            rejections: count(2), requestsToday: count(0), tokensToday: count(1)
        )
    }

    /// Renews the leases of the requests still running, every third of their TTL, until cancelled.
    func renewLeases() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: self.leaseTTL / 3)
            let keys = self.leases.withLock { $0 }
            guard !keys.isEmpty else { continue }
            let expiry = RedisArgument(Int(self.leaseTTL / .milliseconds(1)))
            var commands: [RedisCommand] = []
            for (lease, requestKeys) in keys {
                for (leases, costs) in Self.leaseKeys(requestKeys, subjects: requestKeys.count / QuotaScripts.keysPerSubject) {
                    commands.append(RedisCommand("EVAL", [Self.renewal, 2, RedisArgument(leases), RedisArgument(costs), RedisArgument(lease), expiry]))
                }
            }
            _ = try? await self.redis.send(commands)
        }
    }

    /// Pushes a lease's expiry out, on Redis's clock, only if it is still held, and keeps its keys
    /// (which expire at twice the TTL after the last admission) as long.
    private static let renewal = RedisArgument(
        """
        local t = redis.call('TIME')
        if redis.call('ZADD', KEYS[1], 'XX', 'CH', t[1] * 1000 + math.floor(t[2] / 1000) + ARGV[2], ARGV[1]) == 1 then
          redis.call('PEXPIRE', KEYS[1], ARGV[2] * 2)
          redis.call('PEXPIRE', KEYS[2], ARGV[2] * 2)
        end
        return 1
        """
    )

    // MARK: -

    private func unavailable(_ subject: QuotaSubject, _ request: AdmissionRequest, _ error: any Error) -> Result<AdmissionTicket, QuotaRejection> {
        self.unreachable.note { requests in
            self.logger.warning(
                "admission could not reach Redis", metadata: ["gw.error": "\(error)", "gw.on_state_error": "\(self.onError.rawValue)", "gw.requests": "\(requests)"]
            )
        }
        switch self.onError {
        case .allow:
            self.allowed.add(1, ordering: .relaxed)
            return .success(AdmissionTicket(subjects: [], reservedTokens: request.reservedTokens, reservedCost: request.reservedCost, report: RateLimitReport()))
        case .deny:
            self.denied.add(1, ordering: .relaxed)
            return .failure(QuotaRefusal.stateUnavailable(detail: "\(error)").rejection(of: subject, report: RateLimitReport()))
        }
    }

    /// A subject's eight keys, under its request's tag.
    static func keys(_ subjects: [QuotaSubject], day: String, month: String) -> [String] {
        guard let tagged = subjects.first(where: { $0.kind == .tenant }) ?? subjects.first else { return [] }
        let prefix = "sy:{" + Self.tag(tagged) + "}:"
        let suffixes = ["rpm", "rpd", "tpm", "leases", "costs", "spent:" + day, "spent:" + month, "counts:" + day]
        var keys: [String] = []
        keys.reserveCapacity(subjects.count * suffixes.count)
        for subject in subjects {
            let base = prefix + subject.kind.rawValue + ":" + RedisKeyText.escaped(subject.id) + ":"
            for suffix in suffixes { keys.append(base + suffix) }
        }
        return keys
    }

    private static func tag(_ subject: QuotaSubject) -> String {
        "\(subject.kind.rawValue):\(RedisKeyText.escaped(subject.id))"
    }


    private static func leaseKeys(_ keys: [String], subjects: Int) -> [(leases: String, costs: String)] {
        (0..<subjects).map { (keys[$0 * QuotaScripts.keysPerSubject + 3], keys[$0 * QuotaScripts.keysPerSubject + 4]) }
    }

    private static func argument(_ value: Int?) -> RedisArgument {
        value.map { RedisArgument($0) } ?? ""
    }

    private static func argument(_ value: Double?) -> RedisArgument {
        value.map { RedisArgument($0) } ?? ""
    }

    /// A figure stored in Redis, bounded: garbage, NaN or infinity there reads as nothing.
    private static func money(_ value: RESPValue) -> Double {
        guard let number = value.string.flatMap(Double.init), number.isFinite else { return 0 }
        return min(max(number, 0), 1e15)
    }

    private static func report(_ values: ArraySlice<RESPValue>) -> RateLimitReport {
        let numbers = values.map { $0.int ?? -1 }
        func decision(_ at: Int) -> LimitDecision? {
            let base = numbers.startIndex + at
            guard numbers[base] > 0 else { return nil }
            return LimitDecision(
                allowed: true, limit: UntrustedNumber.count(Double(numbers[base])), remaining: UntrustedNumber.count(Double(numbers[base + 1])),
                reset: .milliseconds(UntrustedNumber.count(Double(numbers[base + 2]))), retryAfter: nil
            )
        }
        return RateLimitReport(requests: decision(0), tokens: decision(3))
    }

    private static func refusal(_ kind: String?, figures: [Double], request: AdmissionRequest) -> QuotaRefusal? {
        let limit = UntrustedNumber.count(figures[0])
        let wait = Duration.milliseconds(UntrustedNumber.count(figures[1].rounded(.up)))
        switch kind {
        case "rpm": return .requestsPerMinute(limit: limit, retryAfter: wait)
        case "rpd": return .requestsPerDay(limit: limit, retryAfter: wait)
        case "tpm": return .tokensPerMinute(limit: limit, reserved: request.reservedTokens, retryAfter: wait)
        case "concurrency": return .concurrency(limit: limit)
        case "daily": return .dailyBudget(budget: figures[0], spent: figures[1], reserved: figures[2], request: request.reservedCost)
        case "monthly": return .monthlyBudget(budget: figures[0], spent: figures[1], reserved: figures[2], request: request.reservedCost)
        default: return nil
        }
    }
}

extension RedisConfiguration {
    /// How a replica reaches the Redis its `state:` names; `replica` names its connections.
    init(_ settings: RedisStateSettings, replica: String) {
        self.init(
            host: settings.host, port: settings.port, user: settings.user, password: settings.password?.exposedValue, database: settings.database,
            tls: settings.tls ? TLSConfiguration.makeClientConfiguration() : nil, commandTimeout: settings.timeout,
            clientName: "switchyard-" + String(replica.unicodeScalars.filter { $0.isASCII && $0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" })
        )
    }
}
