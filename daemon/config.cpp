/* config.cpp — option parsing; see config.h. */
#include "config.h"

#include "durable_file.h"
#include "pilot_protocol.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <getopt.h>
#include <sstream>
#include <unistd.h>
#include <vector>

namespace pilotd {

namespace {

/* Bounds of the numeric settings. */
struct Range {
    uint64_t min, max;
};
constexpr Range kSlotsRange{1, 65536};
constexpr Range kWorkersRange{1, 256};
constexpr Range kHeartbeatRange{1, 10000};
constexpr Range kFeedbackIntervalRange{1, 10000};
constexpr Range kMemoMaxRange{1, 100000000};
constexpr Range kJournalMaxRange{1, 1048576};
constexpr Range kDelayRange{0, 3600000};
constexpr Range kVersionRange{0, UINT32_MAX};
constexpr Range kStaleRange{1, 3600000};
constexpr Range kSpoolMaxRange{1, 1048576};
constexpr Range kRetentionDaysRange{0, 36500};
constexpr Range kMaxRowsRange{0, UINT32_MAX};
constexpr Range kRetentionIntervalRange{1, 86400};
constexpr Range kBackoffMaxRange{100, 3600000};
constexpr Range kTrainEveryRange{0, UINT32_MAX};
constexpr Range kTrainSecondsRange{1, 86400};
constexpr Range kTrainEpochsRange{1, 10000};
constexpr Range kTrainSeedRange{0, UINT32_MAX};
constexpr Range kSampleRowsRange{0, 10000};
constexpr Range kModelPollRange{100, 600000};
constexpr Range kAdvisorEveryRange{0, 31 * 86400};
constexpr Range kAdvisorBudgetRange{1, 1u << 30};
constexpr Range kAdvisorMaxIndexesRange{1, 1000};
constexpr Range kAdvisorWidthRange{1, 3};
constexpr Range kAdvisorMinBenefitRange{0, 100};
constexpr Range kAdvisorWriteCostRange{0, 1000000};
constexpr Range kGuardMinRunsRange{1, 64};
constexpr Range kGuardSlowerPctRange{0, 10000};
constexpr Range kGuardMinDifferenceRange{0, 60000000};
constexpr Range kGuardStatsChangePctRange{0, 100000};

std::string quoted(const std::string &s) { return "\"" + s + "\""; }

uint32_t parse_uint(const std::string &key, const std::string &text, Range r) {
    const char *s = text.c_str();
    bool digits = !text.empty();
    for (char ch : text)
        if (ch < '0' || ch > '9')
            digits = false;
    errno = 0;
    unsigned long long v = digits ? strtoull(s, nullptr, 10) : 0;
    if (!digits || errno == ERANGE || v < r.min || v > r.max)
        throw ConfigError("invalid value " + quoted(text) + " for " + key + ": must be an integer in " +
                          std::to_string(r.min) + ".." + std::to_string(r.max));
    return static_cast<uint32_t>(v);
}

/* "state_dir" -> "state-dir" */
std::string normalize_key(std::string k) {
    for (char &ch : k)
        if (ch == '_')
            ch = '-';
    return k;
}

/* Applies one setting given as text (command line) — the single place that
 * knows every key, shared by the config file and getopt. */
void apply_setting(Config &c, const std::string &key, const std::string &value) {
    if (key == "pgdata") {
        if (value.empty())
            throw ConfigError("invalid value for pgdata: must not be empty");
        c.pgdata = value;
    } else if (key == "state-dir") {
        if (value.empty())
            throw ConfigError("invalid value for state-dir: must not be empty");
        c.state_dir = value;
    } else if (key == "slots") {
        c.slots = parse_uint(key, value, kSlotsRange);
    } else if (key == "workers") {
        c.workers = parse_uint(key, value, kWorkersRange);
    } else if (key == "heartbeat-ms") {
        c.heartbeat_ms = parse_uint(key, value, kHeartbeatRange);
    } else if (key == "feedback-interval-ms") {
        c.feedback_interval_ms = parse_uint(key, value, kFeedbackIntervalRange);
    } else if (key == "memo-max-entries") {
        c.memo_max_entries = parse_uint(key, value, kMemoMaxRange);
    } else if (key == "memo-journal-max-mb") {
        c.memo_journal_max_mb = parse_uint(key, value, kJournalMaxRange);
    } else if (key == "store-dsn") {
        c.store_dsn = value; /* "none": no store */
    } else if (key == "spool-max-mb") {
        c.spool_max_mb = parse_uint(key, value, kSpoolMaxRange);
    } else if (key == "store-retention-days") {
        c.store_retention_days = parse_uint(key, value, kRetentionDaysRange);
    } else if (key == "store-max-rows") {
        c.store_max_rows = parse_uint(key, value, kMaxRowsRange);
    } else if (key == "store-retention-interval-s") {
        c.store_retention_interval_s = parse_uint(key, value, kRetentionIntervalRange);
    } else if (key == "store-backoff-max-ms") {
        c.store_backoff_max_ms = parse_uint(key, value, kBackoffMaxRange);
    } else if (key == "model-dsn") {
        c.model_dsn = value;
    } else if (key == "model-databases") {
        for (const std::string &name : split_database_list(value))
            if (name.empty() || name.size() > 63)
                throw ConfigError("invalid value " + quoted(value) + " for model-databases: \"all\" or database "
                                  "names separated by commas");
        c.model_databases = value;
    } else if (key == "train-every") {
        c.train_every = parse_uint(key, value, kTrainEveryRange);
    } else if (key == "train-seconds") {
        c.train_seconds = parse_uint(key, value, kTrainSecondsRange);
    } else if (key == "train-epochs") {
        c.train_epochs = parse_uint(key, value, kTrainEpochsRange);
    } else if (key == "train-seed") {
        c.train_seed = parse_uint(key, value, kTrainSeedRange);
    } else if (key == "model-sample-rows") {
        c.model_sample_rows = parse_uint(key, value, kSampleRowsRange);
    } else if (key == "model-poll-ms") {
        c.model_poll_ms = parse_uint(key, value, kModelPollRange);
    } else if (key == "advisor-dsn") {
        c.advisor_dsn = value;
    } else if (key == "advisor-every-s") {
        c.advisor_every_s = parse_uint(key, value, kAdvisorEveryRange);
    } else if (key == "advisor-budget-mb") {
        c.advisor_budget_mb = parse_uint(key, value, kAdvisorBudgetRange);
    } else if (key == "advisor-max-indexes") {
        c.advisor_max_indexes = parse_uint(key, value, kAdvisorMaxIndexesRange);
    } else if (key == "advisor-width") {
        c.advisor_width = parse_uint(key, value, kAdvisorWidthRange);
    } else if (key == "advisor-min-benefit-pct") {
        c.advisor_min_benefit_pct = parse_uint(key, value, kAdvisorMinBenefitRange);
    } else if (key == "advisor-write-cost-us") {
        c.advisor_write_cost_us = parse_uint(key, value, kAdvisorWriteCostRange);
    } else if (key == "guard-min-runs") {
        c.guard_min_runs = parse_uint(key, value, kGuardMinRunsRange);
    } else if (key == "guard-slower-pct") {
        c.guard_slower_pct = parse_uint(key, value, kGuardSlowerPctRange);
    } else if (key == "guard-min-difference-us") {
        c.guard_min_difference_us = parse_uint(key, value, kGuardMinDifferenceRange);
    } else if (key == "guard-stats-change-pct") {
        c.guard_stats_change_pct = parse_uint(key, value, kGuardStatsChangePctRange);
    } else if (key == "metrics-address") {
        /* HOST:PORT (an IPv6 host in brackets); empty: no endpoint */
        const size_t colon = value.rfind(':');
        const std::string port = colon == std::string::npos ? "" : value.substr(colon + 1);
        if (!value.empty() && (colon == 0 || colon == std::string::npos ||
                               port.find_first_not_of("0123456789") != std::string::npos || port.empty() ||
                               port.size() > 5 || std::stoul(port) > 65535))
            throw ConfigError("invalid value " + quoted(value) +
                              " for metrics-address: must be HOST:PORT, e.g. 127.0.0.1:9187");
        c.metrics_address = value;
    } else if (key == "pid-file") {
        if (value.empty())
            throw ConfigError("invalid value for pid-file: must not be empty");
        c.pid_file = value;
    } else if (key == "log-file") {
        c.log_file = value; /* empty = stderr */
    } else if (key == "log-level") {
        if (!parse_log_level(value, &c.log_level))
            throw ConfigError("invalid value " + quoted(value) +
                              " for log-level: must be debug, info, warning or error");
    } else if (key == "debug-answer-delay-ms") {
        c.debug_answer_delay_ms = parse_uint(key, value, kDelayRange);
    } else if (key == "debug-protocol-version") {
        c.debug_protocol_version = parse_uint(key, value, kVersionRange);
        c.debug_protocol_version_set = true;
    } else if (key == "daemon" || key == "foreground") {
        bool on;
        if (value == "true") on = true;
        else if (value == "false") on = false;
        else throw ConfigError("invalid value " + quoted(value) + " for " + key + ": must be true or false");
        c.daemon = (key == "daemon") ? on : !on;
    } else {
        throw ConfigError("unknown setting " + quoted(key));
    }
}

void apply_json_file(Config &c, const std::string &path) {
    std::ifstream in(path);
    if (!in) {
        const int err = errno;
        throw ConfigError("cannot read config file " + quoted(path) + ": " + strerror(err) +
                          (err == EACCES ? " (run as a user who may read it, e.g. the server's OS user, or name "
                                           "another with -c FILE)"
                                         : ""));
    }
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(in, nullptr, true, /*ignore_comments=*/true);
    } catch (const nlohmann::json::exception &e) {
        throw ConfigError("config file " + quoted(path) + " is not valid JSON: " + e.what());
    }
    if (!j.is_object())
        throw ConfigError("config file " + quoted(path) + " must hold a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string key = normalize_key(it.key());
        const nlohmann::json &v = it.value();
        enum Kind { STRING, NUMBER, BOOL };
        Kind kind;
        if (key == "daemon" || key == "foreground")
            kind = BOOL;
        else if (key == "pgdata" || key == "state-dir" || key == "pid-file" || key == "log-file" ||
                 key == "log-level" || key == "store-dsn" || key == "model-dsn" || key == "advisor-dsn" || key == "model-databases" ||
                 key == "metrics-address")
            kind = STRING;
        else if (key == "slots" || key == "workers" || key == "heartbeat-ms" ||
                 key == "feedback-interval-ms" || key == "memo-max-entries" ||
                 key == "memo-journal-max-mb" || key == "debug-answer-delay-ms" || key == "debug-protocol-version" ||
                 key == "spool-max-mb" || key == "store-retention-days" || key == "store-max-rows" ||
                 key == "store-retention-interval-s" || key == "store-backoff-max-ms" || key == "train-every" ||
                 key == "train-seconds" || key == "train-epochs" || key == "train-seed" || key == "model-sample-rows" ||
                 key == "model-poll-ms" || key == "advisor-every-s" || key == "advisor-budget-mb" ||
                 key == "advisor-max-indexes" || key == "advisor-width" || key == "advisor-min-benefit-pct" ||
                 key == "advisor-write-cost-us" || key == "guard-min-runs" || key == "guard-slower-pct" ||
                 key == "guard-min-difference-us" || key == "guard-stats-change-pct")
            kind = NUMBER;
        else
            throw ConfigError("config file " + quoted(path) + ": unknown key " + quoted(it.key()) +
                              " (see pilotd --help for the keys)");
        const char *want = kind == BOOL ? "true or false" : kind == STRING ? "a string" : "a non-negative integer";
        bool ok = kind == BOOL ? v.is_boolean() : kind == STRING ? v.is_string() : v.is_number_unsigned();
        if (!ok)
            throw ConfigError("config file " + quoted(path) + ": invalid value " + v.dump() + " for " +
                              quoted(it.key()) + ": must be " + want);
        std::string text = kind == BOOL     ? (v.get<bool>() ? "true" : "false")
                           : kind == STRING ? v.get<std::string>()
                                            : std::to_string(v.get<uint64_t>());
        try {
            apply_setting(c, key, text);
        } catch (const ConfigError &e) {
            throw ConfigError("config file " + quoted(path) + ": " + e.what() +
                              (key != it.key() ? " (key " + quoted(it.key()) + ")" : ""));
        }
    }
}

std::string absolute(const std::string &p) {
    if (p.empty() || p[0] == '/')
        return p;
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == nullptr)
        throw ConfigError(std::string("cannot get the current directory: ") + strerror(errno));
    return std::string(cwd) + "/" + p;
}

} // namespace

