#include "support/proc_cpu.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

uint64_t wzp_proc_cpu_ns(pid_t pid, const char *prefix)
{
    char path[128];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    uint64_t sum = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p[320], buf[64] = {0};
        if (prefix) {
            snprintf(p, sizeof(p), "/proc/%d/task/%s/comm", (int)pid, e->d_name);
            FILE *f = fopen(p, "r");
            if (!f)
                continue;
            bool ok = fgets(buf, sizeof(buf), f) && strncmp(buf, prefix, strlen(prefix)) == 0;
            fclose(f);
            if (!ok)
                continue;
        }
        snprintf(p, sizeof(p), "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
        FILE *f = fopen(p, "r");
        if (!f)
            continue;
        unsigned long long v = 0;
        if (fscanf(f, "%llu", &v) == 1)
            sum += v;
        fclose(f);
    }
    closedir(d);
    return sum;
}
