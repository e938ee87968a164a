import Engine
import Foundation
import Logging

/// One JSON object per line on stderr, for log shippers: `{"ts","level","label","msg",…metadata}`.
///
/// The line is written with a single `write(2)`, so lines from different threads never interleave.
struct JSONLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level
    var metadataProvider: Logger.MetadataProvider?
    let label: String

    /// `2026-11-25T09:43:07.850Z`
    private static let timestamp = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    init(label: String, level: Logger.Level, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.logLevel = level
        self.metadataProvider = metadataProvider
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var json = JSONWriter()
        json.openObject()
        json.field("ts", Self.timestamp.format(Date()))
        json.field("level", event.level.rawValue)
        json.field("label", self.label)
        json.field("msg", event.message.description)
        var merged = self.metadata
        if let provided = self.metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        merged.merge(event.metadata ?? [:]) { _, new in new }
        for key in merged.keys.sorted() {
            json.field(key, merged[key].map { "\($0)" })
        }
        json.closeObject()
        var line = json.output
        line.append("\n")
        line.utf8CString.withUnsafeBufferPointer { buffer in
            _ = Foundation.write(2, buffer.baseAddress, buffer.count - 1)
        }
    }
}
