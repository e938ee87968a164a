#if canImport(Glibc)
import Glibc
#endif
import HTTPTypes
import NIOCore

/// HTTP/1.1 answers written straight into bytes, for the fast lane, which answers in front of
/// Hummingbird's encoder: one buffer per answer (head and body), one per relayed stream write.
enum WireResponse {
    /// An answer's head, written as its fields are set: the status line first, then each field, then
    /// the framing, the `Date` and the blank line (`finish`).
    struct Head: ResponseFields {
        private var buffer: ByteBuffer

        init(_ status: HTTPResponse.Status, capacity: Int = 512, allocator: ByteBufferAllocator) {
            self.buffer = allocator.buffer(capacity: capacity)
            guard status != .ok else {
                self.buffer.writeStaticString("HTTP/1.1 200 OK\r\n")
                return
            }
            self.buffer.writeStaticString("HTTP/1.1 ")
            self.buffer.writeString(String(status.code))
            self.buffer.writeStaticString(" ")
            self.buffer.writeString(status.reasonPhrase)
            self.buffer.writeStaticString("\r\n")
        }

        /// Values are the gateway's own; a control character in one (never expected) becomes a space,
        /// as `HTTPFields` makes it, so a field can never end the head early.
        mutating func set(_ name: HTTPField.Name, _ value: String) {
            var name = name.rawName
            var value = value
            // One write of the whole line: four writes cost four capacity checks and copies.
            name.withUTF8 { name in
                value.withUTF8 { value in
                    self.buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: name.count + value.count + 4) { out in
                        out.copyMemory(from: UnsafeRawBufferPointer(name))
                        out[name.count] = UInt8(ascii: ":")
                        out[name.count + 1] = UInt8(ascii: " ")
                        var position = name.count + 2
                        for byte in value {
                            out[position] = (byte < 0x20 && byte != 0x09) || byte == 0x7F ? 0x20 : byte
                            position += 1
                        }
                        out[position] = 0x0D
                        out[position + 1] = 0x0A
                        return position + 2
                    }
                }
            }
        }

        /// The head, for a body of `contentLength` bytes or, when nil, a chunked one; `body` follows it
        /// in the same buffer.
        /// (Mutating, not consuming: a consumed copy shared the buffer with the original, so the first
        /// write here copied it whole.)
        mutating func finish(contentLength: Int?, date: String, body: ByteBuffer? = nil) -> ByteBuffer {
            if let contentLength {
                self.buffer.writeStaticString("Content-Length: ")
                self.buffer.writeString(String(contentLength))
                self.buffer.writeStaticString("\r\n")
            } else {
                self.buffer.writeStaticString("Transfer-Encoding: chunked\r\n")
            }
            self.buffer.writeStaticString("Date: ")
            self.buffer.writeString(date)
            self.buffer.writeStaticString("\r\n\r\n")
            if let body { self.buffer.writeImmutableBuffer(body) }
            return self.buffer
        }
    }

    /// A whole answer in one buffer.
    static func whole(_ status: HTTPResponse.Status, _ fields: HTTPFields, body: ByteBuffer, date: String, allocator: ByteBufferAllocator) -> ByteBuffer {
        var head = Head(status, capacity: 512 + body.readableBytes, allocator: allocator)
        for field in fields { head.set(field.name, field.value) }
        return head.finish(contentLength: body.readableBytes, date: date, body: body)
    }

    /// The end of a chunked body (no trailers).
    static let lastChunk = ByteBuffer(staticString: "0\r\n\r\n")
}

/// The `Date` of answers (RFC 9110 IMF-fixdate), formatted once a second on each event loop.
final class HTTPDateCache {
    private var second: time_t = -1
    private var formatted = ""

    var now: String {
        let now = time(nil)
        if now != self.second {
            self.second = now
            self.formatted = Self.format(now)
        }
        return self.formatted
    }

    static func format(_ time: time_t) -> String {
        var moment = time
        var parts = tm()
        gmtime_r(&moment, &parts)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }
}
