#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// libFuzzer's driver, called from our own `main`: SwiftPM links an executable target's `main` to the
/// module's entry point, so libFuzzer's `main` is never reached; this one hands it the command line.
@_silgen_name("LLVMFuzzerRunDriver")
private func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@main
enum FuzzMain {
    static func main() {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(runFuzzerDriver(&argc, &argv, fuzzTestOneInput))
    }
}

/// libFuzzer's entry point. One binary holds every target; `FUZZ_TARGET` names the one this process
/// runs (`Fuzz/run.sh` starts one process per target, each with its own corpus and dictionary).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size)
    FuzzTarget.selected.run(bytes)
    return 0
}

/// Every parser that sees untrusted bytes, by the name `FUZZ_TARGET` and the corpus directory use.
enum FuzzTarget: String, CaseIterable {
    case requestHead = "request-head"
    case responseHead = "response-head"
    case chunked
    case json
    case openAIPatch = "openai-patch"
    case openAIRequest = "openai-request"
    case anthropicRequest = "anthropic-request"
    case embeddingsRequest = "embeddings-request"
    case responses
    case openAIStream = "openai-stream"
    case openAIRelay = "openai-relay"
    case anthropicStream = "anthropic-stream"
    case geminiStream = "gemini-stream"
    case ollamaStream = "ollama-stream"
    case config

    static let selected: FuzzTarget = {
        let name = getenv("FUZZ_TARGET").map { String(cString: $0) } ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: " ")
            writeToStandardError("FUZZ_TARGET must be one of: \(names) (it is '\(name)')\n")
            exit(2)
        }
        return target
    }()

    func run(_ bytes: UnsafeRawBufferPointer) {
        switch self {
        case .requestHead: WireTargets.requestHead(bytes)
        case .responseHead: WireTargets.responseHead(bytes)
        case .chunked: WireTargets.chunked(bytes)
        case .json: JSONTargets.scanner(bytes)
        case .openAIPatch: JSONTargets.openAIPatch(bytes)
        case .openAIRequest: RequestTargets.openAI(bytes)
        case .anthropicRequest: RequestTargets.anthropic(bytes)
        case .embeddingsRequest: RequestTargets.embeddings(bytes)
        case .responses: ResponseTargets.whole(bytes)
        case .openAIStream: StreamTargets.openAI(bytes)
        case .openAIRelay: StreamTargets.openAIRelay(bytes)
        case .anthropicStream: StreamTargets.anthropic(bytes)
        case .geminiStream: StreamTargets.gemini(bytes)
        case .ollamaStream: StreamTargets.ollama(bytes)
        case .config: ConfigTarget.load(bytes)
        }
    }
}

/// An input for an incremental parser: its first byte says how the rest arrives in pieces, so the
/// fuzzer explores partial frames (a CRLF split across reads, a head that trickles in) as well as
/// content. 0 means the whole payload at once; otherwise the payload is cut at 1 to 32 places (the
/// byte's low five bits) chosen by a small generator seeded by the byte. The number of pieces stays
/// bounded, so a large input is not fed byte by byte (which would measure the parsers' re-scanning
/// of what is buffered rather than explore them).
struct SplitInput {
    let payload: UnsafeRawBufferPointer
    private let seed: UInt8

    init?(_ bytes: UnsafeRawBufferPointer) {
        guard let seed = bytes.first else { return nil }
        self.seed = seed
        self.payload = UnsafeRawBufferPointer(rebasing: bytes.dropFirst())
    }

    /// The payload's pieces, in order; together they are the payload.
    var pieces: [ByteBuffer] {
        guard self.seed != 0, self.payload.count > 1 else { return [self.whole] }
        var state = UInt32(self.seed) &* 0x9E37_79B9 | 1
        var cuts: [Int] = []
        for _ in 0...(self.seed & 31) {
            // xorshift32: cheap and good enough to place the cuts.
            state ^= state << 13
            state ^= state >> 17
            state ^= state << 5
            cuts.append(1 + Int(state % UInt32(self.payload.count - 1)))
        }
        cuts.sort()
        var pieces: [ByteBuffer] = []
        var start = 0
        for cut in cuts + [self.payload.count] where cut > start {
            pieces.append(ByteBuffer(bytes: UnsafeRawBufferPointer(rebasing: self.payload[start..<cut])))
            start = cut
        }
        return pieces
    }

    var whole: ByteBuffer { ByteBuffer(bytes: self.payload) }
}

/// A property that must hold for every input: a failure is a finding, reported as a crash with the input.
func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    if !condition() {
        writeToStandardError("fuzz property violated: \(message())\n")
        fatalError(message(), file: file, line: line)
    }
}

func writeToStandardError(_ text: String) {
    var text = text
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}
