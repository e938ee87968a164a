import NIOCore
import NIOHTTP1

/// The fast lane's HTTP/1.1 framers (Sources/Server/Wire), fed the way its channel handlers feed them.
enum WireTargets {
    /// Client bytes into `RequestHead.parse` as the fast lane reads them: pieces appended to what is
    /// buffered, the blank-line search resumed where it stopped, pipelined requests framed one after
    /// another with their bodies skipped. The framing must not depend on how the bytes were split.
    static func requestHead(_ bytes: UnsafeRawBufferPointer) {
        guard let input = SplitInput(bytes) else { return }
        let pieced = Self.frameRequests(input.pieces)
        let whole = Self.frameRequests([input.whole])
        require(pieced == whole, "request framing depends on the split: \(pieced) vs \(whole)")
    }

    private enum Framing: Equatable {
        case head(length: Int, isPost: Bool, contentLength: Int, closes: Bool, expects: Bool)
        case unframeable
        case incomplete
    }

    /// What framing a connection's bytes gave: each head, then how it ended.
    private static func frameRequests(_ pieces: [ByteBuffer]) -> [Framing] {
        var outcomes: [Framing] = []
        var buffer = ByteBuffer()
        var searched = 0
        var bodyRemaining = 0
        for var piece in pieces {
            buffer.writeBuffer(&piece)
            while true {
                if bodyRemaining > 0 {
                    let skipped = min(bodyRemaining, buffer.readableBytes)
                    buffer.moveReaderIndex(forwardBy: skipped)
                    bodyRemaining -= skipped
                    if bodyRemaining > 0 { break }
                }
                switch RequestHead.parse(buffer, searchedUpTo: searched) {
                case .incomplete:
                    searched = buffer.readableBytes
                case .unframeable:
                    outcomes.append(.unframeable)
                    return outcomes
                case .head(let head):
                    let length = head.bytes.readableBytes
                    require(length >= 4 && length <= RequestHead.maxLength, "a head of \(length) bytes")
                    require(head.bytes.getBytes(at: head.bytes.readerIndex + length - 4, length: 4) == [13, 10, 13, 10], "a head not ending in a blank line")
                    require(head.contentLength >= 0, "a negative Content-Length")
                    // What the fast lane asks of a head.
                    _ = head.targets("/v1/chat/completions")
                    _ = head.field("authorization")
                    _ = head.field("x-api-key", contains: "sk-")
                    _ = head.field("content-type", contains: "json")
                    outcomes.append(.head(length: length, isPost: head.isPost, contentLength: head.contentLength, closes: head.closes, expects: head.expects))
                    buffer.moveReaderIndex(forwardBy: length)
                    searched = 0
                    bodyRemaining = head.contentLength
                    continue
                }
                break
            }
        }
        outcomes.append(.incomplete)
        return outcomes
    }

    /// Upstream bytes into `ResponseHead.parse` as the upstream connection reads them, then the body
    /// as the head frames it (a chunked one through `ChunkedBodyDecoder`), then the next answer's head
    /// (a kept-alive connection). The outcome must not depend on the split.
    static func responseHead(_ bytes: UnsafeRawBufferPointer) {
        guard let input = SplitInput(bytes) else { return }
        let pieced = Self.readAnswers(input.pieces)
        let whole = Self.readAnswers([input.whole])
        require(pieced == whole, "answer framing depends on the split: \(pieced) vs \(whole)")
    }

    private enum Reading {
        case head(searched: Int)
        case length(remaining: Int)
        case chunked(ChunkedBodyDecoder)
        case untilClose
    }

    private enum AnswerEvent: Equatable {
        case head(status: Int, body: ResponseHead.Body, keepAlive: Bool)
        case body(ByteBuffer)
        case failed(String)
        /// The bytes read after the last complete answer when the input ran out.
        case end(ByteBuffer)
    }

