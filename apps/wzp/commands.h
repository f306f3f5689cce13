/*
 * wzp subcommands. Each lives in cmd_NAME.c as `int wzp_cmd_NAME(int argc,
 * char **argv)` (argv[0] is the command name) and is listed in main.c's table.
 * Commands return one of the exit codes below.
 */
#ifndef WZP_APP_COMMANDS_H
#define WZP_APP_COMMANDS_H

enum {
    WZP_EXIT_OK = 0,
    WZP_EXIT_FAILURE = 1,        /* anything not covered below */
    WZP_EXIT_USAGE = 2,          /* bad command line */
    WZP_EXIT_IDENTITY = 3,       /* identity missing, unreadable or not creatable */
    WZP_EXIT_UNREACHABLE = 4,    /* the relay did not answer (or the connection to it was lost) */
    WZP_EXIT_RELAY_PIN = 5,      /* the relay presented another key than --relay-pin */
    WZP_EXIT_PEER_UNAVAIL = 6,   /* unknown alias or fingerprint, or the peer is offline */
    WZP_EXIT_REJECTED = 7,       /* the peer rejected the call (or was busy) */
    WZP_EXIT_AUDIO = 8,          /* an audio file could not be read or written, or no such device */
    WZP_EXIT_HANGUP = 9,         /* the peer hung up first (wzp call) */
    WZP_EXIT_MITM = 10,          /* the peer's key is not the one that was called or announced */
    WZP_EXIT_MISMATCH = 11,      /* wzp demo: what was recorded does not match what was sent */
    WZP_EXIT_CALL_FAILED = 12,   /* the call failed otherwise (no answer, timeout, lost) */
    WZP_EXIT_ALIAS_TAKEN = 13,   /* the relay binds the --alias to another key */
    WZP_EXIT_REPLACED = 14,      /* another client signed in with this identity */
    WZP_EXIT_PEER_GONE = 15,     /* the peer stopped answering mid-call */
    WZP_EXIT_RELAY_FULL = 16,    /* the relay takes no more registrations (from this address) */
    WZP_EXIT_CONFIG = 17,        /* the settings file ($WZP_HOME/config) is invalid or unreadable */
    WZP_EXIT_NO_CONTACT = 18,    /* no contact by that name */
    WZP_EXIT_CONTACTS_FILE = 19, /* the contacts file is damaged or cannot be written */
    WZP_EXIT_BAD_INVITE = 20,    /* not an invite, damaged, or an unsupported version */
    WZP_EXIT_CONTACT_EXISTS = 21, /* the name is taken, or the key is stored under another */
    WZP_EXIT_HISTORY_FILE = 22,   /* the history file is damaged or unreadable */
    WZP_EXIT_KEY_CHANGED = 23,    /* a contact's key is offline; the relay has another for it */
};

/* The exit-code table printed by `wzp --help`. */
#define WZP_EXIT_HELP                                                                              \
    "exit codes:\n"                                                                                \
    "   0  success\n"                                                                              \
    "   1  other failure\n"                                                                        \
    "   2  bad command line\n"                                                                     \
    "   3  identity missing, unreadable or not creatable\n"                                        \
    "   4  relay unreachable (or the connection to it was lost)\n"                                 \
    "   5  wrong relay pin: the relay presented another key\n"                                     \
    "   6  unknown or offline peer\n"                                                              \
    "   7  call rejected (or peer busy)\n"                                                         \
    "   8  audio file unreadable or unwritable, or no such sound device\n"                         \
    "   9  the peer hung up first (wzp call)\n"                                                    \
    "  10  possible man-in-the-middle: the peer's key is not the one you called\n"                 \
    "  11  wzp demo: recorded audio does not match what was sent\n"                                \
    "  12  the call failed otherwise (unanswered, timed out, connection lost)\n"                   \
    "  13  alias taken: the relay binds it to another key\n"                                       \
    "  14  signed in elsewhere: another client registered this identity\n"                         \
    "  15  the peer stopped answering (peer unreachable)\n"                                        \
    "  16  relay full: it takes no more registrations (from this address)\n"                       \
    "  17  config file invalid or unreadable ($WZP_HOME/config; the message names the line)\n"     \
    "  18  no such contact\n"                                                                      \
    "  19  contacts file damaged (the line is named) or not writable\n"                            \
    "  20  bad invite: not an invite, damaged (checksum) or an unsupported version\n"              \
    "  21  contact exists: the name is taken or the key is stored under another name\n"            \
    "  22  history file damaged (the line is named) or unreadable\n"                               \
    "  23  contact's key changed: it is offline and the relay has another key for its alias\n"

int wzp_cmd_id(int argc, char **argv);
int wzp_cmd_listen(int argc, char **argv);
int wzp_cmd_call(int argc, char **argv);
int wzp_cmd_reflect(int argc, char **argv);
int wzp_cmd_demo(int argc, char **argv);
int wzp_cmd_devices(int argc, char **argv);
int wzp_cmd_config(int argc, char **argv);
int wzp_cmd_contacts(int argc, char **argv);
int wzp_cmd_invite(int argc, char **argv);
int wzp_cmd_history(int argc, char **argv);
int wzp_cmd_doctor(int argc, char **argv);

#endif
