/*
 * conninfo.h — libpq connection strings as pilotd uses them: shown without
 * their password, and completed with the address of the server of -D.
 *
 * pilotd runs beside one PostgreSQL server, named by its data directory.
 * Every connection it makes (the feedback store, the database a model is
 * trained for, the advisor's) goes to that server unless its connection
 * string says otherwise: the port and socket directory come from
 * PGDATA/postmaster.pid, so "dbname=app" works for the service and for
 * `pilotd train -D DIR` alike, whatever the environment's PGHOST/PGPORT.
 */
#ifndef PILOTD_CONNINFO_H
#define PILOTD_CONNINFO_H

#include <string>

namespace pilotd {

/* dsn without its password (for logs, status and errors) */
std::string redacted_dsn(const std::string &dsn);

/* The running server's port and first socket directory, from
 * PGDATA/postmaster.pid (lines 4 and 5); false when it has none. */
bool postmaster_address(const std::string &pgdata, std::string *port, std::string *socket_dir);

/* Beside a standby (PGDATA/standby.signal exists): its primary's host and
 * port, from primary_conninfo in PGDATA/postgresql.auto.conf (else
 * postgresql.conf; the last setting wins).  False when pgdata is not a
 * standby's or names no primary. */
bool primary_address(const std::string &pgdata, std::string *host, std::string *port);
bool is_standby_data_directory(const std::string &pgdata);

/* dsn naming database dbname instead of its own (keyword/value or URI in,
 * keyword/value out); "" when dsn cannot be parsed. */
std::string dsn_with_dbname(const std::string &dsn, const std::string &dbname);

/* dsn without the server it names (host, hostaddr, port, service), so that
 * dsn_for_server_of() sends it to the local server: what a standby's pilotd
 * reads its own replica with, whatever server its store DSN names.  "" when
 * dsn cannot be parsed. */
std::string dsn_on_local_server(const std::string &dsn);

/* dsn with the server of pgdata as its host and port where it names neither
 * host nor port itself (a keyword/value string; a URI is returned as it is:
 * it names its host).  Without a postmaster.pid, dsn unchanged. */
std::string dsn_for_server_of(const std::string &dsn, const std::string &pgdata);

} // namespace pilotd

#endif
