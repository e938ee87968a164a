import AsyncHTTPClient
import Engine
import Foundation
import NIOCore
import NIOHTTP1

/// Downloads image URLs for upstreams that take inline images only (Ollama, Gemini), when
/// `server.fetch_image_urls` allows it: http(s) only, 10 s, 5 MiB (Anthropic's own per-image limit),
/// and only answers that say they are images.
struct ImageFetcher: Sendable {
    static let maxBytes = 5 << 20

    let client: HTTPClient

    /// Whether `wire` needs URL images turned into inline ones.
    static func isNeeded(for wire: WireFormat) -> Bool {
        wire == .ollamaChat || wire == .geminiGenerateContent
    }

    /// The request with every web image URL replaced by its inline bytes.
    /// - Throws: `invalidRequest` (400) naming the URL that could not be used.
    func inline(_ request: ChatRequest) async throws -> ChatRequest {
        var request = request
        for messageIndex in request.messages.indices {
            for partIndex in request.messages[messageIndex].content.indices {
                guard case .image(.url(let url)) = request.messages[messageIndex].content[partIndex],
                    url.hasPrefix("http://") || url.hasPrefix("https://")
                else { continue }
                request.messages[messageIndex].content[partIndex] = .image(try await self.fetch(url))
            }
        }
        return request
    }

    private func fetch(_ url: String) async throws -> ImageSource {
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await self.client.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
            body = try await response.body.collect(upTo: Self.maxBytes)
        } catch is NIOTooManyBytesError {
            throw GatewayError.invalidRequest("The image at \(url) is larger than 5 MiB.", param: "messages")
        } catch {
            throw GatewayError.invalidRequest("The image at \(url) could not be fetched (\(type(of: error))).", param: "messages")
        }
        guard response.status == .ok else {
            throw GatewayError.invalidRequest("The image at \(url) answered HTTP \(response.status.code).", param: "messages")
        }
        let mediaType = response.headers.first(name: "content-type")?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        guard mediaType.hasPrefix("image/") else {
            throw GatewayError.invalidRequest("The URL \(url) is not an image (content-type '\(mediaType)').", param: "messages")
        }
        return .base64(mediaType: mediaType, data: Data(body.readableBytesView).base64EncodedString())
    }
}
