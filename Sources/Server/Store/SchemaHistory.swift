/// The migrations both databases apply, in order: SQLite's (`Store.migrator`) and PostgreSQL's
/// (`PostgresSchema`) are registered from this one list, so a schema version means the same on
/// either, and a database migrated by a newer Switchyard is recognised by a name not in it.
enum SchemaHistory {
    static let migrations = [
        "v1: audit log",
        "v2: keys and ledger",
        "v3: cost saved by the cache",
        "v4: persistent cache",
        "v5: ledger operation",
        "v6: semantic vectors of cached answers",
        "v7: the replica of an audit row",
        "v8: ledger entry ids and daily totals",
        "v9: the journal of rows bound for a shared database",
        "v10: responses kept for their callers",
        "v11: why the semantic cache refused a hit",
    ]

    /// A database whose schema is newer than this build knows: refused at start, never written to.
    struct TooNew: Error, CustomStringConvertible {
        let database: String
        let unknown: [String]
        var description: String {
            "the \(self.database) was migrated by a newer Switchyard (\(self.unknown.joined(separator: ", "))); run that version or a newer one against it"
        }
    }
}
