/*
 * wzp subcommands. Each lives in cmd_NAME.c as `int wzp_cmd_NAME(int argc,
 * char **argv)` (argv[0] is the command name) and is listed in main.c's table.
 * Commands return one of the exit codes below.
 */
#ifndef WZP_APP_COMMANDS_H
#define WZP_APP_COMMANDS_H

enum {
    WZP_EXIT_OK = 0,
    WZP_EXIT_FAILURE = 1,  /* anything not covered below */
    WZP_EXIT_USAGE = 2,    /* bad command line */
    WZP_EXIT_IDENTITY = 3, /* identity missing, unreadable or not creatable */
};

int wzp_cmd_id(int argc, char **argv);

#endif
