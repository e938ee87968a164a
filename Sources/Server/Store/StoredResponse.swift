import GRDB

/// A Responses API answer the gateway keeps (`store` not false) for its caller: what
/// `previous_response_id`, `GET`, `DELETE` and `input_items` read. Scoped to the tenant that made it;
/// the conversation is kept whole (every earlier turn's items), so a follow-up is one read.
struct StoredResponse: Codable, Sendable, Equatable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "stored_response"

    /// `resp_…`.
    var id: String
    /// The tenant it belongs to; '' for anonymous callers (a single-user gateway).
    var tenant: String
    var keyId: String?
    /// Seconds since 1970.
    var createdAt: Double
    /// The provider and upstream model that answered.
    var provider: String
    var upstreamModel: String
    /// Whether that upstream keeps the response itself (a Responses upstream: follow-ups go back to it).
    var heldUpstream: Bool
    /// The conversation's input items up to this request's, a JSON array.
    var inputItems: String
    /// The Response object as the client got it.
    var response: String

    /// A kept response has this id already: another request's, perhaps another tenant's, which a
    /// second answer with the same id must never replace.
    struct IdTaken: Error, CustomStringConvertible {
        let id: String
        var description: String { "a response with id '\(self.id.prefix(100))' is kept already" }
    }

    enum Columns {
        static let id = Column("id")
        static let tenant = Column("tenant")
        static let createdAt = Column("created_at")
    }

    static let databaseColumnDecodingStrategy = DatabaseColumnDecodingStrategy.convertFromSnakeCase
    static let databaseColumnEncodingStrategy = DatabaseColumnEncodingStrategy.convertToSnakeCase

    /// The columns, in the order PostgreSQL reads and writes them.
    static let columnList = "id, tenant, key_id, created_at, provider, upstream_model, held_upstream, input_items, response"

    /// The most a kept conversation may hold: a follow-up past it is refused with a clear error.
    static let largestConversation = 16 << 20
}
