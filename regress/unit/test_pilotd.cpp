/*
 * test_pilotd.cpp — runs the real daemon/build/pilotd as a child process and
 * talks to it with pilot::PilotdClient (and, for the misbehaving-client
 * cases, by writing the shared-memory slots by hand).
 *
 * pilotd refuses to run as root, so when this binary starts as root it first
 * checks that refusal, then drops to the "postgres" OS user for good (main()
 * below): the tests and the pilotd they start then share one uid.
 *
 * The pilotd binary: $PILOTD, else PILOTD_DEFAULT_PATH (set by the Makefile),
 * else ../../../daemon/build/pilotd relative to this executable.
 */
#include "futex.h"
#include "pilot_protocol.h"
#include "segment_guard.h"
#include "pilotd_client.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <ftw.h>
#include <functional>
#include <grp.h>
#include <memory>
#include <pwd.h>
#include <signal.h>
#include <sstream>
#include <string>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace bip = boost::interprocess;
using namespace pilot;
using namespace pilot::proto;

namespace {

constexpr int64_t kCallTimeoutUs = 5 * 1000 * 1000; /* generous: answers take microseconds */
constexpr uint64_t kStaleUs = 2 * 1000 * 1000;       /* a live pilotd beats every 10 ms */
constexpr int kReadyWaitMs = 10000;

std::string g_pilotd;       /* absolute path of the binary under test */
bool g_started_as_root = false;
int g_root_run_status = -1; /* exit status of pilotd started as root */
std::string g_root_run_output;

/* ---------------------------------------------------------------- helpers */

uint64_t now_ms() { return monotonic_us() / 1000; }

bool wait_until(const std::function<bool()> &pred, int timeout_ms, int step_ms = 5) {
    uint64_t end = now_ms() + static_cast<uint64_t>(timeout_ms);
    for (;;) {
        if (pred())
            return true;
        if (now_ms() >= end)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(step_ms));
    }
}

std::string read_text(const std::string &path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_text(const std::string &path, const std::string &text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
}

bool exists(const std::string &path) { return access(path.c_str(), F_OK) == 0; }

std::vector<std::string> list_dir(const std::string &dir) {
    std::vector<std::string> names;
    if (DIR *d = opendir(dir.c_str())) {
        while (struct dirent *e = readdir(d))
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                names.push_back(e->d_name);
        closedir(d);
    }
    return names;
}

std::string find_pilotd() {
    const char *env = getenv("PILOTD");
    std::vector<std::string> candidates;
    if (env && *env)
        candidates.push_back(env);
#ifdef PILOTD_DEFAULT_PATH
    candidates.push_back(PILOTD_DEFAULT_PATH);
#endif
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        std::string dir(self);
        dir = dir.substr(0, dir.rfind('/'));
        candidates.push_back(dir + "/../../../daemon/build/pilotd");
    }
    for (const std::string &c : candidates) {
        char real[PATH_MAX];
        if (realpath(c.c_str(), real) != nullptr && access(real, X_OK) == 0)
            return real;
        if (env && c == env) /* an explicit PILOTD that does not work is an error */
            return std::string();
    }
    return std::string();
}

int rm_entry(const char *path, const struct stat *, int, struct FTW *) { return remove(path); }

class TempDir {
  public:
    TempDir() {
        const char *base = getenv("TMPDIR");
        std::string tmpl = std::string(base && *base ? base : "/tmp") + "/pilotd_test.XXXXXX";
        std::vector<char> buf(tmpl.begin(), tmpl.end());
        buf.push_back('\0');
        if (mkdtemp(buf.data()) == nullptr && tmpl.rfind("/tmp/", 0) != 0) {
            tmpl = "/tmp/pilotd_test.XXXXXX"; /* TMPDIR not writable for us */
            buf.assign(tmpl.begin(), tmpl.end());
            buf.push_back('\0');
            mkdtemp(buf.data());
        }
        path_ = buf.data();
    }
    ~TempDir() {
        if (!path_.empty() && getenv("PILOTD_TEST_KEEP") == nullptr)
            nftw(path_.c_str(), rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    const std::string &path() const { return path_; }

  private:
    std::string path_;
};

/* Runs a program to completion (bounded), output (stdout+stderr) captured. */
struct RunResult {
    int status = -1; /* exit code, or 128+signal */
    std::string output;
};

/* In a forked child: stdout and stderr to out_file (truncated or appended), exec args. */
[[noreturn]] void exec_with_output(const std::vector<std::string> &args, const std::string &out_file,
                                   int mode) {
    int fd = open(out_file.c_str(), O_WRONLY | O_CREAT | mode, 0600);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    std::vector<char *> argv;
    for (const auto &a : args)
        argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
}

RunResult run_sync(const std::vector<std::string> &args, const std::string &out_file, int timeout_ms = 20000) {
    RunResult r;
    pid_t pid = fork();
    if (pid == 0) {
        exec_with_output(args, out_file, O_TRUNC);
    }
    if (pid < 0)
        return r;
    int st = 0;
    bool done = wait_until([&] { return waitpid(pid, &st, WNOHANG) == pid; }, timeout_ms);
    if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.output = read_text(out_file);
    return r;
}

/* A pilotd child process. */
class Pilotd {
  public:
    Pilotd(std::string datadir, std::string statedir, std::string log)
        : datadir_(std::move(datadir)), statedir_(std::move(statedir)), log_(std::move(log)) {}
    ~Pilotd() { kill9(); }

    void start(const std::vector<std::string> &extra = {}) {
        ASSERT_LT(pid_, 0) << "already running";
        std::vector<std::string> args = {g_pilotd, "-D", datadir_, "--state-dir", statedir_};
        /* no PostgreSQL here: the feedback store is tested against a real
         * server by regress/fault/store_*.sh */
        if (std::find(extra.begin(), extra.end(), "--store-dsn") == extra.end()) {
            args.push_back("--store-dsn");
            args.push_back("none");
        }
        args.insert(args.end(), extra.begin(), extra.end());
        pid_t pid = fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
            exec_with_output(args, log_, O_APPEND);
        }
        pid_ = pid;
        exit_status_ = -1;
    }

    /* True while the child has not exited (reaps it when it has). */
    bool running() {
        if (pid_ < 0)
            return false;
        int st;
        if (waitpid(pid_, &st, WNOHANG) == pid_) {
            exit_status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            pid_ = -1;
            return false;
        }
        return true;
    }

    void kill9() {
        if (pid_ < 0)
            return;
        kill(pid_, SIGKILL);
        int st;
        waitpid(pid_, &st, 0); /* reaped: kill(pid, 0) now says ESRCH */
        exit_status_ = 128 + SIGKILL;
        pid_ = -1;
    }

    void signal(int sig) {
        if (pid_ > 0)
            kill(pid_, sig);
    }

    /* Waits (bounded) for the child to exit; its exit status, -1 if it did not. */
    int wait_exit(int timeout_ms) {
        if (!wait_until([&] { return !running(); }, timeout_ms))
            return -1;
        return exit_status_;
    }

    pid_t pid() const { return pid_; }
    std::string log() const { return read_text(log_); }

  private:
    std::string datadir_, statedir_, log_;
    pid_t pid_ = -1;
    int exit_status_ = -1;
};

/* The segment mapped directly, to play a misbehaving backend. */
struct RawSegment {
    explicit RawSegment(const std::string &name)
        : shm(bip::open_only, name.c_str(), bip::read_write), region(shm, bip::read_write),
          header(static_cast<SegmentHeader *>(region.get_address())) {}
    Slot *slot(uint32_t i) { return slot_at(header, i); }
    /* What a backend does after writing a request. */
    void ring() {
        header->doorbell.fetch_add(1, std::memory_order_seq_cst);
        futex_wake(&header->doorbell, INT_MAX);
    }
    bip::shared_memory_object shm;
    bip::mapped_region region;
    SegmentHeader *header;
};

/* Request/Response are ~12 KB: keep them off the stack. */
struct Msg {
    std::unique_ptr<Request> req{new Request()};
    std::unique_ptr<Response> resp{new Response()};
};

Outcome ping(PilotdClient &c, int64_t timeout_us = kCallTimeoutUs) {
    Msg m;
    m.req->type = MSG_PING;
    return c.call(*m.req, *m.resp, timeout_us);
}

Outcome estimate(PilotdClient &c, uint32_t estimator, const std::vector<uint64_t> &keys,
                 std::vector<EstimateAnswer> *answers, int64_t timeout_us = kCallTimeoutUs) {
    Msg m;
    m.req->type = MSG_ESTIMATE;
    m.req->estimator = estimator;
    m.req->count = static_cast<uint32_t>(keys.size());
    for (size_t i = 0; i < keys.size(); i++) {
        m.req->items[i].key = keys[i];
        m.req->items[i].template_key = keys[i] ^ 0x5555;
        m.req->items[i].native_rows = 100;
        m.req->items[i].nrels = 2;
    }
    Outcome o = c.call(*m.req, *m.resp, timeout_us);
    if (answers) {
        answers->clear();
        if (o == Outcome::OK)
            answers->assign(m.resp->answers, m.resp->answers + m.resp->count);
    }
    return o;
}

struct OracleReply {
    Outcome outcome;
    uint32_t status;
    uint64_t entries;
    uint64_t seq;
};

OracleReply oracle_msg(PilotdClient &c, uint32_t type, uint64_t session, uint32_t flags = 0,
                       const std::vector<OracleEntry> &entries = {}) {
    Msg m;
    m.req->type = type;
    m.req->session = session;
    m.req->flags = flags;
    m.req->count = static_cast<uint32_t>(entries.size());
    for (size_t i = 0; i < entries.size(); i++)
        m.req->entries[i] = entries[i];
    Outcome o = c.call(*m.req, *m.resp, kCallTimeoutUs);
    return OracleReply{o, m.resp->status, m.resp->oracle_entries, m.req->seq};
}

/* BEGIN; returns the session id (the BEGIN's seq). */
uint64_t oracle_begin(PilotdClient &c, bool replace) {
    OracleReply r = oracle_msg(c, MSG_ORACLE_BEGIN, 0, replace ? ORACLE_REPLACE : 0);
    EXPECT_EQ(r.outcome, Outcome::OK);
    return r.seq;
}

/* ADD in batches of at most kMaxItems. */
void oracle_add_all(PilotdClient &c, uint64_t session, const std::vector<OracleEntry> &all) {
    for (size_t off = 0; off < all.size(); off += kMaxItems) {
        size_t n = std::min<size_t>(kMaxItems, all.size() - off);
        std::vector<OracleEntry> batch(all.begin() + static_cast<long>(off),
                                       all.begin() + static_cast<long>(off + n));
        OracleReply r = oracle_msg(c, MSG_ORACLE_ADD, session, 0, batch);
        ASSERT_EQ(r.outcome, Outcome::OK) << "ADD at offset " << off;
    }
}

/* A full load session; returns the table size after the commit. */
uint64_t oracle_load(PilotdClient &c, bool replace, const std::vector<OracleEntry> &all) {
    uint64_t session = oracle_begin(c, replace);
    oracle_add_all(c, session, all);
    OracleReply r = oracle_msg(c, MSG_ORACLE_COMMIT, session);
    EXPECT_EQ(r.outcome, Outcome::OK);
    EXPECT_EQ(r.status, static_cast<uint32_t>(ST_OK));
    return r.entries;
}

std::vector<OracleEntry> make_entries(uint64_t first_key, size_t n, double rows_base) {
    std::vector<OracleEntry> v(n);
    for (size_t i = 0; i < n; i++) {
        v[i].key = first_key + i;
        v[i].rows = rows_base + static_cast<double>(i) * 1.5;
    }
    return v;
}

FeedbackRecord relset(uint64_t key, double rows, uint32_t nrels = 2) {
    FeedbackRecord r;
    memset(static_cast<void *>(&r), 0, sizeof r);
    r.key = key;
    r.template_key = key ^ 0x5555;
    r.native_rows = 100;
    r.pilot_rows = -1;
    r.actual_rows = rows;
    r.kind = FB_RELSET;
    r.nrels = nrels;
    r.table_set = table_set_finish(nrels); /* one table set per size: one journal record for it */
    snprintf(r.relations, sizeof r.relations, "t%llx, u", static_cast<unsigned long long>(key));
    return r;
}

uint32_t push(PilotdClient &c, const std::vector<FeedbackRecord> &recs) {
    return c.push_feedback(recs.data(), static_cast<uint32_t>(recs.size()));
}

/* The answer of `estimator` for one key (source SRC_NONE on a failed call). */
EstimateAnswer answer_for(PilotdClient &c, uint32_t estimator, uint64_t key) {
    std::vector<EstimateAnswer> ans;
    EstimateAnswer none{0, SRC_NONE, 0};
    if (estimate(c, estimator, {key}, &ans) != Outcome::OK || ans.size() != 1)
        return none;
    return ans[0];
}

/* Waits (bounded) until `estimator` answers `key` with exactly (src, rows). */
bool wait_answer(PilotdClient &c, uint32_t estimator, uint64_t key, uint32_t src, double rows) {
    return wait_until(
        [&] {
            EstimateAnswer a = answer_for(c, estimator, key);
            return a.source == src && a.rows == rows;
        },
        10000, 2);
}

/* --------------------------------------------------------------- fixture */

class PilotdTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_FALSE(g_pilotd.empty()) << "pilotd binary not found: build it (make -C daemon) or set PILOTD";
        ASSERT_FALSE(tmp_.path().empty()) << "cannot create a temp dir";
        datadir_ = tmp_.path() + "/pgdata";
        statedir_ = tmp_.path() + "/state";
        ASSERT_EQ(mkdir(datadir_.c_str(), 0700), 0) << strerror(errno);
        segment_ = segment_name_for_datadir(datadir_);
        ASSERT_FALSE(segment_.empty());
        pilotd_.reset(new Pilotd(datadir_, statedir_, tmp_.path() + "/pilotd.log"));
    }

    void TearDown() override {
        if (HasFailure())
            fprintf(stderr, "---- pilotd log ----\n%s---- end of log ----\n", pilotd_->log().c_str());
        pilotd_.reset(); /* kill -9 if still running */
        bip::shared_memory_object::remove(segment_.c_str());
        unlink(("/dev/shm/" + segment_ + ".lock").c_str());
    }

    std::unique_ptr<PilotdClient> client(uint32_t slot, uint64_t stale_us = kStaleUs, uint64_t reattach_us = 0) {
        return std::unique_ptr<PilotdClient>(new PilotdClient(segment_, slot, stale_us, reattach_us));
    }

    /* Starts pilotd and waits (bounded) until a client can talk to it.  The
     * pid must match: right after a kill -9 the dead pilotd's segment is
     * still there with a fresh heartbeat, and a client happily attaches to it. */
    void start_and_wait(const std::vector<std::string> &extra = {}) {
        pilotd_->start(extra);
        auto c = client(0);
        bool ok = wait_until(
            [&] {
                if (!pilotd_->running())
                    return true; /* died: report below */
                PilotdInfo d = c->info();
                return d.attached && d.pilotd_pid == static_cast<uint32_t>(pilotd_->pid());
            },
            kReadyWaitMs);
        ASSERT_TRUE(ok) << "pilotd not ready within " << kReadyWaitMs << " ms";
        ASSERT_TRUE(pilotd_->running()) << "pilotd exited during startup";
    }

    std::string shm_file() const { return "/dev/shm/" + segment_; }
    std::string oracle_file() const { return statedir_ + "/oracle.bin"; }
    std::string pid_file() const { return statedir_ + "/pilotd.pid"; }

    RunResult run(const std::vector<std::string> &args) {
        std::vector<std::string> full = {g_pilotd};
        full.insert(full.end(), args.begin(), args.end());
        return run_sync(full, tmp_.path() + "/run.out");
    }

    TempDir tmp_;
    std::string datadir_, statedir_, segment_;
    std::unique_ptr<Pilotd> pilotd_;
};