std::vector<std::string> split_database_list(const std::string &text) {
    std::vector<std::string> out;
    if (text.empty())
        return out;
    size_t at = 0;
    for (;;) {
        size_t comma = text.find(',', at);
        std::string name = text.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
        while (!name.empty() && name.front() == ' ')
            name.erase(name.begin());
        while (!name.empty() && name.back() == ' ')
            name.pop_back();
        out.push_back(name);
        if (comma == std::string::npos)
            return out;
        at = comma + 1;
    }
}

std::string default_config_file() {
    if (const char *env = getenv("PILOTD_CONFIG")) {
        /* set: this file, which must exist; set empty: none */
        if (*env && access(env, F_OK) != 0)
            throw ConfigError(std::string("PILOTD_CONFIG names ") + quoted(env) +
                              ", which does not exist (unset it to use " + kDefaultConfigFile + ")");
        return env;
    }
    return access(kDefaultConfigFile, F_OK) == 0 ? kDefaultConfigFile : "";
}

Invocation parse_command_line(int argc, char **argv) {
    Invocation inv;
    enum {
        O_STATE_DIR = 1000, O_SLOTS, O_WORKERS, O_HEARTBEAT, O_FOREGROUND, O_DAEMON, O_PID_FILE,
        O_LOG_FILE, O_LOG_LEVEL, O_DELAY, O_PROTO, O_STALE, O_FEEDBACK_INTERVAL, O_MEMO_MAX,
        O_JOURNAL_MAX,
        O_SETTING = 2000, /* the option's name is the setting's key */
    };
    static const struct option opts[] = {
        {"pgdata", required_argument, nullptr, 'D'},
        {"config", required_argument, nullptr, 'c'},
        {"state-dir", required_argument, nullptr, O_STATE_DIR},
        {"slots", required_argument, nullptr, O_SLOTS},
        {"workers", required_argument, nullptr, O_WORKERS},
        {"heartbeat-ms", required_argument, nullptr, O_HEARTBEAT},
        {"feedback-interval-ms", required_argument, nullptr, O_FEEDBACK_INTERVAL},
        {"memo-max-entries", required_argument, nullptr, O_MEMO_MAX},
        {"memo-journal-max-mb", required_argument, nullptr, O_JOURNAL_MAX},
        {"store-dsn", required_argument, nullptr, O_SETTING},
        {"spool-max-mb", required_argument, nullptr, O_SETTING},
        {"store-retention-days", required_argument, nullptr, O_SETTING},
        {"store-max-rows", required_argument, nullptr, O_SETTING},
        {"store-retention-interval-s", required_argument, nullptr, O_SETTING},
        {"store-backoff-max-ms", required_argument, nullptr, O_SETTING},
        {"model-dsn", required_argument, nullptr, O_SETTING},
        {"model-databases", required_argument, nullptr, O_SETTING},
        {"advisor-dsn", required_argument, nullptr, O_SETTING},
        {"metrics-address", required_argument, nullptr, O_SETTING},
        {"advisor-every-s", required_argument, nullptr, O_SETTING},
        {"advisor-budget-mb", required_argument, nullptr, O_SETTING},
        {"advisor-max-indexes", required_argument, nullptr, O_SETTING},
        {"advisor-width", required_argument, nullptr, O_SETTING},
        {"advisor-min-benefit-pct", required_argument, nullptr, O_SETTING},
        {"advisor-write-cost-us", required_argument, nullptr, O_SETTING},
        {"train-every", required_argument, nullptr, O_SETTING},
        {"train-seconds", required_argument, nullptr, O_SETTING},
        {"train-epochs", required_argument, nullptr, O_SETTING},
        {"train-seed", required_argument, nullptr, O_SETTING},
        {"model-sample-rows", required_argument, nullptr, O_SETTING},
        {"model-poll-ms", required_argument, nullptr, O_SETTING},
        {"guard-min-runs", required_argument, nullptr, O_SETTING},
        {"guard-slower-pct", required_argument, nullptr, O_SETTING},
        {"guard-min-difference-us", required_argument, nullptr, O_SETTING},
        {"guard-stats-change-pct", required_argument, nullptr, O_SETTING},
        {"foreground", no_argument, nullptr, O_FOREGROUND},
        {"daemon", no_argument, nullptr, O_DAEMON},
        {"pid-file", required_argument, nullptr, O_PID_FILE},
        {"log-file", required_argument, nullptr, O_LOG_FILE},
        {"log-level", required_argument, nullptr, O_LOG_LEVEL},
        {"debug-answer-delay-ms", required_argument, nullptr, O_DELAY},
        {"debug-protocol-version", required_argument, nullptr, O_PROTO},
        {"stale-ms", required_argument, nullptr, O_STALE},
        {"help", no_argument, nullptr, 'h'},
        {"version", no_argument, nullptr, 'V'},
        {nullptr, 0, nullptr, 0},
    };

    /* `pilotd status ...`: the subcommand comes first */
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "status") == 0) {
        inv.command = Command::Status;
        first = 2;
    } else if (argc > 1 && strcmp(argv[1], "train") == 0) {
        inv.command = Command::Train;
        first = 2;
    } else if (argc > 1 && (strcmp(argv[1], "collect") == 0 || strcmp(argv[1], "advise") == 0)) {
        /* their own options (collect.h, index_advisor.h), and the config
         * file and data directory every command shares: the DSNs default to
         * the configuration's and go to the server of -D */
        inv.command = strcmp(argv[1], "collect") == 0 ? Command::Collect : Command::Advise;
        for (int i = 2; i < argc; i++) {
            const std::string a = argv[i];
            const bool config = a == "-c" || a == "--config", pgdata = a == "-D" || a == "--pgdata";
            if ((config || pgdata) && i + 1 >= argc)
                throw ConfigError("option " + a + " needs a value");
            if (config || a.rfind("--config=", 0) == 0)
                inv.config_file = config ? argv[++i] : a.substr(strlen("--config="));
            else if (pgdata || a.rfind("--pgdata=", 0) == 0)
                inv.settings.emplace_back("pgdata", pgdata ? argv[++i] : a.substr(strlen("--pgdata=")));
            else
                inv.collect_args.push_back(a);
        }
        if (inv.config_file.empty())
            inv.config_file = default_config_file();
        if (!inv.config_file.empty())
            apply_json_file(inv.config, inv.config_file);
        for (const auto &kv : inv.settings)
            apply_setting(inv.config, kv.first, kv.second);
        return inv;
    }
    std::vector<char *> args;
    args.push_back(argv[0]);
    for (int i = first; i < argc; i++)
        args.push_back(argv[i]);
    args.push_back(nullptr);
    int nargs = static_cast<int>(args.size()) - 1;

    /* two passes: the config file first, then every other option over it */
    std::vector<std::pair<std::string, std::string>> settings;
    std::string config_file;
    bool stale_given = false;
    optind = 1;
    opterr = 0;
    int ch;
    int longindex = 0;
    while ((ch = getopt_long(nargs, args.data(), ":D:c:hV", opts, &longindex)) != -1) {
        std::string val = optarg ? optarg : "";
        switch (ch) {
        case O_SETTING: settings.emplace_back(opts[longindex].name, val); break;
        case 'D': settings.emplace_back("pgdata", val); break;
        case 'c': config_file = val; break;
        case O_STATE_DIR: settings.emplace_back("state-dir", val); break;
        case O_SLOTS: settings.emplace_back("slots", val); break;
        case O_WORKERS: settings.emplace_back("workers", val); break;
        case O_HEARTBEAT: settings.emplace_back("heartbeat-ms", val); break;
        case O_FEEDBACK_INTERVAL: settings.emplace_back("feedback-interval-ms", val); break;
        case O_MEMO_MAX: settings.emplace_back("memo-max-entries", val); break;
        case O_JOURNAL_MAX: settings.emplace_back("memo-journal-max-mb", val); break;
        case O_FOREGROUND: settings.emplace_back("daemon", "false"); break;
        case O_DAEMON: settings.emplace_back("daemon", "true"); break;
        case O_PID_FILE: settings.emplace_back("pid-file", val); break;
        case O_LOG_FILE: settings.emplace_back("log-file", val); break;
        case O_LOG_LEVEL: settings.emplace_back("log-level", val); break;
        case O_DELAY: settings.emplace_back("debug-answer-delay-ms", val); break;
        case O_PROTO: settings.emplace_back("debug-protocol-version", val); break;
        case O_STALE:
            inv.status_stale_ms = parse_uint("stale-ms", val, kStaleRange);
            stale_given = true;
            break;
        case 'h': inv.command = Command::Help; return inv;
        case 'V': inv.command = Command::Version; return inv;
        case ':':
            throw ConfigError(std::string("option ") + args[optind - 1] + " needs a value");
        default:
            throw ConfigError(std::string("unknown option ") + args[optind - 1] + " (see pilotd --help)");
        }
    }
    if (optind < nargs)
        throw ConfigError(std::string("unexpected argument ") + quoted(args[optind]) +
                          " (subcommands are \"status\", \"train\", \"collect\" and \"advise\", and come first)");
    if (stale_given && inv.command != Command::Status)
        throw ConfigError("--stale-ms is an option of \"pilotd status\"");

    if (config_file.empty())
        config_file = default_config_file();
    inv.config_file = config_file;
    inv.settings = settings;
    if (!config_file.empty())
        apply_json_file(inv.config, config_file);
    for (const auto &kv : settings) {
        try {
            apply_setting(inv.config, kv.first, kv.second);
        } catch (const ConfigError &e) {
            throw ConfigError("option --" + kv.first + ": " + e.what());
        }
    }
    return inv;
}

