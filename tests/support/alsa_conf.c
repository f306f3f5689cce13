#include "support/alsa_conf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int alsa_conf_make(alsa_conf *ac, const char *prefix)
{
    snprintf(ac->dir, sizeof(ac->dir), "/tmp/%s-XXXXXX", prefix);
    if (!mkdtemp(ac->dir)) {
        ac->dir[0] = '\0';
        return -1;
    }
    return 0;
}

void alsa_conf_path(const alsa_conf *ac, char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", ac->dir, name);
}

int alsa_conf_write(const alsa_conf *ac, const char *text)
{
    char p[128];
    alsa_conf_path(ac, p, sizeof(p), "asound.conf");
    FILE *f = fopen(p, "w");
    if (!f)
        return -1;
    const size_t mark = strlen(ALSA_CONF_DIR);
    for (const char *at; (at = strstr(text, ALSA_CONF_DIR)); text = at + mark) {
        fwrite(text, 1, (size_t)(at - text), f);
        fputs(ac->dir, f);
    }
    fputs(text, f);
    if (fclose(f) != 0)
        return -1;
    return setenv("ALSA_CONFIG_PATH", p, 1);
}

int alsa_conf_remove(alsa_conf *ac)
{
    if (!ac->dir[0])
        return 0;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", ac->dir);
    int rc = system(cmd) == 0 ? 0 : -1;
    ac->dir[0] = '\0';
    return rc;
}

int alsa_conf_teardown(void **state)
{
    return *state ? alsa_conf_remove(*state) : 0; /* NULL: setup failed before making it */
}
