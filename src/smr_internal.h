/*
 * src/smr_internal.h -- test hooks of the SMR layer (not API, not installed).
 */
#ifndef CC_SMR_INTERNAL_H
#define CC_SMR_INTERNAL_H

#include <cc/smr.h>

#include <stdint.h>

/* From this call on, every `every`-th allocation of a limbo chunk (SMR
 * bookkeeping, from the C library) fails as if out of memory; 0 turns it off.
 * Any backend. Used to test that bookkeeping failures never lose a node. */
CC_API void cc__smr_fail_chunk_alloc(uint64_t every);

#ifdef CC_SMR_TEST_HOOKS
/* TEST ONLY (CMake CC_SMR_TEST_HOOKS): registers the caller if needed, loads
 * g_epoch and runs one asymmetric-mode revocation pass (revoke_idle) for it,
 * as a blocked reclaimer does. Does nothing in the fencing mode. */
CC_API void cc__smr_revoke_idle_now(void);
#endif

#endif /* CC_SMR_INTERNAL_H */
