import NIOCore

/// One chunk of a chunked body, its bytes appended in place: room for the size line is kept in
/// front of them, so the finished chunk is framed without copying what it carries.
struct OutgoingChunk {
    /// Sixteen hex digits (any `Int`) and CRLF.
    private static let sizeLineRoom = 18
    private var buffer: ByteBuffer

    init(capacity: Int, allocator: ByteBufferAllocator) {
        self.buffer = allocator.buffer(capacity: Self.sizeLineRoom + capacity + 2)
        self.buffer.writeRepeatingByte(0, count: Self.sizeLineRoom)
    }

    mutating func append(_ bytes: ByteBuffer) {
        self.buffer.writeImmutableBuffer(bytes)
    }

    mutating func append(_ text: String) {
        self.buffer.writeString(text)
    }

    /// The chunk framed: its size line, its bytes, CRLF. Not for an empty chunk, which would end the body.
    consuming func framed() -> ByteBuffer {
        let size = self.buffer.readableBytes - Self.sizeLineRoom
        let digits = max(1, (Int.bitWidth - size.leadingZeroBitCount + 3) / 4)
        var index = Self.sizeLineRoom - 2
        self.buffer.setStaticString("\r\n", at: index)
        for shift in stride(from: 0, to: digits * 4, by: 4) {
            index -= 1
            let digit = UInt8((size >> shift) & 0xF)
            self.buffer.setInteger(digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10, at: index)
        }
        self.buffer.moveReaderIndex(to: index)
        self.buffer.writeStaticString("\r\n")
        return self.buffer
    }
}
