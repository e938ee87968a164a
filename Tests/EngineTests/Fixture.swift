import Foundation
import NIOCore

/// Recorded provider responses (copied from shared/fixtures/providers, each with its `.source.txt`).
enum Fixture {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/providers")

    static func text(_ name: String) throws -> String {
        try String(contentsOf: self.directory.appendingPathComponent(name), encoding: .utf8)
    }

    static func buffer(_ name: String) throws -> ByteBuffer {
        ByteBuffer(string: try self.text(name))
    }
}

extension ByteBuffer {
    var string: String { String(buffer: self) }
}