namespace {
std::string settings_path(const Config &finished) { return finished.state_dir + "/pilotd.settings.json"; }
/* What the service shares with the commands run next to it. */
void copy_shared(const Config &from, Config &to) {
    to.model_dsn = from.model_dsn;
    to.store_dsn = from.store_dsn;
    to.train_seconds = from.train_seconds;
    to.train_epochs = from.train_epochs;
    to.train_seed = from.train_seed;
    to.model_sample_rows = from.model_sample_rows;
    to.model_poll_ms = from.model_poll_ms;
}
} // namespace

bool write_service_settings(const Config &c, std::string *error) {
    nlohmann::json j = nlohmann::json::object();
    j["model-dsn"] = c.model_dsn;
    j["store-dsn"] = c.store_dsn;
    j["train-seconds"] = c.train_seconds;
    j["train-epochs"] = c.train_epochs;
    j["train-seed"] = c.train_seed;
    j["model-sample-rows"] = c.model_sample_rows;
    j["model-poll-ms"] = c.model_poll_ms; /* the keys copy_shared() takes */
    const std::string text =
        "// written by pilotd at start: the settings `pilotd train -D` shares with it\n" + j.dump(4) + "\n";
    return replace_file(c.state_dir, settings_path(c), text.data(), text.size(), error) != Replaced::Failed;
}

