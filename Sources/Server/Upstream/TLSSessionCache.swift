// NIOSSL has no client session cache (2.37): its BoringSSL context is reached here to give it one.
internal import CNIOBoringSSL
import NIOSSL
import Synchronization

/// TLS session resumption for one `https` provider's connections: the session its upstream issued
/// (a TLS 1.3 ticket or a TLS 1.2 session) is kept and offered on the next connection, which then
/// resumes it, an abbreviated handshake without the certificate chain, its verification and a full
/// key exchange. Upstreams close idle keep-alive connections, so a gateway reconnects all day.
///
/// One per provider's `NIOSSLContext`, attached to its BoringSSL context and freed with it (the
/// context's extra data holds a reference), so a connection outliving a reload still finds it. The
/// session is kept per server name; a context serves one provider, whose base URL names one host.
/// The certificate was verified against this context's trust when the session was made; a changed
/// `tls.ca_file` makes a new context, and so a new cache.
final class TLSSessionCache: Sendable {
    /// A BoringSSL session this cache holds a reference to; used under the lock only.
    private struct Session: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    private let sessions = Mutex<[String: Session]>([:])
    private let full = Atomic<Int>(0)
    private let resumed = Atomic<Int>(0)

    /// Handshakes completed so far: full ones, and the ones that resumed a session.
    var handshakes: (full: Int, resumed: Int) { (self.full.load(ordering: .relaxed), self.resumed.load(ordering: .relaxed)) }

    /// A cache attached to `context`, or nil when NIOSSL no longer holds its BoringSSL context where
    /// this looks for it (connections then make full handshakes; a test notices).
    static func attached(to context: NIOSSLContext) -> TLSSessionCache? {
        guard let sslContext = Mirror(reflecting: context).children.first(where: { $0.label == "sslContext" })?.value as? OpaquePointer,
            let index = Self.extraDataIndex
        else { return nil }
        let cache = TLSSessionCache()
        // Before any connection uses the context: BoringSSL's setters are not thread-safe against use.
        guard SSL_CTX_set_ex_data(sslContext, index, Unmanaged.passRetained(cache).toOpaque()) == 1 else {
            Unmanaged.passUnretained(cache).release()
            return nil
        }
        SSL_CTX_set_session_cache_mode(sslContext, Int32(SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL))
        SSL_CTX_sess_set_new_cb(sslContext, { ssl, session in
            guard let ssl, let session, let cache = TLSSessionCache.of(ssl) else { return 0 }
            cache.keep(session, for: TLSSessionCache.serverName(ssl))
            return 1
        })
        SSL_CTX_set_info_callback(sslContext, { ssl, event, _ in
            guard let ssl, let cache = TLSSessionCache.of(ssl) else { return }
            if event == SSL_CB_HANDSHAKE_START {
                cache.offer(to: ssl)
            } else if event == SSL_CB_HANDSHAKE_DONE {
                if SSL_session_reused(ssl) == 1 {
                    cache.resumed.add(1, ordering: .relaxed)
                } else {
                    cache.full.add(1, ordering: .relaxed)
                }
            }
        })
        return cache
    }

    deinit {
        self.sessions.withLock { sessions in
            for session in sessions.values { SSL_SESSION_free(session.pointer) }
        }
    }

    /// The context's extra-data slot for its cache, whose reference is released when the context is freed.
    private static let extraDataIndex: Int32? = {
        let index = SSL_CTX_get_ex_new_index(0, nil, nil, nil, { _, pointer, _, _, _, _ in
            if let pointer { Unmanaged<TLSSessionCache>.fromOpaque(pointer).release() }
        })
        return index >= 0 ? index : nil
    }()

    private static func of(_ ssl: OpaquePointer) -> TLSSessionCache? {
        guard let index = Self.extraDataIndex, let sslContext = SSL_get_SSL_CTX(ssl), let pointer = SSL_CTX_get_ex_data(sslContext, index) else { return nil }
        return Unmanaged<TLSSessionCache>.fromOpaque(pointer).takeUnretainedValue()
    }

    private static func serverName(_ ssl: OpaquePointer) -> String {
        SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name).map { String(cString: $0) } ?? ""
    }

    /// Keeps the newest session (a server may send several tickets), taking over its reference.
    private func keep(_ session: OpaquePointer, for name: String) {
        self.sessions.withLock { sessions in
            if let replaced = sessions.updateValue(Session(pointer: session), forKey: name) { SSL_SESSION_free(replaced.pointer) }
        }
    }

    /// Offers the kept session as the handshake starts: BoringSSL drops it itself when it has expired
    /// or does not suit the connection, and a server that no longer takes it makes a full handshake.
    private func offer(to ssl: OpaquePointer) {
        guard SSL_is_server(ssl) == 0 else { return }
        let name = Self.serverName(ssl)
        // Under the lock: `keep` may free the session being offered otherwise (SSL_set_session takes its own reference).
        self.sessions.withLock { sessions in
            if let session = sessions[name] { SSL_set_session(ssl, session.pointer) }
        }
    }
}
