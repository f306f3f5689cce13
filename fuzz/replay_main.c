/*
 * Without libFuzzer (gcc builds), each fuzz target still runs: this driver
 * feeds it every file of its seed corpus, plus a few edge-case inputs, so the
 * ordinary test suite catches regressions on known inputs.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    uint8_t *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, 1 << 20, f) : 0;
    fclose(f);
    if (!buf)
        return -1;
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    size_t files = 0;
    uint8_t edge[4096] = {0};
    /* Edge cases every parser must survive: empty, tiny, all-zero, all-ones, counting. */
    LLVMFuzzerTestOneInput(edge, 0);
    for (size_t n = 1; n <= sizeof(edge); n *= 2) {
        memset(edge, 0, n);
        LLVMFuzzerTestOneInput(edge, n);
        memset(edge, 0xff, n);
        LLVMFuzzerTestOneInput(edge, n);
        for (size_t i = 0; i < n; i++)
            edge[i] = (uint8_t)i;
        LLVMFuzzerTestOneInput(edge, n);
    }
    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        if (!d) {
            if (run_file(argv[i]) == 0)
                files++;
            continue;
        }
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
            if (run_file(path) == 0)
                files++;
        }
        closedir(d);
    }
    printf("replayed %zu corpus files and the edge cases\n", files);
    return 0;
}