std::string layer_service_settings(Invocation &inv) {
    Config probe = inv.config;
    finish_config(probe);
    const std::string path = settings_path(probe);
    if (access(path.c_str(), R_OK) != 0)
        return "";
    Config c;
    try {
        apply_json_file(c, path);
    } catch (const ConfigError &e) {
        throw ConfigError(std::string("the service's settings: ") + e.what());
    }
    /* only what the service shares: nothing else of the file is taken */
    Config shared;
    copy_shared(c, shared);
    if (!inv.config_file.empty())
        apply_json_file(shared, inv.config_file);
    for (const auto &kv : inv.settings) {
        try {
            apply_setting(shared, kv.first, kv.second);
        } catch (const ConfigError &e) {
            throw ConfigError("option --" + kv.first + ": " + e.what());
        }
    }
    inv.config = shared;
    return path;
}

/* What `pilotd collect` and `pilotd advise` take from the configuration
 * (the config file and, with -D, the settings of the service of that data
 * directory); their own options override it. */
CommandDefaults command_defaults(Invocation &inv) {
    CommandDefaults d;
    std::string service;
    if (!inv.config.pgdata.empty()) {
        service = layer_service_settings(inv);
        finish_config(inv.config);
    }
    d.config = inv.config;
    /* the built-in store DSN is only a guess: taken when a file names one */
    if (!inv.config_file.empty() || !service.empty())
        d.store_dsn = d.config.store_dsn == "none" ? "" : d.config.store_dsn;
    return d;
}

