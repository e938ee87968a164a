#if canImport(Glibc)
import Glibc
#endif
import AsyncHTTPClient
import Dispatch
import Engine
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// Downloads image URLs for upstreams that take inline images only (Ollama, Gemini), when
/// `server.fetch_image_urls` allows it.
///
/// A client names the URL, so the gateway must not become its way into the network the gateway
/// sits in: the host is resolved here, every address it resolves to must be one `policy` permits,
/// and the connection goes to that checked address only (a second lookup could answer otherwise).
/// Redirects are not followed: a redirect would name a new host to check, and images rarely need one.
/// Every failure reads the same to the client, "Could not fetch image N.", so the answers cannot
/// map the internal network (which check failed, the upstream's status, the address); the
/// details go to the debug log.
struct ImageFetcher: Sendable {
    let limits: ImageFetchLimits
    /// `.publicOnly` in a running gateway; tests widen it to loopback, where their servers listen.
    let policy: AddressPolicy
    let eventLoopGroup: any EventLoopGroup

    /// Whether `wire` needs URL images turned into inline ones.
    static func isNeeded(for wire: WireFormat) -> Bool {
        wire == .ollamaChat || wire == .geminiGenerateContent
    }

    /// The request with every http(s) image URL replaced by its inline bytes.
    ///
    /// Images are numbered from 1 in the order they appear, inline ones included, so the number in
    /// an error is the one the client counts.
    /// - Throws: `invalidRequest` (400): more image URLs than `limits.count`, or "Could not fetch image N."
    func inline(_ request: ChatRequest, logger: Logger) async throws -> ChatRequest {
        let urlCount = request.messages.reduce(0) { count, message in count + message.content.count(where: { Self.webURL(in: $0) != nil }) }
        guard urlCount <= self.limits.count else {
            throw GatewayError.invalidRequest(
                "The request names \(urlCount) image URLs; the gateway fetches at most \(self.limits.count) per request (server.image_limits.count).",
                param: "messages"
            )
        }
        var request = request
        var imageNumber = 0
        var budget = self.limits.perRequest
        for messageIndex in request.messages.indices {
            for partIndex in request.messages[messageIndex].content.indices {
                let part = request.messages[messageIndex].content[partIndex]
                guard case .image = part else { continue }
                imageNumber += 1
                guard let url = Self.webURL(in: part) else { continue }
                let image: Image
                do {
                    image = try await self.fetch(url, cap: min(self.limits.perImage, budget))
                } catch {
                    logger.debug("image not fetched", metadata: ["gw.image": "\(imageNumber)", "gw.reason": "\(error)"])
                    throw GatewayError.invalidRequest("Could not fetch image \(imageNumber).", param: "messages")
                }
                budget -= image.bytes.count
                request.messages[messageIndex].content[partIndex] = .image(.base64(mediaType: image.mediaType, data: image.bytes.base64EncodedString()))
            }
        }
        return request
    }

    /// The URL of an image part the gateway would fetch: http or https only.
    private static func webURL(in part: ContentPart) -> String? {
        guard case .image(.url(let url)) = part else { return nil }
        let lowered = url.prefix(8).lowercased()
        return lowered.hasPrefix("http://") || lowered.hasPrefix("https://") ? url : nil
    }

    private struct Image {
        let mediaType: String
        let bytes: Data
    }

    /// Why one image was not fetched: for the debug log only, never for the client.
    enum Refusal: Error, CustomStringConvertible {
        case malformedURL
        case unresolved(String)
        case forbiddenAddress(IPAddress, AddressScope)
        case status(UInt)
        case notAnImage(String)
        case tooLarge(cap: Int)
        case timedOut

        var description: String {
            switch self {
            case .malformedURL: "not an http(s) URL with a host"
            case .unresolved(let reason): "the host did not resolve: \(reason)"
            case .forbiddenAddress(let address, let scope): "the host resolves to \(address), a \(scope.rawValue) address"
            case .status(let code): "the server answered HTTP \(code)"
            case .notAnImage(let mediaType): "the answer is not an image (content-type '\(mediaType)')"
            case .tooLarge(let cap): "the image exceeds the \(cap) bytes left for it"
            case .timedOut: "no whole answer in time"
            }
        }
    }

    /// One image, resolved, checked and downloaded within `limits.timeout`, at most `cap` bytes.
    private func fetch(_ text: String, cap: Int) async throws -> Image {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let rawHost = url.host, !rawHost.isEmpty
        else { throw Refusal.malformedURL }
        // As AsyncHTTPClient reads the host, so that the override below names the host it connects to.
        let host = rawHost.hasPrefix("[") && rawHost.hasSuffix("]") ? String(rawHost.dropFirst().dropLast()) : rawHost
        return try await Self.within(self.limits.timeout) {
            let address = try await self.checkedAddress(of: host)
            return try await self.download(url, connectingTo: address, for: host, cap: cap)
        }
    }

    /// The first address `host` resolves to, once every one of them passed the policy.
    private func checkedAddress(of host: String) async throws -> IPAddress {
        let addresses = try await Self.resolve(host)
        guard let first = addresses.first else { throw Refusal.unresolved("no addresses") }
        for address in addresses where !self.policy.permits(address) {
            throw Refusal.forbiddenAddress(address, AddressPolicy.scope(of: address))
        }
        return first
    }

