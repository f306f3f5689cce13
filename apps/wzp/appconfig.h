/*
 * The settings file ($WZP_HOME/config, src/phone/config.h) as the commands
 * use it. Precedence: file < environment (WZP_RELAY, WZP_RELAY_PIN) < flags.
 */
#ifndef WZP_APP_APPCONFIG_H
#define WZP_APP_APPCONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <wzp/client.h>

#include "phone/config.h"
#include "session.h"

/*
 * Loads HOME/config (home: --home, else the default directory) into *pc and
 * its path into path: 0 (a missing file is an empty one), or prints
 * "wzp: PATH:LINE: what is wrong" and returns WZP_EXIT_CONFIG.
 */
int app_config_load(const char *home, wzp_phone_config *pc, char *path, size_t pathlen);

/*
 * Fills what the flags left unset: relay and relay pin from the environment,
 * else the file; alias, sound devices and processing from the file; with
 * listen, auto_answer. pc must outlive cfg and so (they point into it).
 * 0 or an exit code (message printed).
 */
int app_config_apply(const wzp_phone_config *pc, wzp_client_config *cfg, session_opts *so,
                     bool listen);

#endif