void finish_config(Config &c) {
    if (c.pgdata.empty())
        throw ConfigError("the data directory is required: -D/--pgdata DIR (or \"pgdata\" in the config file)");
    c.pgdata = absolute(c.pgdata);
    while (c.pgdata.size() > 1 && c.pgdata.back() == '/')
        c.pgdata.pop_back();
    if (c.state_dir.empty())
        c.state_dir = c.pgdata + "/pg_pilot";
    c.state_dir = absolute(c.state_dir);
    if (c.pid_file.empty())
        c.pid_file = c.state_dir + "/pilotd.pid";
    c.pid_file = absolute(c.pid_file);
    c.log_file = absolute(c.log_file);
}

std::string config_summary(const Config &c) {
    std::ostringstream s;
    s << "pgdata=" << c.pgdata << " state-dir=" << c.state_dir << " slots=" << c.slots
      << " workers=" << c.workers << " heartbeat-ms=" << c.heartbeat_ms
      << " feedback-interval-ms=" << c.feedback_interval_ms << " memo-max-entries=" << c.memo_max_entries
      << " memo-journal-max-mb=" << c.memo_journal_max_mb << " store-dsn=\"" << c.store_dsn << "\""
      << " spool-max-mb=" << c.spool_max_mb << " store-retention-days=" << c.store_retention_days
      << " store-max-rows=" << c.store_max_rows << " store-retention-interval-s=" << c.store_retention_interval_s
      << " store-backoff-max-ms=" << c.store_backoff_max_ms << " model-dsn=\"" << c.model_dsn << "\""
      << " model-databases=\"" << c.model_databases << "\""
      << " train-every=" << c.train_every << " train-seconds=" << c.train_seconds
      << " train-epochs=" << c.train_epochs << " train-seed=" << c.train_seed << " model-sample-rows=" << c.model_sample_rows
      << " model-poll-ms=" << c.model_poll_ms << " advisor-dsn=\"" << c.advisor_dsn << "\""
      << " advisor-every-s=" << c.advisor_every_s << " advisor-budget-mb=" << c.advisor_budget_mb
      << " advisor-max-indexes=" << c.advisor_max_indexes << " advisor-width=" << c.advisor_width
      << " advisor-min-benefit-pct=" << c.advisor_min_benefit_pct
      << " advisor-write-cost-us=" << c.advisor_write_cost_us << " guard-min-runs=" << c.guard_min_runs
      << " guard-slower-pct=" << c.guard_slower_pct << " guard-min-difference-us=" << c.guard_min_difference_us
      << " guard-stats-change-pct=" << c.guard_stats_change_pct
      << " metrics-address=\"" << c.metrics_address << "\""
      << " mode=" << (c.daemon ? "daemon" : "foreground") << " pid-file=" << c.pid_file
      << " log-file=" << (c.log_file.empty() ? "stderr" : c.log_file)
      << " log-level=" << log_level_key(c.log_level);
    if (c.debug_answer_delay_ms)
        s << " debug-answer-delay-ms=" << c.debug_answer_delay_ms;
    if (c.debug_protocol_version_set)
        s << " debug-protocol-version=" << c.debug_protocol_version;
    return s.str();
}