/* ------------------------------------------------------------ 1. basics */

TEST_F(PilotdTest, PingAndNativeEstimate) {
    start_and_wait();
    auto c = client(3);
    EXPECT_EQ(ping(*c), Outcome::OK);

    std::vector<uint64_t> keys;
    for (uint64_t k = 1; k <= 40; k++)
        keys.push_back(k * 7919);
    std::vector<EstimateAnswer> ans;
    ASSERT_EQ(estimate(*c, EST_NATIVE, keys, &ans), Outcome::OK);
    ASSERT_EQ(ans.size(), keys.size());
    for (const auto &a : ans)
        EXPECT_EQ(a.source, static_cast<uint32_t>(SRC_NONE));

    /* a full batch */
    keys.clear();
    for (uint64_t k = 1; k <= kMaxItems; k++)
        keys.push_back(k);
    ASSERT_EQ(estimate(*c, EST_AUTO, keys, &ans), Outcome::OK);
    EXPECT_EQ(ans.size(), static_cast<size_t>(kMaxItems));

    PilotdInfo d = c->info();
    ASSERT_TRUE(d.attached);
    EXPECT_EQ(d.version, kProtocolVersion);
    EXPECT_EQ(d.nslots, 512u);
    EXPECT_EQ(d.pilotd_pid, static_cast<uint32_t>(pilotd_->pid()));
    EXPECT_NE(d.epoch, 0u);
    EXPECT_EQ(d.requests, 3u);
    EXPECT_EQ(d.items, 40u + kMaxItems);
    EXPECT_EQ(d.answered, 0u);
    EXPECT_EQ(d.bad_requests, 0u);
}

