/* wzp devices: the microphones and speakers --input/--output can name. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/audio.h>

#include "commands.h"
#include "opts.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: wzp devices [--audio-backend pulse|alsa] [--json]\n"
                 "Lists the sound devices a call can use; '*' marks the defaults.\n");
}

static void json_text(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

int wzp_cmd_devices(int argc, char **argv)
{
    static const struct option opts[] = {
        {"audio-backend", required_argument, NULL, 'K'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *backend = NULL;
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'K':
            backend = optarg;
            break;
        case 'j':
            json = true;
            break;
        default:
            return wzp_opt_other(c, usage);
        }
    }
    int code = wzp_opt_no_operands("wzp devices", argc, argv);
    if (code)
        return code;
    if (backend && strcmp(backend, "pulse") && strcmp(backend, "alsa") && strcmp(backend, "auto")) {
        fprintf(stderr, "wzp devices: --audio-backend wants pulse or alsa, got '%s'\n", backend);
        return WZP_EXIT_USAGE;
    }
    enum { MAX = 256 };
    wzp_audio_device *devs = calloc(MAX, sizeof(*devs));
    if (!devs)
        return WZP_EXIT_FAILURE;
    const char *used = "none";
    int n = wzp_audio_list_devices(backend, devs, MAX, &used);
    if (n < 0) {
        fprintf(stderr,
                "wzp devices: no sound system: %s (no sound server answers and ALSA "
                "has no device)\n",
                wzp_strerror(n));
        free(devs);
        return WZP_EXIT_AUDIO;
    }
    if (n > MAX)
        n = MAX;
    for (int pass = 0; pass < 2; pass++) { /* inputs, then outputs */
        if (!json)
            printf("%s (%s):\n", pass == 0 ? "inputs" : "outputs", used);
        for (int i = 0; i < n; i++) {
            if (devs[i].input != (pass == 0))
                continue;
            if (json) {
                printf("{\"event\":\"device\",\"backend\":\"%s\",\"dir\":\"%s\",\"name\":", used,
                       pass == 0 ? "input" : "output");
                json_text(devs[i].name);
                printf(",\"description\":");
                json_text(devs[i].description);
                printf(",\"default\":%s}\n", devs[i].is_default ? "true" : "false");
            } else {
                printf("  %c %-40s %s\n", devs[i].is_default ? '*' : ' ', devs[i].name,
                       devs[i].description);
            }
        }
    }
    free(devs);
    return WZP_EXIT_OK;
}
