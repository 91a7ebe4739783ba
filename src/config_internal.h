/*
 * Library-internal view of the configuration (not installed).
 *
 * cc__config_retire_threshold is the setting behind
 * cc_config_retire_threshold(). Hot paths (SMR's retire) read it directly
 * with a relaxed load instead of calling the getter, which runs pthread_once
 * on every call. Valid only after cc_config_retire_threshold() has been
 * called once in the process (SMR does so when it registers a thread), so
 * that the environment has been applied.
 */
#ifndef CC_CONFIG_INTERNAL_H
#define CC_CONFIG_INTERNAL_H

#include <cc/config.h>

#include <stdatomic.h>

__attribute__((visibility("hidden"))) extern atomic_size_t cc__config_retire_threshold;

/* Applies the environment, fixes the SMR fence mode (later setter calls fail
 * with EBUSY) and returns it. Called by SMR's one-time initialisation. */
__attribute__((visibility("hidden"))) cc_smr_fence_t cc__config_smr_fence_freeze(void);

#endif