void print_help(const char *argv0) {
    printf(
        "pilotd %s - answers PostgreSQL's cardinality estimation requests for pg_pilot\n"
        "over shared memory.\n"
        "\n"
        "Usage:\n"
        "  %s -D DIR [options]    run the service\n"
        "  %s status -D DIR       show the running pilotd's state; exit 0 if it is\n"
        "                               up and ready, 3 if not (like pg_ctl status)\n"
        "  %s train -D DIR [--model-dsn DSN] [options]\n"
        "                             train a learned-model version now from the\n"
        "                               feedback store (the running pilotd decides\n"
        "                               whether it serves: see pg_pilot.models)\n"
        "  %s collect [-D DIR] --workload FILE [--dsn DSN] [--timeout-ms N]\n"
        "                [--repeat K] [--subplans]\n"
        "                             run a workload's queries with feedback collection\n"
        "                               on, to gather training labels; --subplans also\n"
        "                               counts every sub-plan the planner sizes for them\n"
        "                               (--dsn default: model-dsn)\n"
        "  %s collect [-D DIR] --workload FILE --oracle-out OUT [--max-subplans N]\n"
        "                             count every sub-plan the planner sizes for the\n"
        "                               queries, feedback off, into an oracle file for\n"
        "                               pg_pilot.load_cardinalities (N: per query, the\n"
        "                               smallest sets and the whole query)\n"
        "  %s advise [-D DIR] [--dsn DSN] [--workload FILE] [--apply] [options]\n"
        "                             recommend indexes for a workload (HypoPG what-if\n"
        "                               with pg_pilot's estimates): pilotd advise --help\n"
        "  %s --help | --version\n"
        "\n"
        "Every command reads the same configuration: the JSON config file (-c FILE;\n"
        "without -c, the file $PILOTD_CONFIG names or else %s\n"
        "when it exists; PILOTD_CONFIG set empty: none), then its command line.\n"
        "Connection strings without host and port go to the server of -D (its\n"
        "postmaster.pid), whatever PGHOST/PGPORT say; train, collect and advise with\n"
        "-D also take the model and store DSNs and training settings of that data\n"
        "directory's running service.\n"
        "On a terminal, collect, train and advise show done/total, rate and time left.\n"
        "\n"
        "Options (each is also a key of the same name in the JSON config file, e.g.\n"
        "{\"pgdata\": \"/var/lib/postgresql/15/main\", \"slots\": 512}; \"state_dir\" works as\n"
        "well as \"state-dir\", // comments are allowed; the command line overrides the file):\n"
        "  -c, --config FILE          read settings from this JSON file (default:\n"
        "                               %s, if it exists)\n"
        "  -D, --pgdata DIR           the PostgreSQL data directory (required); names the\n"
        "                               shared-memory segment; must be owned by the\n"
        "                               user pilotd runs as (the server's OS user)\n"
        "      --state-dir DIR        where pilotd keeps its files (oracle.bin, memo.journal,\n"
        "                               spool/, pid file); created with mode 0700\n"
        "                               (default: DIR/pg_pilot)\n"
        "      --slots N              request slots, one per backend; must cover\n"
        "                               max_connections plus background workers, 1..65536\n"
        "                               (default: 512)\n"
        "      --workers N            worker threads answering requests, 1..256 (default: 2)\n"
        "      --heartbeat-ms N       heartbeat interval in milliseconds, 1..10000\n"
        "                               (default: 10)\n"
        "      --feedback-interval-ms N\n"
        "                             how often the backends' execution feedback is\n"
        "                               collected, in milliseconds, 1..10000 (default: 5)\n"
        "      --memo-max-entries N   relation sets the memo of observed cardinalities\n"
        "                               keeps at most; when full, new ones are not stored,\n"
        "                               1..100000000 (default: 1000000)\n"
        "      --memo-journal-max-mb N\n"
        "                             the memo's write-ahead journal (STATE_DIR/\n"
        "                               memo.journal) is compacted to one record per\n"
        "                               relation set when it grows past N MB, 1..1048576\n"
        "                               (default: 64)\n"
        "\n"
        "Feedback store (execution feedback is kept in PostgreSQL tables of the\n"
        "extension: pg_pilot.feedback, pg_pilot.query_log, pg_pilot.feedback_dead_letter):\n"
        "      --store-dsn DSN        libpq connection string of the database where\n"
        "                               CREATE EXTENSION pg_pilot ran, for a role that is a\n"
        "                               member of pilot_store; host and port default to\n"
        "                               the server of -D (its postmaster.pid); \"none\":\n"
        "                               no store, feedback only feeds the memo\n"
        "                               (default: \"dbname=postgres user=pilotd\")\n"
        "      --spool-max-mb N       feedback waiting for the store is kept in\n"
        "                               STATE_DIR/spool, at most N MB; beyond it feedback\n"
        "                               is not accepted (backends drop and count it),\n"
        "                               1..1048576 (default: 1024)\n"
        "      --store-retention-days N\n"
        "                             delete stored feedback older than N days, 0 = keep\n"
        "                               (default: 30)\n"
        "      --store-max-rows N     keep at most N rows in pg_pilot.feedback and in\n"
        "                               pg_pilot.query_log (oldest deleted), 0 = no limit\n"
        "                               (default: 10000000)\n"
        "      --store-retention-interval-s N\n"
        "                             how often retention runs, 1..86400 (default: 60)\n"
        "      --store-backoff-max-ms N\n"
        "                             longest wait between attempts while the store\n"
        "                               fails (100 ms doubling up to N), 100..3600000\n"
        "                               (default: 30000)\n"
        "\n"
        "Learned model (STATE_DIR/models: versions N.model, registry.json; the text of\n"
        "every relation set asked about is kept in STATE_DIR/keys.catalog to train on):\n"
        "      --model-dsn DSN        libpq connection string of the database the model\n"
        "                               learns (its tables are sampled; the role needs\n"
        "                               SELECT on them and pg_monitor); empty: pilotd\n"
        "                               trains nothing by itself (default: empty)\n"
        "      --model-databases LIST the service trains a version for each of these\n"
        "                               databases (model-dsn's connection with its\n"
        "                               database name replaced): names separated by\n"
        "                               commas, or \"all\": every database that has the\n"
        "                               extension; each serves its own database only;\n"
        "                               empty: model-dsn's database (default: empty)\n"
        "      --train-every N        train a new version in the background after N new\n"
        "                               feedback records, 0 = only `pilotd train`\n"
        "                               (default: 50000)\n"
        "      --train-seconds N      time budget of one training, 1..86400 (default: 300)\n"
        "      --train-epochs N       passes over the training records, 1..10000\n"
        "                               (default: 300; the best epoch on held-out\n"
        "                               templates is kept)\n"
        "      --train-seed N         seed of the split into training and held-out\n"
        "                               templates, the initial weights and the batch\n"
        "                               order, 0..4294967295; recorded in the version\n"
        "                               (default: 42)\n"
        "      --model-sample-rows N  rows sampled per table for the sample bitmaps,\n"
        "                               0..10000 (default: 256)\n"
        "      --model-poll-ms N      how often the models directory is checked for new\n"
        "                               versions, 100..600000 (default: 2000)\n"
        "\n"
        "Index advisor (jobs from pg_pilot.run_index_advisor() & co, see the README):\n"
        "      --advisor-dsn DSN      libpq connection string of the advisor's login (a\n"
        "                               member of pilot_advisor; to apply indexes it must\n"
        "                               own the tables); each job connects to the asking\n"
        "                               database; empty: no advisor (default: empty)\n"
        "      --advisor-every-s N    also run on advisor-dsn's database every N seconds\n"
        "                               (verify applied indexes, then advise), 0 = never\n"
        "                               (default: 0)\n"
        "      --advisor-budget-mb N  total size of recommended indexes (default: 1024)\n"
        "      --advisor-max-indexes N  recommendations per run, 1..1000 (default: 5)\n"
        "      --advisor-width N      columns per index, 1..3 (default: 2)\n"
        "      --advisor-min-benefit-pct N  least workload time an index must save, in\n"
        "                               percent, 0..100 (default: 1)\n"
        "      --advisor-write-cost-us N  cost of maintaining one index per changed table\n"
        "                               row, microseconds (default: 20)\n"
        "\n"
        "Plan guard (per query template, pg_pilot's estimates against PostgreSQL's, timed;\n"
        "the backends' switch is pg_pilot.guard, see the README):\n"
        "      --guard-min-runs N     runs of each side before a template is decided,\n"
        "                               1..64 (default: 3)\n"
        "      --guard-slower-pct N   a template goes back to PostgreSQL's estimates when\n"
        "                               the median time with pg_pilot's is more than N %%\n"
        "                               above the median with PostgreSQL's ... (default: 0)\n"
        "      --guard-min-difference-us N  ... and more than N microseconds above it\n"
        "                               (default: 200)\n"
        "      --guard-stats-change-pct N  a template explores again when the row counts\n"
        "                               of its tables (their product, pg_class.reltuples)\n"
        "                               changed by more than N %% since its runs; 0: never\n"
        "                               (default: 100, twice or half)\n"
        "\n"
        "Metrics:\n"
        "      --metrics-address HOST:PORT\n"
        "                             serve Prometheus metrics at http://HOST:PORT/metrics\n"
        "                               (e.g. 127.0.0.1:9187; keep it local or behind a\n"
        "                               proxy: there is no authentication); empty: none\n"
        "                               (default: empty)\n"
        "\n"
        "      --foreground           stay in the foreground (default)\n"
        "      --daemon               detach: double fork, setsid, stdio to /dev/null or\n"
        "                               the log file; returns once the service is ready\n"
        "      --pid-file FILE        pid file; pilotd refuses to start if it names a live\n"
        "                               pilotd (default: STATE_DIR/pilotd.pid)\n"
        "      --log-file FILE        log to this file; SIGHUP reopens it (default: stderr)\n"
        "      --log-level LEVEL      debug, info, warning or error (default: info)\n"
        "  -h, --help                 show this help and exit\n"
        "  -V, --version              show the version and exit\n"
        "\n"
        "Options of \"pilotd status\":\n"
        "  -D, --pgdata DIR           the data directory (or -c FILE with \"pgdata\")\n"
        "      --stale-ms N           a heartbeat older than this means pilotd is down\n"
        "                               (default: 1000)\n"
        "\n"
        "Testing (do not use in production):\n"
        "      --debug-answer-delay-ms N   sleep N ms before answering each estimate\n"
        "                                    request, to simulate a slow pilotd (default: 0)\n"
        "      --debug-protocol-version N  write N instead of protocol version %u into the\n"
        "                                    segment header, to simulate a pilotd of another\n"
        "                                    protocol version (default: unset)\n"
        "\n"
        "Signals: SIGTERM/SIGINT shut down cleanly (segment and pid file removed);\n"
        "SIGHUP reopens the log file.\n"
        "Exit status: 0 ok, 1 runtime error, 2 usage or configuration error,\n"
        "3 (status) pilotd not running or not ready.\n",
        kPilotdVersion, argv0, argv0, argv0, argv0, argv0, argv0, argv0, kDefaultConfigFile, kDefaultConfigFile,
        pilot::proto::kProtocolVersion);
}

} // namespace pilotd
