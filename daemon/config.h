/*
 * config.h — pilotd's settings: defaults, the JSON config file (-c FILE) and
 * the command line (which overrides the file).  Every option has a config key
 * of the same name ("state-dir"; "state_dir" is accepted too).
 */
#ifndef PILOTD_CONFIG_H
#define PILOTD_CONFIG_H

#include "log.h"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pilotd {

constexpr const char *kPilotdVersion = "0.1.0";
/* Read by every pilotd command when -c is not given (and it exists); the
 * environment variable PILOTD_CONFIG names another file instead, or, set
 * empty, none. */
constexpr const char *kDefaultConfigFile = "/etc/pg_pilot/pilotd.json";

struct Config {
    std::string pgdata;     /* required */
    std::string state_dir;  /* default: PGDATA/pg_pilot */
    uint32_t slots = 512;
    uint32_t workers = 2;
    uint32_t heartbeat_ms = 10;
    uint32_t feedback_interval_ms = 5;   /* how often the feedback rings are drained */
    uint32_t memo_max_entries = 1000000; /* relation sets the memo keeps at most */
    uint32_t memo_journal_max_mb = 64;   /* memo.journal is compacted beyond this */
    std::string store_dsn = "dbname=postgres user=pilotd"; /* "none": no store */
    uint32_t spool_max_mb = 1024;
    uint32_t store_retention_days = 30;     /* 0: keep */
    uint32_t store_max_rows = 10000000;     /* 0: no limit */
    uint32_t store_retention_interval_s = 60;
    uint32_t store_backoff_max_ms = 30000;
    /* the learned model (models/, model_registry.h, trainer.h) */
    std::string model_dsn;              /* the database the model is for; empty: no training here */
    std::string model_databases;        /* "": model-dsn's; "all": each with the extension; or "a,b" */
    uint32_t train_every = 50000;       /* train again after N new feedback records; 0: only `pilotd train` */
    uint32_t train_seconds = 300;       /* time budget of one training */
    uint32_t train_epochs = 300;
    uint32_t train_seed = 42;           /* split, initial weights, batch order: recorded in the version */
    uint32_t model_sample_rows = 256;   /* sample rows per table (sample bitmaps) */
    uint32_t model_poll_ms = 2000;      /* how often the models directory is looked at */
    /* the index advisor (index_advisor.h, advisor_service.h) */
    std::string advisor_dsn;            /* its login; empty: no advisor jobs */
    uint32_t advisor_every_s = 0;       /* a scheduled run on advisor-dsn's database; 0: none */
    uint32_t advisor_budget_mb = 1024;
    uint32_t advisor_max_indexes = 5;
    uint32_t advisor_width = 2;
    uint32_t advisor_min_benefit_pct = 1;
    uint32_t advisor_write_cost_us = 20;
    /* the plan guard (guard_rule.h) */
    uint32_t guard_min_runs = 3;         /* runs per arm before a template is decided */
    uint32_t guard_slower_pct = 0;       /* pg_pilot's median more than this % above PostgreSQL's ... */
    uint32_t guard_min_difference_us = 200; /* ... and by more than this: native */
    uint32_t guard_stats_change_pct = 100;  /* tables' rows changed by more: explore again; 0 never */
    /* Prometheus metrics (metrics.h) */
    std::string metrics_address;         /* HOST:PORT to serve /metrics on; empty: none */
    bool daemon = false;    /* --daemon; --foreground is the default */
    std::string pid_file;   /* default: STATE_DIR/pilotd.pid */
    std::string log_file;   /* empty: stderr */
    LogLevel log_level = LogLevel::Info;
    /* testing only */
    uint32_t debug_answer_delay_ms = 0;
    bool debug_protocol_version_set = false;
    uint32_t debug_protocol_version = 0;
};

/* A usage or configuration error: pilotd prints it and exits 2. */
struct ConfigError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

enum class Command { Run, Status, Train, Collect, Advise, Help, Version };

struct Invocation {
    Command command = Command::Run;
    Config config;
    uint32_t status_stale_ms = 1000; /* `pilotd status --stale-ms` */
    std::vector<std::string> collect_args; /* `pilotd collect|advise ...`: parsed by collect.h / advise_command.cpp */
    std::string config_file;               /* -c FILE, or the default file read; "" none */
    std::vector<std::pair<std::string, std::string>> settings; /* the command line's, in order */
};

/* model-databases' names: "a, b" -> {"a", "b"}; "" -> {} */
std::vector<std::string> split_database_list(const std::string &text);

/* The config file to read when -c is not given: $PILOTD_CONFIG, or
 * kDefaultConfigFile when it exists; "" for none.  Throws ConfigError when
 * PILOTD_CONFIG names a file that does not exist. */
std::string default_config_file();

/* Parses argv (and the config file it names, or the default one).  Throws
 * ConfigError. */
Invocation parse_command_line(int argc, char **argv);

/* Fills defaults that depend on other settings (state dir, pid file) and
 * makes paths absolute.  Throws ConfigError. */
void finish_config(Config &c);

/* The service writes the settings other commands share with it (the model
 * and store DSNs, the training settings) to STATE_DIR/pilotd.settings.json
 * (mode 0600) when it starts, so that `pilotd train -D DIR` next to it needs
 * nothing else.  c: finished.  False with *error. */
bool write_service_settings(const Config &c, std::string *error);
/* `pilotd train`: the settings of the service of inv's data directory (its
 * settings file, when there is one) under the config file and the command
 * line, into inv.config.  Returns the settings file used ("" for none).
 * Throws ConfigError. */
std::string layer_service_settings(Invocation &inv);

/* What `pilotd collect` and `pilotd advise` take from the configuration;
 * their own options override it.  Empty strings: not configured. */
struct CommandDefaults {
    /* the layered configuration: config.pgdata (-D, finished; "" when none)
     * is the server DSNs default to, config.model_dsn the database to run in
     * or to advise, the advisor-* settings the advisor's */
    Config config;
    std::string store_dsn; /* the feedback store (only when a file names it) */
};
/* inv: as parsed for collect or advise (config file and -D applied).  With
 * -D, the settings of that data directory's service are layered under the
 * config file (layer_service_settings).  Throws ConfigError. */
CommandDefaults command_defaults(Invocation &inv);

void print_help(const char *argv0);

/* One line summarising the settings, for the startup log. */
std::string config_summary(const Config &c);

} // namespace pilotd

#endif