TEST_F(PilotdTest, SegmentIsOwnerOnlyAndStateDirPrivate) {
    start_and_wait({"--slots", "64"});
    struct stat st;
    ASSERT_EQ(stat(shm_file().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_EQ(st.st_uid, geteuid());
    EXPECT_EQ(static_cast<uint64_t>(st.st_size), segment_size(64));
    ASSERT_EQ(stat(statedir_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    EXPECT_EQ(read_text(pid_file()), std::to_string(pilotd_->pid()) + "\n");
    /* a slot index beyond pilotd's slots */
    auto c = client(64);
    EXPECT_EQ(ping(*c), Outcome::NO_SLOT);
    EXPECT_EQ(ping(*client(63)), Outcome::OK);
}

/* The segment's name is predictable: a backend uses only a segment of its own
 * OS user that no one else may open.  (A segment of another uid cannot be made
 * without root: the expected owner is set to another uid instead.) */
TEST_F(PilotdTest, SegmentOfAnotherOwnerIsRefused) {
    start_and_wait();
    auto c = client(5);
    c->set_expected_owner(geteuid() + 1);
    EXPECT_EQ(ping(*c), Outcome::PILOTD_DOWN);
    EXPECT_NE(std::string(c->last_problem()).find("segment owned by uid " + std::to_string(geteuid()) +
                                                  ", not by the server's user (uid " +
                                                  std::to_string(geteuid() + 1) + "): refused"),
              std::string::npos)
        << c->last_problem();
    EXPECT_EQ(ping(*client(6)), Outcome::OK); /* its own user's segment */
}

TEST_F(PilotdTest, ConcurrentClientsOnManySlots) {
    start_and_wait({"--workers", "3"});
    constexpr int kThreads = 6, kCalls = 500;
    std::atomic<int> ok{0}, bad{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; t++) {
        threads.emplace_back([&, t] {
            PilotdClient c(segment_, static_cast<uint32_t>(100 + t * 50), kStaleUs, 0);
            std::vector<uint64_t> keys = {1, 2, 3, static_cast<uint64_t>(t + 10)};
            std::vector<EstimateAnswer> ans;
            for (int i = 0; i < kCalls; i++) {
                if (estimate(c, EST_AUTO, keys, &ans) == Outcome::OK && ans.size() == keys.size())
                    ok++;
                else
                    bad++;
            }
        });
    }
    for (auto &t : threads)
        t.join();
    EXPECT_EQ(bad.load(), 0);
    EXPECT_EQ(ok.load(), kThreads * kCalls);
    PilotdInfo d = client(0)->info();
    EXPECT_EQ(d.requests, static_cast<uint64_t>(kThreads * kCalls));
    EXPECT_EQ(d.items, static_cast<uint64_t>(kThreads * kCalls * 4));
}

/* ------------------------------------------------------------ 2. oracle */

TEST_F(PilotdTest, OracleLoadMergeReplaceClear) {
    start_and_wait();
    auto c = client(5);

    /* replace-load of 600 entries: three ADDs */
    std::vector<OracleEntry> first = make_entries(1000, 600, 10.0);
    EXPECT_EQ(oracle_load(*c, true, first), 600u);

    std::vector<uint64_t> keys = {1000, 1255, 1256, 1599, 999, 1600, 424242};
    std::vector<EstimateAnswer> ans;
    for (uint32_t est : {EST_ORACLE, EST_AUTO}) {
        ASSERT_EQ(estimate(*c, est, keys, &ans), Outcome::OK) << estimator_name(est);
        ASSERT_EQ(ans.size(), keys.size());
        for (size_t i = 0; i < 4; i++) {
            EXPECT_EQ(ans[i].source, static_cast<uint32_t>(SRC_ORACLE)) << "key " << keys[i];
            EXPECT_EQ(ans[i].rows, 10.0 + static_cast<double>(keys[i] - 1000) * 1.5) << "key " << keys[i];
        }
        for (size_t i = 4; i < keys.size(); i++)
            EXPECT_EQ(ans[i].source, static_cast<uint32_t>(SRC_NONE)) << "key " << keys[i];
    }
    /* the native estimator ignores the oracle */
    ASSERT_EQ(estimate(*c, EST_NATIVE, keys, &ans), Outcome::OK);
    for (const auto &a : ans)
        EXPECT_EQ(a.source, static_cast<uint32_t>(SRC_NONE));
    EXPECT_EQ(c->info().oracle_entries, 600u);

    /* merge: new keys added, an existing key overridden, the rest kept */
    std::vector<OracleEntry> more = make_entries(5000, 10, 7.0);
    more.push_back(OracleEntry{1000, 123456.0, 0});
    EXPECT_EQ(oracle_load(*c, false, more), 610u);
    ASSERT_EQ(estimate(*c, EST_ORACLE, {1000, 1001, 5009, 5010}, &ans), Outcome::OK);
    EXPECT_EQ(ans[0].rows, 123456.0);
    EXPECT_EQ(ans[1].source, static_cast<uint32_t>(SRC_ORACLE));
    EXPECT_EQ(ans[1].rows, 11.5);
    EXPECT_EQ(ans[2].source, static_cast<uint32_t>(SRC_ORACLE));
    EXPECT_EQ(ans[2].rows, 7.0 + 9 * 1.5);
    EXPECT_EQ(ans[3].source, static_cast<uint32_t>(SRC_NONE));

    /* replace: only the new entries remain (rows 0 is a valid answer) */
    std::vector<OracleEntry> small = {{77, 0.0, 0}, {78, 1e12, 0}};
    EXPECT_EQ(oracle_load(*c, true, small), 2u);
    ASSERT_EQ(estimate(*c, EST_AUTO, {77, 78, 1000, 5000}, &ans), Outcome::OK);
    EXPECT_EQ(ans[0].source, static_cast<uint32_t>(SRC_ORACLE));
    EXPECT_EQ(ans[0].rows, 0.0);
    EXPECT_EQ(ans[1].rows, 1e12);
    EXPECT_EQ(ans[2].source, static_cast<uint32_t>(SRC_NONE));
    EXPECT_EQ(ans[3].source, static_cast<uint32_t>(SRC_NONE));

    /* an empty replace-load empties the table too */
    EXPECT_EQ(oracle_load(*c, true, {}), 0u);
    EXPECT_EQ(oracle_load(*c, false, small), 2u);

    /* CLEAR */
    OracleReply r = oracle_msg(*c, MSG_ORACLE_CLEAR, 0);
    EXPECT_EQ(r.outcome, Outcome::OK);
    EXPECT_EQ(r.entries, 0u);
    ASSERT_EQ(estimate(*c, EST_ORACLE, {77, 78}, &ans), Outcome::OK);
    EXPECT_EQ(ans[0].source, static_cast<uint32_t>(SRC_NONE));
    EXPECT_EQ(ans[1].source, static_cast<uint32_t>(SRC_NONE));
    EXPECT_EQ(c->info().oracle_entries, 0u);

    PilotdInfo d = c->info();
    EXPECT_GT(d.answered, 0u);
    EXPECT_NE(pilotd_->log().find("oracle load committed: 600 entries (replace)"), std::string::npos);
}

TEST_F(PilotdTest, OracleSessionsAreCheckedAndPerSlot) {
    start_and_wait();
    auto a = client(10), b = client(11);

    /* ADD and COMMIT without BEGIN */
    OracleReply r = oracle_msg(*a, MSG_ORACLE_ADD, 12345, 0, make_entries(1, 3, 1.0));
    EXPECT_EQ(r.outcome, Outcome::REFUSED);
    EXPECT_EQ(r.status, static_cast<uint32_t>(ST_NO_SESSION));
    r = oracle_msg(*a, MSG_ORACLE_COMMIT, 12345);
    EXPECT_EQ(r.outcome, Outcome::REFUSED);
    EXPECT_EQ(r.status, static_cast<uint32_t>(ST_NO_SESSION));

    uint64_t sa = oracle_begin(*a, true);
    /* a wrong session id, and the right id from another slot */
    r = oracle_msg(*a, MSG_ORACLE_ADD, sa + 1, 0, make_entries(1, 3, 1.0));
    EXPECT_EQ(r.status, static_cast<uint32_t>(ST_NO_SESSION));
    r = oracle_msg(*b, MSG_ORACLE_ADD, sa, 0, make_entries(1, 3, 1.0));
    EXPECT_EQ(r.outcome, Outcome::REFUSED);
    EXPECT_EQ(r.status, static_cast<uint32_t>(ST_NO_SESSION));

    /* two sessions on two slots at once */
    uint64_t sb = oracle_begin(*b, false);
    oracle_add_all(*a, sa, make_entries(100, 300, 1.0));
    oracle_add_all(*b, sb, make_entries(900, 5, 2.0));
    r = oracle_msg(*b, MSG_ORACLE_COMMIT, sb);
    EXPECT_EQ(r.outcome, Outcome::OK);
    EXPECT_EQ(r.entries, 5u);
    r = oracle_msg(*a, MSG_ORACLE_COMMIT, sa); /* replace: drops b's entries */
    EXPECT_EQ(r.outcome, Outcome::OK);
    EXPECT_EQ(r.entries, 300u);

    /* the session ends with its commit */
    r = oracle_msg(*a, MSG_ORACLE_COMMIT, sa);
    EXPECT_EQ(r.status, static_cast<uint32_t>(ST_NO_SESSION));

    /* a new BEGIN discards the slot's earlier staging */
    uint64_t s1 = oracle_begin(*a, false);
    oracle_add_all(*a, s1, make_entries(7000, 4, 1.0));
    uint64_t s2 = oracle_begin(*a, false);
    r = oracle_msg(*a, MSG_ORACLE_ADD, s1, 0, make_entries(7100, 1, 1.0));
    EXPECT_EQ(r.status, static_cast<uint32_t>(ST_NO_SESSION));
    oracle_add_all(*a, s2, make_entries(8000, 2, 1.0));
    r = oracle_msg(*a, MSG_ORACLE_COMMIT, s2);
    EXPECT_EQ(r.outcome, Outcome::OK);
    EXPECT_EQ(r.entries, 302u);
    std::vector<EstimateAnswer> ans;
    ASSERT_EQ(estimate(*a, EST_ORACLE, {7000, 8000, 100, 900}, &ans), Outcome::OK);
    EXPECT_EQ(ans[0].source, static_cast<uint32_t>(SRC_NONE));
    EXPECT_EQ(ans[1].source, static_cast<uint32_t>(SRC_ORACLE));
    EXPECT_EQ(ans[2].source, static_cast<uint32_t>(SRC_ORACLE));
    EXPECT_EQ(ans[3].source, static_cast<uint32_t>(SRC_NONE));
}

/* -------------------------------------------------------- 3. durability */

TEST_F(PilotdTest, OracleSurvivesKill9) {
    start_and_wait();
    std::vector<OracleEntry> entries = make_entries(1u << 20, 1000, 3.25);
    {
        auto c = client(1);
        EXPECT_EQ(oracle_load(*c, true, entries), 1000u);
    }
    ASSERT_TRUE(exists(oracle_file()));
    pilotd_->kill9(); /* no chance to flush anything */
    EXPECT_TRUE(exists(shm_file())) << "a killed pilotd leaves its segment behind";

    start_and_wait(); /* removes the stale segment, loads oracle.bin */
    auto c = client(1);
    std::vector<uint64_t> keys;
    for (size_t i = 0; i < entries.size(); i += 4)
        keys.push_back(entries[i].key);
    keys.resize(std::min<size_t>(keys.size(), kMaxItems));
    keys.push_back(17); /* unknown */
    std::vector<EstimateAnswer> ans;
    ASSERT_EQ(estimate(*c, EST_AUTO, keys, &ans), Outcome::OK);
    ASSERT_EQ(ans.size(), keys.size());
    for (size_t i = 0; i + 1 < keys.size(); i++) {
        EXPECT_EQ(ans[i].source, static_cast<uint32_t>(SRC_ORACLE));
        EXPECT_EQ(ans[i].rows, entries[i * 4].rows);
    }
    EXPECT_EQ(ans.back().source, static_cast<uint32_t>(SRC_NONE));
    EXPECT_EQ(c->info().oracle_entries, 1000u);
    EXPECT_NE(pilotd_->log().find("loaded 1000 oracle entries"), std::string::npos);
}

class CorruptOracleTest : public PilotdTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(CorruptOracleTest, StartsEmptyAndKeepsTheFile) {
    start_and_wait();
    {
        auto c = client(1);
        EXPECT_EQ(oracle_load(*c, true, make_entries(500, 50, 1.0)), 50u);
    }
    pilotd_->signal(SIGTERM);
    ASSERT_EQ(pilotd_->wait_exit(10000), 0);

    std::string bytes = read_text(oracle_file());
    ASSERT_GT(bytes.size(), 100u);
    const std::string how = GetParam();
    if (how == "flipped")
        bytes[bytes.size() / 2] ^= 0x40;
    else if (how == "truncated")
        bytes.resize(bytes.size() - 21);
    else
        bytes = "garbage";
    write_text(oracle_file(), bytes);

    start_and_wait();
    auto c = client(1);
    std::vector<EstimateAnswer> ans;
    ASSERT_EQ(estimate(*c, EST_ORACLE, {500, 510, 549}, &ans), Outcome::OK);
    for (const auto &a : ans)
        EXPECT_EQ(a.source, static_cast<uint32_t>(SRC_NONE));
    EXPECT_EQ(c->info().oracle_entries, 0u);
    EXPECT_FALSE(exists(oracle_file()));
    int corrupt = 0;
    for (const auto &n : list_dir(statedir_))
        if (n.rfind("oracle.bin.corrupt.", 0) == 0) {
            corrupt++;
            EXPECT_EQ(read_text(statedir_ + "/" + n), bytes) << "the bad file is kept as it was";
        }
    EXPECT_EQ(corrupt, 1);
    EXPECT_NE(pilotd_->log().find("is corrupt"), std::string::npos);

    /* and loading works again */
    EXPECT_EQ(oracle_load(*c, true, make_entries(600, 3, 2.0)), 3u);
    EXPECT_TRUE(exists(oracle_file()));
}

INSTANTIATE_TEST_SUITE_P(Corruptions, CorruptOracleTest, ::testing::Values("flipped", "truncated", "garbage"));

/* ------------------------------------------- 3b. feedback and the memo */

TEST_F(PilotdTest, MemoAnswersObservedRowsLatestWinsOracleFirst) {
    start_and_wait();
    RawSegment raw(segment_);
    PilotdCounters &ctr = raw.header->counters;
    auto c = client(10), c2 = client(200);

    EXPECT_EQ(push(*c, {relset(0x1001, 10), relset(0x1002, 0), relset(0x1003, 12345.5, 3)}), 3u);
    FeedbackRecord q = relset(0x1004, 25.0);
    q.kind = FB_QUERY; /* a whole query: counted, not a relation set */
    q.native_rows = 1.5;
    q.nrels = 0;
    EXPECT_EQ(push(*c2, {q}), 1u);

    ASSERT_TRUE(wait_answer(*c, EST_MEMO, 0x1003, SRC_MEMO, 12345.5)) << "feedback never reached the memo";
    ASSERT_TRUE(wait_until([&] { return ctr.feedback_received.load() == 4; }, 10000));
    for (uint32_t est : {EST_MEMO, EST_AUTO}) {
        std::vector<EstimateAnswer> ans;
        ASSERT_EQ(estimate(*c, est, {0x1001, 0x1002, 0x1003, 0x1004, 0x9999}, &ans), Outcome::OK);
        ASSERT_EQ(ans.size(), 5u);
        const double want[] = {10, 0, 12345.5};
        for (int i = 0; i < 3; i++) {
            EXPECT_EQ(ans[i].source, static_cast<uint32_t>(SRC_MEMO)) << estimator_name(est) << " " << i;
            EXPECT_EQ(ans[i].rows, want[i]) << estimator_name(est) << " " << i;
        }
        EXPECT_EQ(ans[3].source, static_cast<uint32_t>(SRC_NONE)) << "a query record is not a relation set";
        EXPECT_EQ(ans[4].source, static_cast<uint32_t>(SRC_NONE));
    }
    /* the oracle knows only what was loaded */
    std::vector<EstimateAnswer> ans;
    ASSERT_EQ(estimate(*c, EST_ORACLE, {0x1001, 0x1002, 0x1003}, &ans), Outcome::OK);
    for (const auto &a : ans)
        EXPECT_EQ(a.source, static_cast<uint32_t>(SRC_NONE));
    EXPECT_EQ(ctr.memo_entries.load(), 3u);
    EXPECT_EQ(ctr.feedback_invalid.load(), 0u);

    /* the latest observation wins (not the first, not the largest) */
    EXPECT_EQ(push(*c, {relset(0x1001, 50), relset(0x1001, 5)}), 2u);
    EXPECT_TRUE(wait_answer(*c, EST_MEMO, 0x1001, SRC_MEMO, 5));
    EXPECT_EQ(push(*c2, {relset(0x1001, 7)}), 1u); /* another backend */
    EXPECT_TRUE(wait_answer(*c, EST_AUTO, 0x1001, SRC_MEMO, 7));
    EXPECT_EQ(ctr.memo_entries.load(), 3u);

    /* a key both loaded and observed: the oracle wins in EST_AUTO */
    EXPECT_EQ(oracle_load(*c, false, {{0x1002, 777, 0}}), 1u);
    EstimateAnswer a = answer_for(*c, EST_AUTO, 0x1002);
    EXPECT_EQ(a.source, static_cast<uint32_t>(SRC_ORACLE));
    EXPECT_EQ(a.rows, 777);
    a = answer_for(*c, EST_MEMO, 0x1002);
    EXPECT_EQ(a.source, static_cast<uint32_t>(SRC_MEMO));
    EXPECT_EQ(a.rows, 0);
    a = answer_for(*c, EST_AUTO, 0x1001); /* the memo still answers the rest */
    EXPECT_EQ(a.source, static_cast<uint32_t>(SRC_MEMO));
    EXPECT_EQ(a.rows, 7);

    PilotdInfo d = c->info();
    EXPECT_EQ(d.bad_requests, 0u);
}

TEST_F(PilotdTest, FeedbackGarbageRingsAndInvalidRecordsAreCounted) {
    start_and_wait();
    RawSegment raw(segment_);
    PilotdCounters &ctr = raw.header->counters;
    FeedbackRing &ring = raw.slot(11)->feedback;

    /* head - tail > kFeedbackRing: reset to head, counted once (not 10^6 records) */
    ring.head.store(1000000, std::memory_order_release);
    ASSERT_TRUE(wait_until([&] { return ring.tail.load() == 1000000u; }, 10000));
    EXPECT_TRUE(wait_until([&] { return ctr.feedback_invalid.load() == 1u; }, 10000));
    /* head < tail */
    ring.tail.store(2000000, std::memory_order_release);
    ASSERT_TRUE(wait_until([&] { return ring.tail.load() == 1000000u; }, 10000));
    EXPECT_TRUE(wait_until([&] { return ctr.feedback_invalid.load() == 2u; }, 10000));
    EXPECT_EQ(ctr.feedback_received.load(), 0u);
    EXPECT_EQ(ctr.memo_entries.load(), 0u);

    /* the slot's backend continues at head */
    auto c11 = client(11);
    EXPECT_EQ(push(*c11, {relset(0x2001, 42)}), 1u);
    EXPECT_TRUE(wait_answer(*c11, EST_MEMO, 0x2001, SRC_MEMO, 42));

    /* invalid records among valid ones: skipped and counted, the rest used */
    FeedbackRecord nan_rows = relset(0x2003, std::nan(""));
    FeedbackRecord kind99 = relset(0x2004, 1);
    kind99.kind = 99;
    FeedbackRecord key0 = relset(0, 3);
    FeedbackRecord neg = relset(0x2006, -4);
    auto c = client(12);
    EXPECT_EQ(push(*c, {relset(0x2002, 7), nan_rows, kind99, key0, neg, relset(0x2005, 8)}), 6u);
    ASSERT_TRUE(wait_until([&] { return ctr.feedback_received.load() == 3u; }, 10000))
        << ctr.feedback_received.load();
    EXPECT_TRUE(wait_until([&] { return ctr.feedback_invalid.load() == 6u; }, 10000))
        << ctr.feedback_invalid.load();
    EXPECT_EQ(ctr.memo_entries.load(), 3u);
    std::vector<EstimateAnswer> ans;
    ASSERT_EQ(estimate(*c, EST_MEMO, {0x2002, 0x2003, 0x2004, 0x2005, 0x2006}, &ans), Outcome::OK);
    ASSERT_EQ(ans.size(), 5u);
    EXPECT_EQ(ans[0].source, static_cast<uint32_t>(SRC_MEMO));
    EXPECT_EQ(ans[0].rows, 7);
    EXPECT_EQ(ans[1].source, static_cast<uint32_t>(SRC_NONE));
    EXPECT_EQ(ans[2].source, static_cast<uint32_t>(SRC_NONE));
    EXPECT_EQ(ans[3].source, static_cast<uint32_t>(SRC_MEMO));
    EXPECT_EQ(ans[3].rows, 8);
    EXPECT_EQ(ans[4].source, static_cast<uint32_t>(SRC_NONE));
    EXPECT_EQ(ring.tail.load(), ring.head.load());
    EXPECT_EQ(raw.slot(12)->feedback.tail.load(), raw.slot(12)->feedback.head.load());

    /* still serving */
    ASSERT_TRUE(pilotd_->running());
    EXPECT_EQ(ping(*c), Outcome::OK);
    EXPECT_EQ(c->info().bad_requests, 0u);
}

TEST_F(PilotdTest, FeedbackRingFullWhilePilotdStoppedDropsAndCounts) {
    start_and_wait();
    RawSegment raw(segment_);
    PilotdCounters &ctr = raw.header->counters;
    FeedbackRing &ring = raw.slot(13)->feedback;
    /* a staleness limit far away: the stopped pilotd's heartbeat freezes */
    auto c = client(13, 60ull * 1000 * 1000, 0);
    ASSERT_EQ(ping(*c), Outcome::OK);
    EXPECT_EQ(push(*c, {relset(0x2fff, 1)}), 1u);
    ASSERT_TRUE(wait_until([&] { return ctr.feedback_received.load() == 1u; }, 10000));

    pilotd_->signal(SIGSTOP);
    struct Cont {
        Pilotd *d;
        ~Cont() { d->signal(SIGCONT); }
    } cont{pilotd_.get()};
    std::this_thread::sleep_for(std::chrono::milliseconds(50)); /* really stopped */
    std::vector<FeedbackRecord> many;
    for (uint64_t i = 0; i < kFeedbackRing + 72; i++)
        many.push_back(relset(0x3000 + i, static_cast<double>(i)));
    EXPECT_EQ(push(*c, many), kFeedbackRing);
    EXPECT_EQ(ring.dropped.load(), 72u);
    EXPECT_EQ(push(*c, {relset(0x4000, 1)}), 0u);
    EXPECT_EQ(ring.dropped.load(), 73u);
    EXPECT_EQ(ring.head.load() - ring.tail.load(), static_cast<uint64_t>(kFeedbackRing));

    pilotd_->signal(SIGCONT);
    ASSERT_TRUE(wait_until([&] { return ctr.feedback_received.load() == 1u + kFeedbackRing; }, 10000))
        << ctr.feedback_received.load();
    EXPECT_TRUE(wait_until([&] { return ctr.memo_entries.load() == 1u + kFeedbackRing; }, 10000));
    EXPECT_EQ(ctr.feedback_invalid.load(), 0u);
    std::vector<uint64_t> keys = {0x3000, 0x3000 + kFeedbackRing - 1, 0x3000 + kFeedbackRing, 0x4000};
    std::vector<EstimateAnswer> ans;
    ASSERT_EQ(estimate(*c, EST_AUTO, keys, &ans), Outcome::OK);
    ASSERT_EQ(ans.size(), 4u);
    EXPECT_EQ(ans[0].source, static_cast<uint32_t>(SRC_MEMO));
    EXPECT_EQ(ans[0].rows, 0);
    EXPECT_EQ(ans[1].source, static_cast<uint32_t>(SRC_MEMO));
    EXPECT_EQ(ans[1].rows, kFeedbackRing - 1);
    EXPECT_EQ(ans[2].source, static_cast<uint32_t>(SRC_NONE)) << "a dropped record was used";
    EXPECT_EQ(ans[3].source, static_cast<uint32_t>(SRC_NONE)) << "a dropped record was used";
    /* room again */
    EXPECT_EQ(push(*c, {relset(0x4000, 9)}), 1u);
    EXPECT_TRUE(wait_answer(*c, EST_MEMO, 0x4000, SRC_MEMO, 9));
}

TEST_F(PilotdTest, MemoIsBounded) {
    start_and_wait({"--memo-max-entries", "3"});
    RawSegment raw(segment_);
    PilotdCounters &ctr = raw.header->counters;
    auto c = client(14);
    EXPECT_EQ(push(*c, {relset(1, 10), relset(2, 20), relset(3, 30), relset(4, 40), relset(5, 50)}), 5u);
    ASSERT_TRUE(wait_until([&] { return ctr.feedback_received.load() == 5u; }, 10000));
    EXPECT_EQ(ctr.memo_entries.load(), 3u);
    std::vector<EstimateAnswer> ans;
    ASSERT_EQ(estimate(*c, EST_MEMO, {1, 2, 3, 4, 5}, &ans), Outcome::OK);
    ASSERT_EQ(ans.size(), 5u);
    for (int i = 0; i < 5; i++)
        EXPECT_EQ(ans[i].source, static_cast<uint32_t>(i < 3 ? SRC_MEMO : SRC_NONE)) << i;
    /* known keys still update; more new keys are still refused, logged once */
    EXPECT_EQ(push(*c, {relset(6, 60), relset(2, 21)}), 2u);
    EXPECT_TRUE(wait_answer(*c, EST_MEMO, 2, SRC_MEMO, 21));
    EXPECT_EQ(answer_for(*c, EST_MEMO, 6).source, static_cast<uint32_t>(SRC_NONE));
    EXPECT_EQ(ctr.memo_entries.load(), 3u);
    std::string log = pilotd_->log();
    size_t at = log.find("memo is full");
    ASSERT_NE(at, std::string::npos) << log;
    EXPECT_EQ(log.find("memo is full", at + 1), std::string::npos) << "logged more than once:\n" << log;
}

/* ------------------------------------------------ 3c. the memo journal */

namespace {
constexpr size_t kJournalHeader = 16, kJournalRecord = 40;

off_t file_size(const std::string &path) {
    struct stat st;
    return stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}
} // namespace

TEST_F(PilotdTest, MemoSurvivesKill9LatestWins) {
    start_and_wait();
    RawSegment raw(segment_);
    PilotdCounters &ctr = raw.header->counters;
    auto c = client(21), c2 = client(22);
    /* 0x6001 observed three times: the last (in ring order) wins */
    EXPECT_EQ(push(*c, {relset(0x6001, 10), relset(0x6002, 20), relset(0x6001, 11)}), 3u);
    ASSERT_TRUE(wait_until([&] { return ctr.feedback_received.load() == 3u; }, 10000));
    EXPECT_EQ(push(*c2, {relset(0x6001, 12.5), relset(0x6003, 0)}), 2u);
    ASSERT_TRUE(wait_until([&] { return ctr.feedback_received.load() == 5u; }, 10000));
    ASSERT_TRUE(wait_answer(*c, EST_MEMO, 0x6001, SRC_MEMO, 12.5));
    c.reset();
    c2.reset();

    pilotd_->kill9(); /* acknowledged = journaled: nothing may be lost */
    start_and_wait();
    auto c3 = client(21);
    std::vector<EstimateAnswer> ans;
    ASSERT_EQ(estimate(*c3, EST_MEMO, {0x6001, 0x6002, 0x6003, 0x6004}, &ans), Outcome::OK);
    ASSERT_EQ(ans.size(), 4u);
    EXPECT_EQ(ans[0].source, static_cast<uint32_t>(SRC_MEMO));
    EXPECT_EQ(ans[0].rows, 12.5);
    EXPECT_EQ(ans[1].source, static_cast<uint32_t>(SRC_MEMO));
    EXPECT_EQ(ans[1].rows, 20);
    EXPECT_EQ(ans[2].source, static_cast<uint32_t>(SRC_MEMO));
    EXPECT_EQ(ans[2].rows, 0);
    EXPECT_EQ(ans[3].source, static_cast<uint32_t>(SRC_NONE));
    EXPECT_EQ(c3->info().memo_entries, 3u);
    EXPECT_NE(pilotd_->log().find("replayed 5 records into 3 relation sets"), std::string::npos);
    /* compacted at startup: one record per key */
    EXPECT_EQ(file_size(statedir_ + "/memo.journal"), static_cast<off_t>(kJournalHeader + 3 * kJournalRecord));
}

class CorruptJournalTest : public PilotdTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(CorruptJournalTest, IntactRecordsAreReplayed) {
    const std::string journal = statedir_ + "/memo.journal";
    start_and_wait();
    {
        RawSegment raw(segment_);
        auto c = client(23);
        std::vector<FeedbackRecord> recs;
        for (uint64_t i = 0; i < 16; i++)
            recs.push_back(relset(0x7000 + i, static_cast<double>(100 + i)));
        EXPECT_EQ(push(*c, recs), 16u);
        ASSERT_TRUE(wait_until([&] { return raw.header->counters.feedback_received.load() == 16u; }, 10000));
    }
    pilotd_->kill9();
    std::string bytes = read_text(journal);
    ASSERT_EQ(bytes.size(), kJournalHeader + 16 * kJournalRecord);
    const std::string how = GetParam();
    size_t lost = 99; /* index of the record that must be gone */
    if (how == "torn") {
        bytes.resize(bytes.size() - 5);
        lost = 15;
    } else if (how == "flipped") {
        bytes[kJournalHeader + 5 * kJournalRecord + 3] ^= 0x10;
        lost = 5;
    } else {
        bytes[0] = 'X'; /* wrong magic */
    }
    write_text(journal, bytes);

    start_and_wait();
    ASSERT_TRUE(pilotd_->running());
    auto c = client(23);
    std::vector<uint64_t> keys;
    for (uint64_t i = 0; i < 16; i++)
        keys.push_back(0x7000 + i);
    std::vector<EstimateAnswer> ans;
    ASSERT_EQ(estimate(*c, EST_MEMO, keys, &ans), Outcome::OK);
    ASSERT_EQ(ans.size(), 16u);
    const std::string log = pilotd_->log();
    if (how == "magic") {
        for (const auto &a : ans)
            EXPECT_EQ(a.source, static_cast<uint32_t>(SRC_NONE));
        int corrupt = 0;
        for (const auto &n : list_dir(statedir_))
            if (n.rfind("memo.journal.corrupt.", 0) == 0) {
                corrupt++;
                EXPECT_EQ(read_text(statedir_ + "/" + n), bytes) << "the bad file is kept as it was";
            }
        EXPECT_EQ(corrupt, 1);
        EXPECT_NE(log.find("wrong magic or version"), std::string::npos) << log;
        EXPECT_EQ(file_size(journal), static_cast<off_t>(kJournalHeader)) << "a fresh journal";
        return;
    }
    for (size_t i = 0; i < 16; i++) {
        if (i == lost) {
            EXPECT_EQ(ans[i].source, static_cast<uint32_t>(SRC_NONE)) << i;
        } else {
            EXPECT_EQ(ans[i].source, static_cast<uint32_t>(SRC_MEMO)) << i;
            EXPECT_EQ(ans[i].rows, static_cast<double>(100 + i)) << i;
        }
    }
    if (how == "torn")
        EXPECT_NE(log.find("skipped 0 corrupt records, discarded a torn tail of 35 bytes"), std::string::npos)
            << log;
    else
        EXPECT_NE(log.find("replayed 15 records into 15 relation sets (15 loaded), skipped 1 corrupt records, "
                           "discarded a torn tail of 0 bytes"),
                  std::string::npos)
            << log;
    /* rewritten by the startup compaction: clean again */
    EXPECT_EQ(file_size(journal), static_cast<off_t>(kJournalHeader + 15 * kJournalRecord));
}

INSTANTIATE_TEST_SUITE_P(Corruptions, CorruptJournalTest, ::testing::Values("torn", "flipped", "magic"));

TEST_F(PilotdTest, MemoJournalIsCompacted) {
    const std::string journal = statedir_ + "/memo.journal";
    start_and_wait();
    {
        RawSegment raw(segment_);
        auto c = client(24);
        uint64_t sent = 0;
        for (int round = 0; round < 10; round++) {
            std::vector<FeedbackRecord> recs;
            for (int k = 0; k < 100; k++)
                recs.push_back(relset(0x8000 + k % 4, static_cast<double>(round * 100 + k)));
            EXPECT_EQ(push(*c, recs), 100u);
            sent += 100;
            ASSERT_TRUE(wait_until([&] { return raw.header->counters.feedback_received.load() == sent; }, 10000));
        }
        EXPECT_EQ(file_size(journal), static_cast<off_t>(kJournalHeader + 1000 * kJournalRecord));
    }
    pilotd_->signal(SIGTERM);
    ASSERT_EQ(pilotd_->wait_exit(10000), 0);
    start_and_wait();
    EXPECT_EQ(file_size(journal), static_cast<off_t>(kJournalHeader + 4 * kJournalRecord));
    auto c = client(24);
    std::vector<EstimateAnswer> ans;
    ASSERT_EQ(estimate(*c, EST_MEMO, {0x8000, 0x8001, 0x8002, 0x8003}, &ans), Outcome::OK);
    ASSERT_EQ(ans.size(), 4u);
    for (int k = 0; k < 4; k++) {
        EXPECT_EQ(ans[k].source, static_cast<uint32_t>(SRC_MEMO));
        EXPECT_EQ(ans[k].rows, 900 + 96 + k) << k; /* the last round's last observation of the key */
    }

    /* and during operation, past --memo-journal-max-mb */
    pilotd_->kill9();
    start_and_wait({"--memo-journal-max-mb", "1"});
    RawSegment raw(segment_);
    uint64_t sent = raw.header->counters.feedback_received.load();
    for (int round = 0; round < 300; round++) { /* 300 * 128 * 32 bytes > 1 MB */
        std::vector<FeedbackRecord> recs;
        for (uint32_t k = 0; k < kFeedbackRing; k++)
            recs.push_back(relset(0x8000 + k % 4, static_cast<double>(k)));
        ASSERT_EQ(push(*c, recs), kFeedbackRing);
        sent += kFeedbackRing;
        ASSERT_TRUE(wait_until([&] { return raw.header->counters.feedback_received.load() == sent; }, 10000));
    }
    EXPECT_LT(file_size(journal), static_cast<off_t>(1 << 20));
    EXPECT_NE(pilotd_->log().find("memo journal compacted"), std::string::npos);
    EXPECT_TRUE(wait_answer(*c, EST_MEMO, 0x8003, SRC_MEMO, kFeedbackRing - 1));
}

TEST_F(PilotdTest, UnwritableJournalMeansFeedbackIsNotAcknowledged) {
    const std::string journal = statedir_ + "/memo.journal";
    start_and_wait();
    RawSegment raw(segment_);
    PilotdCounters &ctr = raw.header->counters;
    FeedbackRing &ring = raw.slot(25)->feedback;
    auto c = client(25);
    EXPECT_EQ(push(*c, {relset(0x9001, 1)}), 1u);
    ASSERT_TRUE(wait_answer(*c, EST_MEMO, 0x9001, SRC_MEMO, 1));

    ASSERT_EQ(chmod(journal.c_str(), 0400), 0);
    ASSERT_EQ(chmod(statedir_.c_str(), 0500), 0);
    struct Restore {
        std::string dir, file;
        ~Restore() {
            chmod(dir.c_str(), 0700);
            chmod(file.c_str(), 0600);
        }
    } restore{statedir_, journal};
    if (access(journal.c_str(), W_OK) == 0 || access(statedir_.c_str(), W_OK) == 0)
        GTEST_SKIP() << "file permissions do not stop this user (root or CAP_DAC_OVERRIDE): an unwritable "
                        "journal cannot be simulated";

    EXPECT_EQ(push(*c, {relset(0x9002, 2), relset(0x9001, 3)}), 2u);
    ASSERT_TRUE(wait_until([&] { return pilotd_->log().find("feedback is not accepted") != std::string::npos; },
                           10000))
        << pilotd_->log();
    std::this_thread::sleep_for(std::chrono::milliseconds(100)); /* several more drain rounds */
    EXPECT_TRUE(pilotd_->running());
    EXPECT_EQ(ping(*c), Outcome::OK) << "still serving";
    EXPECT_EQ(ring.head.load() - ring.tail.load(), 2u) << "the records must stay in the ring";
    EXPECT_EQ(ctr.feedback_received.load(), 1u);
    EXPECT_EQ(answer_for(*c, EST_MEMO, 0x9002).source, static_cast<uint32_t>(SRC_NONE));
    EXPECT_EQ(answer_for(*c, EST_MEMO, 0x9001).rows, 1) << "applied before it was durable";
    /* rate-limited: one message for the many failed rounds */
    const std::string log = pilotd_->log();
    size_t at = log.find("feedback is not accepted");
    EXPECT_EQ(log.find("feedback is not accepted", at + 1), std::string::npos) << log;

    chmod(statedir_.c_str(), 0700);
    chmod(journal.c_str(), 0600);
    EXPECT_TRUE(wait_answer(*c, EST_MEMO, 0x9002, SRC_MEMO, 2));
    EXPECT_TRUE(wait_answer(*c, EST_MEMO, 0x9001, SRC_MEMO, 3));
    EXPECT_EQ(ring.head.load(), ring.tail.load());
    EXPECT_EQ(ctr.feedback_received.load(), 3u);
    EXPECT_NE(pilotd_->log().find("is writable again"), std::string::npos);

    pilotd_->kill9();
    start_and_wait();
    auto c2 = client(25);
    EXPECT_TRUE(wait_answer(*c2, EST_MEMO, 0x9002, SRC_MEMO, 2));
    EXPECT_TRUE(wait_answer(*c2, EST_MEMO, 0x9001, SRC_MEMO, 3));
}

/* ------------------------------------------------------ 4. bad requests */

TEST_F(PilotdTest, BadRequestsWrittenByHandAreRefusedAndCounted) {
    start_and_wait();
    RawSegment raw(segment_);
    Slot *s = raw.slot(7);

    struct Case {
        const char *what;
        std::function<void(Request &)> fill;
    };
    std::vector<Case> cases = {
        {"type 99", [](Request &r) { r.type = 99; r.count = 1; }},
        {"type 0", [](Request &r) { r.type = 0; }},
        {"estimate count > kMaxItems",
         [](Request &r) {
             r.type = MSG_ESTIMATE;
             r.count = kMaxItems + 44;
             for (uint32_t i = 0; i < kMaxItems; i++)
                 r.items[i].key = i + 1;
         }},
        {"count 0xffffffff", [](Request &r) { r.type = MSG_ORACLE_ADD; r.count = 0xffffffffu; }},
        {"estimate key 0",
         [](Request &r) {
             r.type = MSG_ESTIMATE;
             r.count = 2;
             r.items[0].key = 5;
             r.items[1].key = 0;
         }},
        {"unknown estimator",
         [](Request &r) {
             r.type = MSG_ESTIMATE;
             r.estimator = 77;
             r.count = 1;
             r.items[0].key = 5;
         }},
        {"oracle rows NaN",
         [](Request &r) {
             r.type = MSG_ORACLE_ADD;
             r.count = 1;
             r.entries[0].key = 9;
             r.entries[0].rows = std::nan("");
         }},
        {"oracle rows negative",
         [](Request &r) {
             r.type = MSG_ORACLE_ADD;
             r.count = 1;
             r.entries[0].key = 9;
             r.entries[0].rows = -1;
         }},
        {"estimate text beyond text_used",
         [](Request &r) {
             r.type = MSG_ESTIMATE;
             r.count = 2;
             r.items[0].key = 5;
             r.items[1].key = 6;
             memcpy(r.text, "pgpk1\nR t1 a", 12);
             r.text_used = 12;
             r.items[0].text_off = 0;
             r.items[0].text_len = 12;
             r.items[1].text_off = 8;
             r.items[1].text_len = 5; /* 8 + 5 > 12 */
         }},
        {"estimate text_off + text_len overflows",
         [](Request &r) {
             r.type = MSG_ESTIMATE;
             r.count = 1;
             r.items[0].key = 5;
             r.text_used = 16;
             r.items[0].text_off = 0xfffffff0u;
             r.items[0].text_len = 0x20u; /* wraps to 0x10 in 32 bits */
         }},
        {"estimate text_used > kMaxText",
         [](Request &r) {
             r.type = MSG_ESTIMATE;
             r.count = 1;
             r.items[0].key = 5;
             r.text_used = kMaxText + 1;
         }},
        {"model pin version beyond 32 bits",
         [](Request &r) {
             r.type = MSG_MODEL_PIN;
             r.session = (1ull << 32) + 3;
         }},
    };
    uint64_t seq = 4242;
    for (const Case &tc : cases) {
        memset(static_cast<void *>(&s->req), 0, sizeof s->req);
        tc.fill(s->req);
        s->req.seq = ++seq;
        s->owner_pid.store(static_cast<uint32_t>(getpid()));
        s->resp.seq = 0;
        s->state.store(SLOT_PENDING, std::memory_order_release);
        raw.ring();
        ASSERT_TRUE(wait_until([&] { return s->state.load(std::memory_order_acquire) == SLOT_DONE; }, 10000))
            << tc.what << ": no answer";
        EXPECT_EQ(s->resp.seq, seq) << tc.what;
        EXPECT_EQ(s->resp.status, static_cast<uint32_t>(ST_BAD_REQUEST)) << tc.what;
        EXPECT_EQ(s->resp.count, 0u) << tc.what;
        ASSERT_TRUE(pilotd_->running()) << tc.what << " killed pilotd";
    }
    auto c = client(7); /* takes over the DONE slot */
    EXPECT_EQ(ping(*c), Outcome::OK);
    PilotdInfo d = c->info();
    EXPECT_EQ(d.bad_requests, cases.size());
    EXPECT_EQ(d.requests, cases.size() + 1);
    EXPECT_NE(pilotd_->log().find("bad request in slot 7"), std::string::npos);
}

/* Workers find requests through the header's pending bitmap.  Garbage bits
 * (slots beyond the segment, slots with no request) are ignored, and a
 * request whose bit was never set (a backend killed between the two stores,
 * or a writer of its own) is still answered, by the scan of every slot that
 * an idle worker makes. */
TEST_F(PilotdTest, PendingBitmapGarbageIgnoredAndUnflaggedRequestsServed) {
    start_and_wait();
    RawSegment raw(segment_);
    for (auto &w : raw.header->pending)
        w.store(~uint64_t{0}, std::memory_order_release);
    raw.ring();
    auto c = client(3);
    EXPECT_EQ(ping(*c), Outcome::OK);
    ASSERT_TRUE(pilotd_->running());

    Slot *s = raw.slot(9);
    memset(static_cast<void *>(&s->req), 0, sizeof s->req);
    s->req.type = MSG_PING;
    s->req.seq = 9191;
    s->owner_pid.store(static_cast<uint32_t>(getpid()));
    s->resp.seq = 0;
    s->state.store(SLOT_PENDING, std::memory_order_release); /* no bit */
    raw.ring();
    ASSERT_TRUE(wait_until([&] { return s->state.load(std::memory_order_acquire) == SLOT_DONE; }, 10000));
    EXPECT_EQ(s->resp.seq, 9191u);
    EXPECT_EQ(s->resp.status, static_cast<uint32_t>(ST_OK));
    /* and the client's requests, flagged, are answered as ever */
    EXPECT_EQ(ping(*c), Outcome::OK);
}

/* ------------------------------------- 4b. protocol 4: texts and models */

/* The guard both sides arm over their mapping: a segment truncated under a
 * live mapping reads as zeros instead of killing the process with SIGBUS
 * (which in a backend would restart the whole server).  A fault elsewhere
 * keeps its default action (checked in a child). */
TEST(SegmentGuard, TruncatedMappingReadsZerosNotSigbus) {
    const std::string name = "/pg_pilot_guard_test." + std::to_string(getpid());
    int fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_GE(fd, 0);
    shm_unlink(name.c_str());
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    ASSERT_EQ(ftruncate(fd, static_cast<off_t>(4 * page)), 0);
    auto *p = static_cast<volatile unsigned char *>(mmap(nullptr, 4 * page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    ASSERT_NE(p, MAP_FAILED);
    p[3 * page] = 7;
    pilot::segment_guard_arm(const_cast<unsigned char *>(p), 4 * page);
    EXPECT_FALSE(pilot::segment_guard_tripped());
    ASSERT_EQ(ftruncate(fd, static_cast<off_t>(page)), 0); /* what another process may do */
    EXPECT_EQ(p[3 * page], 0u); /* past the end: zeros, not SIGBUS */
    EXPECT_TRUE(pilot::segment_guard_tripped());
    p[2 * page] = 1; /* writes land in private zero pages */
    EXPECT_EQ(p[2 * page], 1u);
    pilot::segment_guard_disarm();
    munmap(const_cast<unsigned char *>(p), 4 * page);

#ifndef __SANITIZE_ADDRESS__ /* (under ASan, its own handler reports it: a sanitizer report) */
    /* a SIGBUS outside the covered range still kills */
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        int fd2 = shm_open((name + ".2").c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
        shm_unlink((name + ".2").c_str());
        if (fd2 < 0 || ftruncate(fd2, static_cast<off_t>(page)) != 0)
            _exit(3);
        auto *q = static_cast<volatile unsigned char *>(mmap(nullptr, 2 * page, PROT_READ, MAP_SHARED, fd2, 0));
        if (q == MAP_FAILED)
            _exit(4);
        pilot::segment_guard_arm(reinterpret_cast<void *>(0x10000), page); /* elsewhere */
        (void)q[page]; /* beyond the file: SIGBUS */
        _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS) << "status " << status;
#endif
    close(fd);
}

TEST(Protocol4, TextBoundsAndCleaning) {
    std::unique_ptr<Request> r(new Request());
    r->type = MSG_ESTIMATE;
    r->count = 3;
    for (uint32_t i = 0; i < 3; i++)
        r->items[i].key = 100 + i;
    const char good[] = "pgpk1\nR t1 public.a\nC (t1.x = '\xc3\xa9'::text)";
    const uint32_t glen = sizeof good - 1;
    memcpy(r->text, good, glen);
    memcpy(r->text + glen, "bad\x01\xff", 5);
    r->text_used = glen + 5;
    r->items[0].text_off = 0;
    r->items[0].text_len = glen;
    r->items[1].text_off = glen;
    r->items[1].text_len = 5;
    r->items[2].text_off = r->text_used; /* empty, at the very end: fine */
    r->items[2].text_len = 0;
    EXPECT_TRUE(validate_request(*r));
    EXPECT_TRUE(key_text_clean(good, glen));
    EXPECT_FALSE(key_text_clean(r->text + glen, 5));
    EXPECT_EQ(drop_unclean_texts(*r), 1u);
    EXPECT_EQ(r->items[0].text_len, glen);
    EXPECT_EQ(r->items[1].text_len, 0u);
    EXPECT_TRUE(validate_request(*r));

    r->items[2].text_off = r->text_used + 1; /* past the end, even when empty */
    EXPECT_FALSE(validate_request(*r));
    r->items[2].text_off = 0;
    r->items[2].text_len = UINT32_MAX;
    EXPECT_FALSE(validate_request(*r));
    r->items[2].text_len = 0;
    r->text_used = kMaxText + 1;
    EXPECT_FALSE(validate_request(*r));
    /* other message types ignore the text fields */
    r->type = MSG_PING;
    EXPECT_TRUE(validate_request(*r));

    /* MSG_ADVISOR: the job is validated like every field read from a slot */
    r->type = MSG_ADVISOR;
    r->count = 0;
    r->text_used = 0;
    memset(&r->advisor, 0, sizeof r->advisor);
    r->advisor.action = ADVISE_RUN;
    EXPECT_TRUE(validate_request(*r));
    r->advisor.budget_mb = std::nan("");
    EXPECT_FALSE(validate_request(*r)) << "NaN budget";
    r->advisor.budget_mb = 1e12;
    EXPECT_FALSE(validate_request(*r)) << "absurd budget";
    r->advisor.budget_mb = 100;
    r->advisor.max_indexes = 1001;
    EXPECT_FALSE(validate_request(*r));
    r->advisor.max_indexes = 5;
    r->advisor.action = ADVISE_ACTION_MAX + 1;
    EXPECT_FALSE(validate_request(*r));
    r->advisor.action = 0;
    EXPECT_FALSE(validate_request(*r));
    r->advisor.action = ADVISE_APPLY;
    EXPECT_FALSE(validate_request(*r)) << "apply without a recommendation id";
    r->advisor.recommendation = 12;
    EXPECT_TRUE(validate_request(*r));

    EXPECT_STREQ(estimator_name(EST_LEARNED), "learned");
    EXPECT_STREQ(source_name(SRC_MODEL), "model");
    EXPECT_STREQ(model_state_name(MODEL_SERVING), "serving");
    EXPECT_STREQ(model_state_name(0), "invalid");
    EXPECT_STREQ(model_state_name(MODEL_STATE_MAX + 1), "invalid");
}

TEST_F(PilotdTest, EstimateWithKeyTextsIsAnswered) {
    start_and_wait();
    auto c = client(9);
    EXPECT_EQ(oracle_load(*c, true, make_entries(700, 4, 50.0)), 4u);

    Msg m;
    m.req->type = MSG_ESTIMATE;
    m.req->estimator = EST_AUTO;
    m.req->dboid = 16384;
    m.req->count = 4;
    uint32_t off = 0;
    for (uint32_t i = 0; i < 4; i++) {
        m.req->items[i].key = 700 + i;
        m.req->items[i].template_key = 9000 + i;
        m.req->items[i].native_rows = 10;
        m.req->items[i].nrels = 1;
        char t[64];
        int len = snprintf(t, sizeof t, "pgpk1\nR t1 public.t%u\nC (t1.x = '%u'::integer)", i, i);
        if (i == 2)
            len = snprintf(t, sizeof t, "not \x01 clean \xff"); /* dropped by pilotd, still answered */
        memcpy(m.req->text + off, t, static_cast<size_t>(len));
        m.req->items[i].text_off = off;
        m.req->items[i].text_len = static_cast<uint32_t>(len);
        off += static_cast<uint32_t>(len);
    }
    m.req->items[3].text_len = 0; /* one without text */
    m.req->text_used = off;
    ASSERT_EQ(c->call(*m.req, *m.resp, kCallTimeoutUs), Outcome::OK);
    ASSERT_EQ(m.resp->count, 4u);
    for (uint32_t i = 0; i < 4; i++) {
        EXPECT_EQ(m.resp->answers[i].source, static_cast<uint32_t>(SRC_ORACLE)) << i;
        EXPECT_EQ(m.resp->answers[i].rows, 50.0 + 1.5 * i) << i;
    }

    /* a full text area is fine */
    m.req->text_used = kMaxText;
    m.req->items[0].text_off = kMaxText - 10;
    m.req->items[0].text_len = 10;
    memset(m.req->text + kMaxText - 10, 'x', 10);
    ASSERT_EQ(c->call(*m.req, *m.resp, kCallTimeoutUs), Outcome::OK);
    EXPECT_EQ(m.resp->count, 4u);

    /* learned: served, but no model version exists: every answer "don't know" */
    m.req->estimator = EST_LEARNED;
    ASSERT_EQ(c->call(*m.req, *m.resp, kCallTimeoutUs), Outcome::OK);
    ASSERT_EQ(m.resp->count, 4u);
    for (uint32_t i = 0; i < 4; i++)
        EXPECT_EQ(m.resp->answers[i].source, static_cast<uint32_t>(SRC_NONE)) << i;

    PilotdInfo d = c->info();
    EXPECT_EQ(d.bad_requests, 0u);
    EXPECT_EQ(d.models, 0u);
    EXPECT_EQ(d.serving_version, 0u);
    EXPECT_FALSE(c->model_serving());
}

TEST_F(PilotdTest, ModelPinWithoutModelFails) {
    start_and_wait();
    auto c = client(4);
    {
        Msg m;
        m.req->type = MSG_MODEL_PIN;
        m.req->session = 42;
        EXPECT_EQ(c->call(*m.req, *m.resp, kCallTimeoutUs), Outcome::REFUSED);
        EXPECT_EQ(m.resp->status, static_cast<uint32_t>(ST_FAILED));
    }
    {
        /* unpinning is always possible: pilotd chooses again (here: nothing) */
        Msg m;
        m.req->type = MSG_MODEL_PIN;
        m.req->session = 0;
        EXPECT_EQ(c->call(*m.req, *m.resp, kCallTimeoutUs), Outcome::OK);
        EXPECT_EQ(m.resp->status, static_cast<uint32_t>(ST_OK));
    }
    EXPECT_TRUE(pilotd_->running());
    EXPECT_NE(pilotd_->log().find("cannot pin model version 42"), std::string::npos);
}

/* The model table is read consistently and every field is checked: garbage
 * written into it (here by hand, as a broken pilotd would) never reaches SQL
 * unchecked. */
TEST_F(PilotdTest, ModelTableIsValidatedByTheReader) {
    start_and_wait();
    RawSegment raw(segment_);
    ModelTable &t = raw.header->models;
    auto c = client(2);
    ModelInfo out[kMaxModels];

    EXPECT_EQ(c->read_models(out, kMaxModels), 0);

    uint32_t s = t.seq.load();
    t.seq.store(s + 1);
    t.count = 3;
    memset(static_cast<void *>(t.models), 0, sizeof t.models);
    t.models[0].version = 7;
    t.models[0].state = MODEL_SERVING;
    memset(t.models[0].checksum, 'a', sizeof t.models[0].checksum); /* no NUL */
    snprintf(t.models[0].database, sizeof t.models[0].database, "db\x01\xff");
    snprintf(t.models[0].note, sizeof t.models[0].note, "fine");
    t.models[1].version = 8;
    t.models[1].state = 99; /* out of range: left out */
    t.models[2].version = 9;
    t.models[2].state = MODEL_REJECTED;
    t.seq.store(s + 2);
    raw.header->model_serving.store(1);

    int n = c->read_models(out, kMaxModels);
    ASSERT_EQ(n, 2);
    EXPECT_EQ(out[0].version, 7u);
    EXPECT_EQ(strlen(out[0].checksum), sizeof out[0].checksum - 1);
    EXPECT_STREQ(out[0].database, "db??");
    EXPECT_STREQ(out[0].note, "fine");
    EXPECT_EQ(out[1].version, 9u);
    EXPECT_TRUE(c->model_serving());
    PilotdInfo d = c->info();
    EXPECT_EQ(d.models, 2u);
    EXPECT_EQ(d.serving_version, 7u);

    t.count = kMaxModels + 1; /* garbage count */
    EXPECT_EQ(c->read_models(out, kMaxModels), -1);
    t.count = 0;
    t.seq.store(s + 3); /* left odd: a writer that died */
    EXPECT_EQ(c->read_models(out, kMaxModels), -1);
    t.seq.store(s + 4);
    raw.header->model_serving.store(0);
}

/* ------------------------------------------- 5. kill -9 and re-attach */

TEST_F(PilotdTest, Kill9StaleHeartbeatMeansDownQuicklyThenReattach) {
    start_and_wait();
    auto c = client(2, kStaleUs, 20 * 1000);
    ASSERT_EQ(ping(*c), Outcome::OK);
    uint64_t old_epoch = c->info().epoch;

    pilotd_->kill9();
    /* with a 200 ms staleness limit, the frozen heartbeat is stale after this */
    c->set_stale_after_us(200 * 1000);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    for (int i = 0; i < 3; i++) {
        uint64_t t0 = monotonic_us();
        EXPECT_EQ(ping(*c, kCallTimeoutUs), Outcome::PILOTD_DOWN) << "call " << i;
        EXPECT_LT(monotonic_us() - t0, 1000000u) << "call " << i << " waited for the timeout";
    }

    c->set_stale_after_us(kStaleUs);
    start_and_wait();
    /* the same client object re-attaches by itself */
    ASSERT_TRUE(wait_until([&] { return ping(*c) == Outcome::OK; }, kReadyWaitMs));
    PilotdInfo d = c->info();
    ASSERT_TRUE(d.attached);
    EXPECT_NE(d.epoch, old_epoch);
    EXPECT_EQ(d.pilotd_pid, static_cast<uint32_t>(pilotd_->pid()));
}

TEST_F(PilotdTest, Kill9DeadPidIsDownNotTimeout) {
    start_and_wait();
    /* a staleness limit far away: only the pid tells that pilotd is gone */
    auto c = client(2, 60ull * 1000 * 1000, 0);
    ASSERT_EQ(ping(*c), Outcome::OK);
    pilotd_->kill9(); /* and reaped: the pid no longer exists */
    uint64_t t0 = monotonic_us();
    EXPECT_EQ(ping(*c, 300 * 1000), Outcome::PILOTD_DOWN);
    EXPECT_LT(monotonic_us() - t0, 5000000u);
}

/* ------------------------------------------------- 6. version mismatch */

TEST_F(PilotdTest, OtherProtocolVersionIsMismatchAtOnce) {
    pilotd_->start({"--debug-protocol-version", "99"});
    auto c = client(4);
    Outcome o = Outcome::PILOTD_DOWN;
    ASSERT_TRUE(wait_until(
        [&] {
            o = c->probe();
            return o != Outcome::PILOTD_DOWN || !pilotd_->running();
        },
        kReadyWaitMs));
    ASSERT_TRUE(pilotd_->running());
    EXPECT_EQ(o, Outcome::VERSION_MISMATCH);
    for (int i = 0; i < 3; i++) {
        uint64_t t0 = monotonic_us();
        EXPECT_EQ(ping(*c, kCallTimeoutUs), Outcome::VERSION_MISMATCH);
        EXPECT_LT(monotonic_us() - t0, 1000000u);
    }
    PilotdInfo d = c->info();
    EXPECT_FALSE(d.attached);
    EXPECT_NE(d.last_problem.find("version"), std::string::npos) << d.last_problem;

    RunResult r = run({"status", "-D", datadir_});
    EXPECT_EQ(r.status, 3) << r.output;
    EXPECT_NE(r.output.find("protocol version mismatch"), std::string::npos) << r.output;
}

/* ------------------------------------------------- 7. slow pilotd */

TEST_F(PilotdTest, SlowAnswerTimesOutAndSlotRecovers) {
    start_and_wait({"--debug-answer-delay-ms", "300"});
    auto c = client(6);
    uint64_t t0 = monotonic_us();
    EXPECT_EQ(ping(*c), Outcome::OK); /* only estimates are delayed */

    std::vector<EstimateAnswer> ans;
    t0 = monotonic_us();
    EXPECT_EQ(estimate(*c, EST_AUTO, {1, 2, 3}, &ans, 5000), Outcome::TIMEOUT);
    uint64_t took = monotonic_us() - t0;
    EXPECT_GE(took, 5000u);
    EXPECT_LT(took, 250000u) << "the 5 ms budget was not kept";

    /* the next call works once pilotd is done with the abandoned request
     * (until then the slot may be BUSY, which the client reports) */
    Outcome o = Outcome::SLOT_BUSY;
    ASSERT_TRUE(wait_until(
        [&] {
            o = estimate(*c, EST_AUTO, {4, 5}, &ans, kCallTimeoutUs);
            return o != Outcome::SLOT_BUSY;
        },
        kReadyWaitMs, 20));
    EXPECT_EQ(o, Outcome::OK);
    EXPECT_EQ(ans.size(), 2u);
    EXPECT_EQ(ping(*c), Outcome::OK);
}

/* ------------------------------------------- 8. abandoned slot states */

TEST_F(PilotdTest, SlotLeftPendingOrWritingIsTakenOver) {
    /* one worker, kept busy for a second by slot 1, so slot 2's abandoned
     * PENDING request is still there when its next client comes */
    start_and_wait({"--workers", "1", "--debug-answer-delay-ms", "1000"});
    RawSegment raw(segment_);
    std::atomic<int> busy_outcome{-1};
    std::thread occupier([&] {
        PilotdClient c1(segment_, 1, kStaleUs, 0);
        std::vector<EstimateAnswer> ans;
        busy_outcome = static_cast<int>(estimate(c1, EST_AUTO, {11}, &ans, 20 * 1000 * 1000));
    });
    ASSERT_TRUE(wait_until([&] { return raw.slot(1)->state.load() == SLOT_BUSY; }, 10000));

    /* a "killed" backend: a complete request left PENDING, never collected */
    Slot *s2 = raw.slot(2);
    s2->req.seq = 777;
    s2->req.type = MSG_PING;
    s2->req.count = 0;
    s2->state.store(SLOT_PENDING, std::memory_order_release);
    /* another one died while writing */
    Slot *s3 = raw.slot(3);
    s3->req.seq = 778;
    s3->req.type = MSG_ESTIMATE;
    s3->req.count = 100000; /* half-written garbage */
    s3->state.store(SLOT_WRITING, std::memory_order_release);

    auto c2 = client(2), c3 = client(3);
    Msg m;
    m.req->type = MSG_PING;
    EXPECT_EQ(c2->call(*m.req, *m.resp, 20 * 1000 * 1000), Outcome::OK);
    EXPECT_NE(m.resp->seq, 777u);
    EXPECT_EQ(m.resp->seq, m.req->seq);
    EXPECT_EQ(ping(*c3, 20 * 1000 * 1000), Outcome::OK);
    occupier.join();
    EXPECT_EQ(busy_outcome.load(), static_cast<int>(Outcome::OK));
    EXPECT_EQ(c3->info().bad_requests, 0u);
}

/* ---------------------------------------------------- 9. clean shutdown */

TEST_F(PilotdTest, SigtermShutsDownCleanlyAndWakesWaiters) {
    start_and_wait({"--debug-answer-delay-ms", "30000"});
    ASSERT_TRUE(exists(pid_file()));
    ASSERT_TRUE(exists(shm_file()));
    RawSegment raw(segment_);

    /* a backend waiting for a (very slow) answer */
    std::atomic<int> waiter_outcome{-1};
    std::atomic<uint64_t> waiter_done_us{0};
    std::thread waiter([&] {
        PilotdClient c(segment_, 8, kStaleUs, 0);
        std::vector<EstimateAnswer> ans;
        waiter_outcome = static_cast<int>(estimate(c, EST_AUTO, {1}, &ans, 60 * 1000 * 1000));
        waiter_done_us = monotonic_us();
    });
    ASSERT_TRUE(wait_until([&] { return raw.slot(8)->state.load() == SLOT_BUSY; }, 10000));

    uint64_t t0 = monotonic_us();
    pilotd_->signal(SIGTERM);
    EXPECT_EQ(pilotd_->wait_exit(10000), 0);
    waiter.join();
    EXPECT_EQ(waiter_outcome.load(), static_cast<int>(Outcome::PILOTD_DOWN));
    EXPECT_LT(waiter_done_us.load() - t0, 5000000u) << "the waiting backend was not released";
    EXPECT_FALSE(exists(shm_file()));
    EXPECT_FALSE(exists(pid_file()));
    EXPECT_FALSE(exists(shm_file() + ".lock"));
    EXPECT_EQ(raw.header->pilotd_state.load(), static_cast<uint32_t>(PILOTD_STOPPING));

    auto c = client(8);
    EXPECT_EQ(ping(*c), Outcome::PILOTD_DOWN);
    EXPECT_NE(pilotd_->log().find("shut down"), std::string::npos);

    RunResult r = run({"status", "-D", datadir_});
    EXPECT_EQ(r.status, 3) << r.output;
}

/* ------------------------------------------------ 10. command line */

TEST_F(PilotdTest, HelpMentionsEveryOption) {
    RunResult r = run({"--help"});
    EXPECT_EQ(r.status, 0);
    for (const char *opt : {"--config", "-c,", "--pgdata", "-D,", "--state-dir", "--slots", "--workers",
                            "--heartbeat-ms", "--feedback-interval-ms", "--memo-max-entries", "--memo-journal-max-mb", "--foreground", "--daemon", "--pid-file", "--log-file",
                            "--log-level", "--help", "--version", "status", "--stale-ms",
                            "--debug-answer-delay-ms", "--debug-protocol-version", "Testing",
                            "--store-dsn", "--spool-max-mb", "--store-retention-days", "--store-max-rows",
                            "--store-retention-interval-s", "--store-backoff-max-ms", "pilot_store",
                            "default: 512", "default: 2", "default: 10", "default: info", "default: 5",
                            "default: 1000000", "default: 64"})
        EXPECT_NE(r.output.find(opt), std::string::npos) << "--help does not mention " << opt;
    r = run({"--version"});
    EXPECT_EQ(r.status, 0);
    EXPECT_NE(r.output.find("pilotd"), std::string::npos);
}

TEST_F(PilotdTest, BadSettingsExit2NamingTheKey) {
    struct Case {
        std::string json;  /* config file, or empty */
        std::vector<std::string> args;
        std::string expect; /* in the message */
    };
    std::vector<Case> cases = {
        {R"({"slots": 0})", {}, "slots"},
        {R"({"slots": 65537})", {}, "slots"},
        {R"({"slots": "many"})", {}, "slots"},
        {R"({"workers": -1})", {}, "workers"},
        {R"({"heartbeat-ms": 1.5})", {}, "heartbeat-ms"},
        {R"({"log-level": "loud"})", {}, "log-level"},
        {R"({"feedback-interval-ms": 0})", {}, "feedback-interval-ms"},
        {R"({"memo_max_entries": 0})", {}, "memo-max-entries"},
        {R"({"daemon": "yes"})", {}, "daemon"},
        {R"({"pgdata": 42})", {}, "pgdata"},
        {R"({"slotz": 3})", {}, "slotz"},
        {R"({"slots": )", {}, "not valid JSON"},
        {R"([1, 2])", {}, "JSON object"},
        {"", {"--slots", "abc"}, "slots"},
        {"", {"--workers", "0"}, "workers"},
        {"", {"--feedback-interval-ms", "10001"}, "feedback-interval-ms"},
        {"", {"--memo-max-entries", "-3"}, "memo-max-entries"},
        {"", {"--log-level", "verbose"}, "log-level"},
        {"", {"--store-backoff-max-ms", "5"}, "store-backoff-max-ms"},
        {"", {"--spool-max-mb", "0"}, "spool-max-mb"},
        {R"({"store_retention_interval_s": 0})", {}, "store-retention-interval-s"},
        {R"({"store-dsn": 5})", {}, "store-dsn"},
        {"", {"--no-such-option"}, "--no-such-option"},
        {"", {"extra-argument"}, "extra-argument"},
    };
    std::string conf = tmp_.path() + "/pilotd.json";
    for (const Case &tc : cases) {
        std::vector<std::string> args = {"-D", datadir_};
        if (!tc.json.empty()) {
            write_text(conf, tc.json);
            args.push_back("-c");
            args.push_back(conf);
        }
        args.insert(args.end(), tc.args.begin(), tc.args.end());
        RunResult r = run(args);
        EXPECT_EQ(r.status, 2) << tc.json << " " << r.output;
        EXPECT_NE(r.output.find(tc.expect), std::string::npos) << tc.json << ": " << r.output;
    }
    /* no data directory at all */
    RunResult r = run({"--slots", "8"});
    EXPECT_EQ(r.status, 2);
    EXPECT_NE(r.output.find("pgdata"), std::string::npos) << r.output;
    EXPECT_FALSE(exists(datadir_ + "/pg_pilot")) << "nothing may be created on a usage error";
}

TEST_F(PilotdTest, ConfigFileAppliesAndCommandLineOverrides) {
    std::string conf = tmp_.path() + "/pilotd.json";
    write_text(conf, "{\n  // comments are allowed\n  \"pgdata\": \"" + datadir_ + "\",\n  \"state_dir\": \"" +
                         statedir_ + "\",\n  \"slots\": 32,\n  \"workers\": 1,\n  \"log-level\": \"debug\",\n" +
                         "  \"feedback_interval_ms\": 2,\n  \"memo-max-entries\": 77\n}\n");
    std::vector<std::string> args = {"-c", conf, "--slots", "48", "--memo-max-entries", "99"};
    /* -D comes from the file; Pilotd::start adds -D/--state-dir, which agree */
    pilotd_->start(args);
    auto c = client(0);
    ASSERT_TRUE(wait_until([&] { return c->probe() == Outcome::OK || !pilotd_->running(); }, kReadyWaitMs));
    PilotdInfo d = c->info();
    ASSERT_TRUE(d.attached);
    EXPECT_EQ(d.nslots, 48u);
    /* the segment is published before the worker thread logs its start */
    EXPECT_TRUE(wait_until([&] { return pilotd_->log().find("DEBUG: worker 0 started") != std::string::npos; },
                           kReadyWaitMs));
    EXPECT_NE(pilotd_->log().find("feedback-interval-ms=2 memo-max-entries=99"), std::string::npos)
        << pilotd_->log();
}

TEST_F(PilotdTest, RefusesRoot) {
    if (!g_started_as_root)
        GTEST_SKIP() << "the test binary did not start as root, so pilotd's refusal of root cannot be run";
    EXPECT_EQ(g_root_run_status, 1) << g_root_run_output;
    EXPECT_NE(g_root_run_output.find("must not run as root"), std::string::npos) << g_root_run_output;
    EXPECT_NE(g_root_run_output.find("PostgreSQL server's OS user"), std::string::npos) << g_root_run_output;
}

TEST_F(PilotdTest, RefusesDataDirectoryOfAnotherUserOrNotADirectory) {
    /* "/" is owned by root, never by the (non-root) test user */
    RunResult r = run({"-D", "/"});
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find("owned by uid 0"), std::string::npos) << r.output;
    std::string file = tmp_.path() + "/a_file";
    write_text(file, "x");
    r = run({"-D", file});
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find("not a directory"), std::string::npos) << r.output;
    r = run({"-D", tmp_.path() + "/missing"});
    EXPECT_EQ(r.status, 1) << r.output;
}

/* --------------------------------------------------------- extras */

TEST_F(PilotdTest, StatusCommand) {
    RunResult r = run({"status", "-D", datadir_});
    EXPECT_EQ(r.status, 3) << r.output;
    EXPECT_NE(r.output.find("not running"), std::string::npos) << r.output;

    start_and_wait();
    auto c = client(1);
    ASSERT_EQ(estimate(*c, EST_NATIVE, {1, 2, 3}, nullptr), Outcome::OK);
    ASSERT_EQ(push(*c, {relset(77, 7)}), 1u);
    RawSegment raw(segment_); /* not by estimating: "items" is checked below */
    ASSERT_TRUE(wait_until([&] { return raw.header->counters.memo_entries.load() == 1u; }, 10000));
    r = run({"status", "-D", datadir_});
    EXPECT_EQ(r.status, 0) << r.output;
    for (const std::string &s : {std::string("attached:         yes"), "pid:              " + std::to_string(pilotd_->pid()),
                                 "protocol version: " + std::to_string(kProtocolVersion), std::string("slots:            512"),
                                 std::string("items:            3"), std::string("heartbeat age:"),
                                 std::string("uptime:"), std::string("oracle entries:   0"), std::string("epoch:"),
                                 std::string("feedback:         1 received, 0 invalid"),
                                 std::string("memo entries:     1")})
        EXPECT_NE(r.output.find(s), std::string::npos) << "missing \"" << s << "\" in\n" << r.output;
    r = run({"status"});
    EXPECT_EQ(r.status, 2) << r.output;
}

TEST_F(PilotdTest, SecondPilotdForTheSameClusterIsRefused) {
    start_and_wait();
    /* same data directory, other state dir and pid file */
    std::string other_state = tmp_.path() + "/state2";
    RunResult r = run({"-D", datadir_, "--state-dir", other_state});
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find("already serving this data directory"), std::string::npos) << r.output;
    /* other data directory, same pid file */
    std::string other_data = tmp_.path() + "/pgdata2";
    ASSERT_EQ(mkdir(other_data.c_str(), 0700), 0);
    r = run({"-D", other_data, "--state-dir", other_state, "--pid-file", pid_file()});
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find("pid file"), std::string::npos) << r.output;
    EXPECT_FALSE(exists("/dev/shm/" + segment_name_for_datadir(other_data)));
    /* the first one is untouched */
    EXPECT_EQ(ping(*client(0)), Outcome::OK);
    EXPECT_EQ(read_text(pid_file()), std::to_string(pilotd_->pid()) + "\n");
}

TEST_F(PilotdTest, StalePidFileOfADeadProcessIsReplaced) {
    ASSERT_EQ(mkdir(statedir_.c_str(), 0700), 0);
    write_text(pid_file(), "999999\n");
    start_and_wait();
    EXPECT_EQ(read_text(pid_file()), std::to_string(pilotd_->pid()) + "\n");
}

TEST_F(PilotdTest, DaemonModeAndLogReopen) {
    std::string log = tmp_.path() + "/pilotd-daemon.log";
    RunResult r = run({"-D", datadir_, "--state-dir", statedir_, "--daemon", "--log-file", log});
    ASSERT_EQ(r.status, 0) << r.output; /* returns once the service is ready */
    auto c = client(0);
    EXPECT_EQ(ping(*c), Outcome::OK);
    std::string pid_text = read_text(pid_file());
    pid_t pid = static_cast<pid_t>(atoi(pid_text.c_str()));
    ASSERT_GT(pid, 1);
    EXPECT_EQ(c->info().pilotd_pid, static_cast<uint32_t>(pid));
    EXPECT_NE(read_text(log).find("ready: segment"), std::string::npos);

    /* logrotate: move the file away, SIGHUP, a new file appears */
    ASSERT_EQ(rename(log.c_str(), (log + ".1").c_str()), 0);
    ASSERT_EQ(kill(pid, SIGHUP), 0);
    EXPECT_TRUE(wait_until([&] { return read_text(log).find("log file reopened") != std::string::npos; }, 10000));
    EXPECT_EQ(ping(*c), Outcome::OK);

    ASSERT_EQ(kill(pid, SIGTERM), 0);
    /* not our child: watch its pid file and segment go away */
    EXPECT_TRUE(wait_until([&] { return !exists(pid_file()) && !exists(shm_file()); }, 10000));
    EXPECT_TRUE(wait_until([&] { return read_text(log).find("shut down") != std::string::npos; }, 10000));

    /* a detached pilotd that cannot start says why, and the command fails */
    std::string blocker = tmp_.path() + "/not_a_dir";
    write_text(blocker, "x");
    r = run({"-D", datadir_, "--state-dir", blocker, "--daemon", "--log-file", log});
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find("not a directory"), std::string::npos) << r.output;
}

} // namespace

