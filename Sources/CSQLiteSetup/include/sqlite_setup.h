#ifndef SQLITE_SETUP_H
#define SQLITE_SETUP_H

/// Turns SQLite's memory statistics off, process-wide. They take a global mutex on every allocation
/// SQLite makes (several per ledger row); the gateway never reads them. `sqlite3_config` is variadic,
/// which Swift does not import, and must run before SQLite's first use.
/// Returns SQLite's result code (SQLITE_MISUSE when SQLite was already in use: nothing changes then).
int switchyard_sqlite_disable_memstatus(void);

#endif
