/*
 * feedback_inject — a test tool: pushes hand-made feedback records into a
 * running pilotd's ring, as a broken backend could.  Used by
 * regress/fault/store_dead_letter.sh.
 *
 *   feedback_inject DATADIR SLOT
 * pushes, into slot SLOT (one no backend uses), four records:
 *   1 valid relation set (key 0x7e57000000000001, relations "inject_ok")
 *   1 with NaN actual rows
 *   1 of kind 99
 *   1 whose relation names are not UTF-8
 * and prints how many were accepted.
 */
#include "pilot_protocol.h"
#include "pilotd_client.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

using namespace pilot;
using namespace pilot::proto;

static FeedbackRecord relset(uint64_t key, double rows, const char *names) {
    FeedbackRecord r;
    memset(static_cast<void *>(&r), 0, sizeof r);
    r.key = key;
    r.template_key = key;
    r.native_rows = 10;
    r.pilot_rows = -1;
    r.actual_rows = rows;
    r.kind = FB_RELSET;
    r.nrels = 1;
    snprintf(r.relations, sizeof r.relations, "%s", names);
    return r;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s DATADIR SLOT\n", argv[0]);
        return 2;
    }
    PilotdClient c(segment_name_for_datadir(argv[1]), static_cast<uint32_t>(atoi(argv[2])), 1000000, 0);
    FeedbackRecord recs[4] = {
        relset(0x7e57000000000001ull, 42, "inject_ok"),
        relset(0x7e57000000000002ull, std::nan(""), "inject_nan"),
        relset(0x7e57000000000003ull, 7, "inject_kind"),
        relset(0x7e57000000000004ull, 7, "inject_"),
    };
    recs[2].kind = 99;
    recs[3].relations[7] = static_cast<char>(0xff); /* not UTF-8 */
    recs[3].relations[8] = '\0';
    uint32_t n = c.push_feedback(recs, 4);
    printf("accepted %u\n", n);
    return n == 4 ? 0 : 1;
}
