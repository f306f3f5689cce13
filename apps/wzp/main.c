/* wzp: the client command line. A table maps subcommand names to handlers. */
#include <stdio.h>
#include <string.h>

#include <wzp/wzp.h>

#include "commands.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"id", wzp_cmd_id, "show (creating on first use) your identity fingerprint"},
    {"listen", wzp_cmd_listen, "stay registered with a relay and take calls one after another"},
    {"call", wzp_cmd_call, "call a peer (fingerprint or alias) through a relay"},
    {"reflect", wzp_cmd_reflect, "print the address the relay sees you at"},
    {"contacts", wzp_cmd_contacts, "add, list, rename, remove contacts (names for pinned keys)"},
    {"history", wzp_cmd_history, "list recent calls: time, peer, outcome, duration, quality"},
    {"invite", wzp_cmd_invite, "print a line (and QR code) a friend can call you with"},
    {"doctor", wzp_cmd_doctor, "check what this network allows: UDP, relay RTT, NAT type, IPv6"},
    {"devices", wzp_cmd_devices, "list microphones and speakers (for --input/--output)"},
    {"config", wzp_cmd_config, "show the settings in effect and where each comes from"},
    {"demo", wzp_cmd_demo, "relay + two clients on loopback: one call, which path, audio check"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: wzp [--help] [--version] COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'wzp COMMAND --help' for a command's options.\n\n%s", WZP_EXIT_HELP);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return WZP_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        usage(stdout);
        return WZP_EXIT_OK;
    }
    if (!strcmp(name, "--version")) {
        printf("wzp %s\n", WZP_VERSION_STRING);
        return WZP_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(name, commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "wzp: unknown command '%s'\n\n", name);
    usage(stderr);
    return WZP_EXIT_USAGE;
}
