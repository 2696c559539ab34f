/* conninfo.cpp — see conninfo.h. */
#include "conninfo.h"

#include <libpq-fe.h>

#include <cstring>
#include <initializer_list>
#include <fstream>
#include <unistd.h>

namespace pilotd {

std::string redacted_dsn(const std::string &dsn) {
    char *err = nullptr;
    PQconninfoOption *opts = PQconninfoParse(dsn.c_str(), &err);
    if (opts == nullptr) {
        if (err)
            PQfreemem(err);
        return "(unparsable connection string)";
    }
    std::string out;
    for (PQconninfoOption *o = opts; o->keyword != nullptr; o++) {
        if (o->val == nullptr || o->val[0] == '\0')
            continue;
        if (!out.empty())
            out += ' ';
        out += o->keyword;
        out += '=';
        out += strcmp(o->keyword, "password") == 0 ? "********" : o->val;
    }
    PQconninfoFree(opts);
    return out;
}

bool postmaster_address(const std::string &pgdata, std::string *port, std::string *socket_dir) {
    std::ifstream f(pgdata + "/postmaster.pid");
    std::string line;
    for (int i = 1; i <= 5 && std::getline(f, line); i++) {
        if (i == 4)
            *port = line;
        if (i == 5)
            *socket_dir = line;
    }
    return !port->empty();
}

namespace {

/* a value in a keyword/value connection string: quoted, ' and \ escaped */
std::string quoted(const std::string &v) {
    std::string out = "'";
    for (char c : v) {
        if (c == '\'' || c == '\\')
            out += '\\';
        out += c;
    }
    return out + "'";
}

bool is_uri(const std::string &dsn) {
    return dsn.compare(0, 13, "postgresql://") == 0 || dsn.compare(0, 11, "postgres://") == 0;
}

} // namespace

std::string dsn_for_server_of(const std::string &dsn, const std::string &pgdata) {
    if (pgdata.empty() || is_uri(dsn))
        return dsn;
    char *err = nullptr;
    PQconninfoOption *opts = PQconninfoParse(dsn.c_str(), &err);
    if (opts == nullptr) { /* libpq will say what is wrong with it */
        if (err)
            PQfreemem(err);
        return dsn;
    }
    bool names_server = false;
    for (PQconninfoOption *o = opts; o->keyword != nullptr; o++)
        if (o->val != nullptr && o->val[0] != '\0' &&
            (strcmp(o->keyword, "host") == 0 || strcmp(o->keyword, "hostaddr") == 0 ||
             strcmp(o->keyword, "port") == 0 || strcmp(o->keyword, "service") == 0))
            names_server = true;
    PQconninfoFree(opts);
    std::string port, socket_dir;
    if (names_server || !postmaster_address(pgdata, &port, &socket_dir))
        return dsn;
    std::string out;
    if (!socket_dir.empty())
        out += "host=" + quoted(socket_dir) + " ";
    out += "port=" + quoted(port);
    return dsn.empty() ? out : out + " " + dsn;
}

namespace {

/* *out: dsn as keyword/value pairs without the keywords in `drop`; false
 * when dsn cannot be parsed */
bool without_keywords(const std::string &dsn, std::initializer_list<const char *> drop, std::string *out) {
    char *err = nullptr;
    PQconninfoOption *opts = PQconninfoParse(dsn.c_str(), &err);
    if (opts == nullptr) {
        if (err)
            PQfreemem(err);
        return false;
    }
    out->clear();
    for (PQconninfoOption *o = opts; o->keyword != nullptr; o++) {
        bool dropped = o->val == nullptr || o->val[0] == '\0';
        for (const char *k : drop)
            dropped = dropped || strcmp(o->keyword, k) == 0;
        if (!dropped)
            *out += std::string(out->empty() ? "" : " ") + o->keyword + "=" + quoted(o->val);
    }
    PQconninfoFree(opts);
    return true;
}

} // namespace

std::string dsn_with_dbname(const std::string &dsn, const std::string &dbname) {
    std::string rest;
    if (!without_keywords(dsn, {"dbname"}, &rest))
        return "";
    return (rest.empty() ? "" : rest + " ") + "dbname=" + quoted(dbname);
}

std::string dsn_on_local_server(const std::string &dsn) {
    std::string out;
    return without_keywords(dsn, {"host", "hostaddr", "port", "service"}, &out) ? out : "";
}

bool is_standby_data_directory(const std::string &pgdata) {
    return !pgdata.empty() && access((pgdata + "/standby.signal").c_str(), F_OK) == 0;
}

namespace {
/* the value of the last "primary_conninfo = '...'" line of a configuration
 * file ('' inside the quotes is a quote) */
bool last_primary_conninfo(const std::string &path, std::string *value) {
    std::ifstream f(path);
    std::string line;
    bool found = false;
    while (std::getline(f, line)) {
        size_t at = line.find_first_not_of(" \t");
        if (at == std::string::npos || line.compare(at, 16, "primary_conninfo") != 0)
            continue;
        size_t q = line.find('\'', at + 16);
        if (q == std::string::npos || line.find('=', at + 16) > q)
            continue;
        std::string v;
        size_t i = q + 1;
        for (; i < line.size(); i++) {
            if (line[i] == '\'') {
                if (i + 1 < line.size() && line[i + 1] == '\'') {
                    v += '\'';
                    i++;
                    continue;
                }
                break;
            }
            v += line[i];
        }
        if (i < line.size()) {
            *value = v;
            found = true;
        }
    }
    return found;
}
} // namespace

bool primary_address(const std::string &pgdata, std::string *host, std::string *port) {
    if (!is_standby_data_directory(pgdata))
        return false;
    std::string conninfo;
    if (!last_primary_conninfo(pgdata + "/postgresql.auto.conf", &conninfo) &&
        !last_primary_conninfo(pgdata + "/postgresql.conf", &conninfo))
        return false;
    PQconninfoOption *opts = PQconninfoParse(conninfo.c_str(), nullptr);
    if (opts == nullptr)
        return false;
    host->clear();
    port->clear();
    for (PQconninfoOption *o = opts; o->keyword != nullptr; o++) {
        if (o->val == nullptr || o->val[0] == '\0')
            continue;
        if (strcmp(o->keyword, "host") == 0 || (strcmp(o->keyword, "hostaddr") == 0 && host->empty()))
            *host = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            *port = o->val;
    }
    PQconninfoFree(opts);
    return !host->empty();
}

} // namespace pilotd