/* Runs pilotd as root (it must refuse), then drops to the postgres user for
 * good: the tests and the pilotd they start must share a uid. */
static bool drop_root() {
    g_started_as_root = true;
    struct passwd *pw = getpwnam("postgres");
    if (pw == nullptr) {
        fprintf(stderr, "test_pilotd: running as root, but there is no \"postgres\" user to drop to\n");
        return false;
    }
    {
        /* pilotd as root, on a data directory owned by postgres */
        char dir[] = "/tmp/pilotd_root_test.XXXXXX";
        if (mkdtemp(dir) != nullptr) {
            if (chown(dir, pw->pw_uid, pw->pw_gid) != 0)
                perror("chown");
            std::string out = std::string(dir) + "/out";
            if (!g_pilotd.empty()) {
                RunResult r = run_sync({g_pilotd, "-D", dir, "--state-dir", std::string(dir) + "/state"}, out);
                g_root_run_status = r.status;
                g_root_run_output = r.output;
            }
            unlink(out.c_str());
            rmdir((std::string(dir) + "/state").c_str());
            rmdir(dir);
        }
    }
    if (setgroups(0, nullptr) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        perror("test_pilotd: cannot drop to the postgres user");
        return false;
    }
    if (getuid() == 0 || geteuid() == 0) {
        fprintf(stderr, "test_pilotd: still root after setuid\n");
        return false;
    }
    setenv("HOME", pw->pw_dir, 1);
    return true;
}

int main(int argc, char **argv) {
    g_pilotd = find_pilotd();
    if (getuid() == 0 || geteuid() == 0) {
        if (!drop_root())
            return 1;
    }
    ::testing::InitGoogleTest(&argc, argv);
    if (g_pilotd.empty())
        fprintf(stderr, "test_pilotd: pilotd binary not found (set PILOTD or build daemon/build/pilotd)\n");
    else
        fprintf(stderr, "test_pilotd: testing %s as uid %d\n", g_pilotd.c_str(), static_cast<int>(getuid()));
    return RUN_ALL_TESTS();
}
