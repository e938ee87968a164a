import HTTPTypes
import Hummingbird
import NIOCore

/// A response whose body is known in full: what the fast lane writes to its connection itself, and
/// what a handler hands to Hummingbird as a `Response`.
struct WholeResponse {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var body: ByteBuffer

    var response: Response {
        Response(status: self.status, headers: self.headers, body: ResponseBody(byteBuffer: self.body))
    }
}