    private static func readAnswers(_ pieces: [ByteBuffer]) -> [AnswerEvent] {
        var outcomes: [AnswerEvent] = []
        var reading = Reading.head(searched: 0)
        var unframed = ByteBuffer()
        var body = ByteBuffer()
        for var piece in pieces {
            unframed.writeBuffer(&piece)
            var part = unframed
            unframed = ByteBuffer()
            do throws(UpstreamFramingError) {
                pieceLoop: while true {
                    switch reading {
                    case .head(let searched):
                        guard let (head, length) = try ResponseHead.parse(part, searchedUpTo: searched) else {
                            reading = .head(searched: part.readableBytes)
                            unframed = part
                            break pieceLoop
                        }
                        require(length >= 4 && length <= ResponseHead.maxLength, "a head of \(length) bytes")
                        _ = head.failureHeaders
                        _ = head.headers["retry-after"]
                        outcomes.append(.head(status: head.status, body: head.body, keepAlive: head.keepAlive))
                        part.moveReaderIndex(forwardBy: length)
                        switch head.body {
                        case _ where head.status < 200: reading = .head(searched: 0)
                        case .none: reading = .head(searched: 0)
                        case .length(let remaining):
                            require(remaining > 0, "a body of \(remaining) bytes")
                            reading = .length(remaining: remaining)
                        case .chunked: reading = .chunked(ChunkedBodyDecoder())
                        case .untilClose: reading = .untilClose
                        }
                    case .length(let remaining):
                        let taken = min(remaining, part.readableBytes)
                        guard taken > 0 else { break pieceLoop }
                        var slice = part.readSlice(length: taken)!
                        body.writeBuffer(&slice)
                        if taken == remaining {
                            outcomes.append(.body(body))
                            body = ByteBuffer()
                            reading = .head(searched: 0)
                        } else {
                            reading = .length(remaining: remaining - taken)
                        }
                    case .chunked(var decoder):
                        try decoder.decode(&part) { piece in
                            var piece = piece
                            require(piece.readableBytes > 0, "an empty chunk piece")
                            body.writeBuffer(&piece)
                        }
                        reading = .chunked(decoder)
                        if decoder.isDone {
                            outcomes.append(.body(body))
                            body = ByteBuffer()
                            reading = .head(searched: 0)
                            continue
                        }
                        if part.readableBytes > 0 { unframed = part }
                        break pieceLoop
                    case .untilClose:
                        body.writeBuffer(&part)
                        break pieceLoop
                    }
                }
            } catch {
                outcomes.append(.failed(error.description))
                return outcomes
            }
        }
        outcomes.append(.end(body))
        return outcomes
    }

    /// A chunked body alone, through `ChunkedBodyDecoder` in pieces: the data it hands on must not depend on the
    /// split, and must be made of the input's own bytes.
    static func chunked(_ bytes: UnsafeRawBufferPointer) {
        guard let input = SplitInput(bytes) else { return }
        let pieced = Self.decodeChunked(input.pieces)
        let whole = Self.decodeChunked([input.whole])
        require(pieced == whole, "chunked decoding depends on the split: \(pieced.outcome) vs \(whole.outcome)")
        require(pieced.data.readableBytes <= input.payload.count, "more chunk data than input")
    }

    private static func decodeChunked(_ pieces: [ByteBuffer]) -> (data: ByteBuffer, outcome: String) {
        var decoder = ChunkedBodyDecoder()
        var data = ByteBuffer()
        var leftover = ByteBuffer()
        let total = pieces.reduce(0) { $0 + $1.readableBytes }
        var fed = 0
        for var piece in pieces {
            fed += piece.readableBytes
            leftover.writeBuffer(&piece)
            do throws(UpstreamFramingError) {
                try decoder.decode(&leftover) { slice in
                    var slice = slice
                    data.writeBuffer(&slice)
                }
            } catch {
                return (data, "error: \(error)")
            }
            if decoder.isDone { return (data, "done, \(total - fed + leftover.readableBytes) bytes after it") }
            // Unconsumed bytes wait for the next read (a line not yet whole).
            var rest = ByteBuffer()
            rest.writeBuffer(&leftover)
            leftover = rest
        }
        return (data, "incomplete")
    }
}
