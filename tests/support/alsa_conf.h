/*
 * A private ALSA configuration for tests: a fresh temporary directory holding an asound.conf
 * written from a string, with ALSA_CONFIG_PATH pointing at it. alsa-lib reads its configuration
 * once, so this must come before any ALSA call. A self-contained configuration (no stock
 * alsa.conf: built-in plugin types need no pcm_type definitions) defines nothing but its own PCMs.
 */
#ifndef WZP_TESTS_ALSA_CONF_H
#define WZP_TESTS_ALSA_CONF_H

#include <stddef.h>

/* In a configuration, stands for the directory (e.g. `file "@DIR@/tap.raw"`). */
#define ALSA_CONF_DIR "@DIR@"

typedef struct alsa_conf {
    char dir[64]; /* /tmp/PREFIX-XXXXXX; empty before alsa_conf_make */
} alsa_conf;

/* Makes the directory /tmp/PREFIX-XXXXXX. 0, or -1. */
int alsa_conf_make(alsa_conf *ac, const char *prefix);

/* DIR/name into out. */
void alsa_conf_path(const alsa_conf *ac, char *out, size_t cap, const char *name);

/* Writes DIR/asound.conf from text, every ALSA_CONF_DIR in it replaced by the directory, and sets
   ALSA_CONFIG_PATH to that file. 0, or -1. */
int alsa_conf_write(const alsa_conf *ac, const char *text);

/* Removes the directory and everything in it. 0, or -1. */
int alsa_conf_remove(alsa_conf *ac);

/* A cmocka group teardown: alsa_conf_remove on the alsa_conf that group setup put in *state. */
int alsa_conf_teardown(void **state);

#endif
