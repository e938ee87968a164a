import CCurl
import Engine
import Foundation
import Synchronization

/// The admin API over its Unix socket, with libcurl (`CURLOPT_UNIX_SOCKET_PATH`).
struct AdminClient: Sendable {
    struct Reply: Sendable {
        let status: Int
        let body: Data
    }

    let socketPath: String

    /// One call; nil with the transport error's text when the gateway could not be reached.
    func call(_ method: String, _ path: String, body: Data? = nil, timeout: Duration = .seconds(2)) -> Result<Reply, CallFailure> {
        guard let handle = curl_easy_init() else { return .failure(CallFailure(message: "libcurl could not start")) }
        defer { curl_easy_cleanup(handle) }
        let sink = Sink()
        let unmanaged = Unmanaged.passRetained(sink)
        defer { unmanaged.release() }
        _ = ccurl_setopt_string(handle, CURLOPT_UNIX_SOCKET_PATH, self.socketPath)
        _ = ccurl_setopt_string(handle, CURLOPT_URL, "http://switchyard\(path)")
        _ = ccurl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, method)
        _ = ccurl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Int(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000))
        _ = ccurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        _ = ccurl_setopt_pointer(handle, CURLOPT_WRITEDATA, unmanaged.toOpaque())
        _ = ccurl_setopt_write_function(handle, Sink.write)
        var headers: UnsafeMutablePointer<curl_slist>?
        defer { curl_slist_free_all(headers) }
        let payload = body ?? Data()
        if body != nil {
            headers = curl_slist_append(headers, "content-type: application/json")
            _ = ccurl_setopt_slist(handle, CURLOPT_HTTPHEADER, headers)
        }
        let result = payload.withUnsafeBytes { bytes -> CURLcode in
            if body != nil {
                _ = ccurl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, bytes.count)
                _ = ccurl_setopt_pointer(handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
            }
            return curl_easy_perform(handle)
        }
        guard result == CURLE_OK else { return .failure(CallFailure(message: String(cString: curl_easy_strerror(result)))) }
        var status = 0
        _ = ccurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return .success(Reply(status: status, body: sink.data))
    }

    struct CallFailure: Error, Sendable {
        let message: String
    }

    func snapshot() -> Result<AdminSnapshot, CallFailure> {
        self.call("GET", "/v1/snapshot").flatMap { reply in
            guard reply.status == 200, let snapshot = try? AdminJSON.decoder().decode(AdminSnapshot.self, from: reply.body) else {
                return .failure(CallFailure(message: "unexpected answer \(reply.status) from /v1/snapshot"))
            }
            return .success(snapshot)
        }
    }

    /// One tenant's day in detail; nil when it cannot be had (the next refresh asks again).
    func tenantDetail(_ name: String) -> AdminTenantDetail? {
        guard case .success(let reply) = self.call("GET", "/v1/tenants/\(AdminPath.segment(name))"), reply.status == 200 else { return nil }
        return try? AdminJSON.decoder().decode(AdminTenantDetail.self, from: reply.body)
    }

    /// Carries out an action; the text says what the gateway answered, success or not.
    func perform(_ command: Command) -> (text: String, ok: Bool) {
        let result: Result<Reply, CallFailure>
        let summary: String
        switch command {
        case .post(let path, let text):
            result = self.call("POST", path, timeout: .seconds(10))
            summary = text
        case .put(let path, let body, let text):
            result = self.call("PUT", path, body: body, timeout: .seconds(10))
            summary = text
        case .delete(let path, let text):
            result = self.call("DELETE", path, timeout: .seconds(10))
            summary = text
        case .quit:
            return ("", true)
        }
        switch result {
        case .failure(let failure):
            return ("\(summary): the gateway did not answer (\(failure.message))", false)
        case .success(let reply):
            if let problem = try? AdminJSON.decoder().decode(AdminProblem.Envelope.self, from: reply.body), !(200..<300).contains(reply.status) {
                return ("\(summary) refused (\(reply.status)): \(problem.error.message)", false)
            }
            if let report = try? AdminJSON.decoder().decode(ReloadReport.self, from: reply.body) {
                let changes = report.changes.isEmpty ? "no changes" : report.changes.joined(separator: "; ")
                return ("config v\(report.configVersion): \(changes)" + (report.needsRestart.isEmpty ? "" : "; needs a restart: \(report.needsRestart.joined(separator: ", "))"), true)
            }
            if let ack = try? AdminJSON.decoder().decode(AdminAck.self, from: reply.body) { return (ack.message, true) }
            return ("\(summary): HTTP \(reply.status)", (200..<300).contains(reply.status))
        }
    }

    /// Collects a response body; for the event stream, also cuts it into SSE events as they come
    /// (each byte searched once, an event over the cap ending the stream).
    final class Sink: @unchecked Sendable {
        var data = Data()
        var onEvent: ((AdminEvent) -> Void)?
        var shouldStop: () -> Bool = { false }
        private var events = EventBoundaryScanner(.blankLine, provider: "switchyard")
        private var brokenStream = false

        static let write: curl_write_callback = { pointer, size, count, context in
            guard let pointer, let context else { return 0 }
            let sink = Unmanaged<Sink>.fromOpaque(context).takeUnretainedValue()
            let length = size * count
            sink.data.append(UnsafeRawPointer(pointer).assumingMemoryBound(to: UInt8.self), count: length)
            if let onEvent = sink.onEvent { sink.takeEvents(onEvent) }
            // Returning less than given makes libcurl stop: how the follower ends on quit.
            return sink.shouldStop() || sink.brokenStream ? 0 : length
        }

        private func takeEvents(_ onEvent: (AdminEvent) -> Void) {
            var consumed = 0
            self.data.withUnsafeBytes { bytes in
                do throws(GatewayError) {
                    while let end = try self.events.nextBoundary(in: bytes, eventStart: consumed) {
                        let event = UnsafeRawBufferPointer(rebasing: bytes[consumed..<end.contentEnd])
                        if let payload = SSE.data(of: event), let event = try? AdminJSON.decoder().decode(AdminEvent.self, from: Data(payload.utf8)) {
                            onEvent(event)
                        }
                        consumed = end.next
                    }
                } catch {
                    self.brokenStream = true
                }
            }
            self.data.removeFirst(consumed)
        }
    }
}