    private func download(_ url: URL, connectingTo address: IPAddress, for host: String, cap: Int) async throws -> Image {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: TimeAmount(self.limits.timeout), read: TimeAmount(self.limits.timeout))
        // The connection goes to the checked address whatever the name resolves to now; TLS still
        // names (and verifies) the host. AsyncHTTPClient keys an IPv6 literal with its brackets.
        configuration.dnsOverride = [host: address.description, "[\(host)]": address.description]
        let client = HTTPClient(eventLoopGroup: self.eventLoopGroup, configuration: configuration)
        do {
            let image = try await Self.read(try await client.execute(HTTPClientRequest(url: url.absoluteString), timeout: TimeAmount(self.limits.timeout)), cap: cap)
            try await client.shutdown()
            return image
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// The body of a 200 `image/*` answer, read as it streams in and abandoned at `cap`.
    private static func read(_ response: HTTPClientResponse, cap: Int) async throws -> Image {
        guard response.status == .ok else { throw Refusal.status(response.status.code) }
        let mediaType = response.headers.first(name: "content-type")?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        guard mediaType.lowercased().hasPrefix("image/") else { throw Refusal.notAnImage(mediaType) }
        if let declared = response.headers.first(name: "content-length").flatMap(Int.init), declared > cap { throw Refusal.tooLarge(cap: cap) }
        var bytes = Data()
        for try await chunk in response.body {
            guard chunk.readableBytes <= cap - bytes.count else { throw Refusal.tooLarge(cap: cap) }
            bytes.append(contentsOf: chunk.readableBytesView)
        }
        return Image(mediaType: mediaType, bytes: bytes)
    }

    /// `work`'s result, or `Refusal.timedOut` once `limit` passed (and `work` is cancelled).
    private static func within<T: Sendable>(_ limit: Duration, _ work: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await work() }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else { throw Refusal.timedOut }
            return value
        }
    }

    /// Every address `host` resolves to, by `getaddrinfo` as the system reads names: numeric forms
    /// such as `2130706433` or `0177.1` included. The lookup blocks, so it runs off the task's thread,
    /// and a cancelled task stops waiting for it.
    static func resolve(_ host: String) async throws -> [IPAddress] {
        let pending = PendingLookup()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                guard pending.start(continuation) else { return }
                DispatchQueue.global().async { pending.finish(Self.lookUp(host)) }
            }
        } onCancel: {
            pending.finish(.failure(CancellationError()))
        }
    }

    private static func lookUp(_ host: String) -> Result<[IPAddress], any Error> {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &list)
        guard status == 0 else { return .failure(Refusal.unresolved(String(cString: gai_strerror(status)))) }
        defer { freeaddrinfo(list) }
        var addresses: [IPAddress] = []
        var entry = list
        while let info = entry?.pointee {
            entry = info.ai_next
            guard let socketAddress = info.ai_addr else { continue }
            switch info.ai_family {
            case AF_INET:
                let ipv4 = socketAddress.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                if let address = withUnsafeBytes(of: ipv4, { IPAddress(bytes: $0) }) { addresses.append(address) }
            case AF_INET6:
                let ipv6 = socketAddress.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                if let address = withUnsafeBytes(of: ipv6, { IPAddress(bytes: $0) }) { addresses.append(address) }
            default: continue
            }
        }
        return .success(addresses)
    }
}

/// A lookup's continuation, resumed once: by the lookup's result or by cancellation, whichever is first.
private final class PendingLookup: Sendable {
    private enum State {
        case waiting
        case started(CheckedContinuation<[IPAddress], any Error>)
        case finished(Result<[IPAddress], any Error>?)
    }

    private let state = Mutex(State.waiting)

    /// False when cancellation came first; then `continuation` has been resumed already.
    func start(_ continuation: CheckedContinuation<[IPAddress], any Error>) -> Bool {
        let early: Result<[IPAddress], any Error>? = self.state.withLock { state in
            guard case .finished(let result) = state else {
                state = .started(continuation)
                return nil
            }
            state = .finished(nil)
            return result
        }
        guard let early else { return true }
        continuation.resume(with: early)
        return false
    }

    func finish(_ result: Result<[IPAddress], any Error>) {
        let continuation: CheckedContinuation<[IPAddress], any Error>? = self.state.withLock { state in
            switch state {
            case .waiting:
                state = .finished(result)
                return nil
            case .started(let continuation):
                state = .finished(nil)
                return continuation
            case .finished: return nil
            }
        }
        continuation?.resume(with: result)
    }
}

/// One request's image URLs, fetched once however many attempts (retries, failover, a hedge) need them:
/// the per-request limits then bound the request, not each attempt.
final class ImageInlining: Sendable {
    private let fetcher: ImageFetcher
    private let request: ChatRequest
    private let logger: Logger
    private let fetched = Mutex<Task<ChatRequest, any Error>?>(nil)

    init(fetcher: ImageFetcher, request: ChatRequest, logger: Logger) {
        self.fetcher = fetcher
        self.request = request
        self.logger = logger
    }

    /// The request with its images inline; the first call fetches them, later ones share the result.
    func inlined() async throws -> ChatRequest {
        let task = self.fetched.withLock { fetched in
            if let fetched { return fetched }
            let (fetcher, request, logger) = (self.fetcher, self.request, self.logger)
            let started = Task { try await fetcher.inline(request, logger: logger) }
            fetched = started
            return started
        }
        // Every attempt belongs to one client request: when it is cancelled, so is the fetch.
        return try await withTaskCancellationHandler { try await task.value } onCancel: { task.cancel() }
    }
}
