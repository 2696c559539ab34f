/*
 * feedback_batch.h — one drain round's execution feedback: what the
 * shared-memory server takes out of the backends' rings and hands on, and
 * what the spool writes to disk.  A view of the server's buffers, valid
 * during the call it is passed to.
 */
#ifndef PILOTD_FEEDBACK_BATCH_H
#define PILOTD_FEEDBACK_BATCH_H

#include "pilot_protocol.h"

#include <cstdint>

namespace pilotd {

struct FeedbackBatch {
    const pilot::proto::FeedbackRecord *rec; /* valid records */
    uint32_t n;
    const pilot::proto::FeedbackRecord *dead; /* records that failed feedback_check() */
    const uint32_t *dead_reason;               /* their FeedbackCheck */
    uint32_t ndead;
};

} // namespace pilotd

#endif