/// Follows `/v1/events` on its own thread, reconnecting after a second whenever the stream ends;
/// the UI takes what arrived with `drain()`.
final class EventFollower: Sendable {
    private let client: AdminClient
    private let queue = Mutex<[AdminEvent]>([])
    private let stopped = Atomic<Bool>(false)

    init(client: AdminClient) {
        self.client = client
    }

    func start() {
        let thread = Thread { [self] in
            while !self.stopped.load(ordering: .relaxed) {
                self.follow()
                for _ in 0..<10 where !self.stopped.load(ordering: .relaxed) { Thread.sleep(forTimeInterval: 0.1) }
            }
        }
        thread.start()
    }

    func stop() {
        self.stopped.store(true, ordering: .relaxed)
    }

    func drain() -> [AdminEvent] {
        self.queue.withLock { events in
            defer { events.removeAll(keepingCapacity: true) }
            return events
        }
    }

    private func follow() {
        guard let handle = curl_easy_init() else { return }
        defer { curl_easy_cleanup(handle) }
        let sink = AdminClient.Sink()
        sink.onEvent = { event in self.queue.withLock { $0.append(event) } }
        sink.shouldStop = { self.stopped.load(ordering: .relaxed) }
        let unmanaged = Unmanaged.passRetained(sink)
        defer { unmanaged.release() }
        _ = ccurl_setopt_string(handle, CURLOPT_UNIX_SOCKET_PATH, self.client.socketPath)
        _ = ccurl_setopt_string(handle, CURLOPT_URL, "http://switchyard/v1/events")
        _ = ccurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        _ = ccurl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, 1000)
        // The gateway writes a keep-alive every 15 s; silence for longer means it is gone.
        _ = ccurl_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1)
        _ = ccurl_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, 30)
        _ = ccurl_setopt_pointer(handle, CURLOPT_WRITEDATA, unmanaged.toOpaque())
        _ = ccurl_setopt_write_function(handle, AdminClient.Sink.write)
        _ = curl_easy_perform(handle)
    }
}
