#include "support/pulse_server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The rate/format/channels wzp uses, so nothing between a stream and its sink resamples. */
#define NULL_SINK_ARGS "rate=48000 format=s16le channels=1 channel_map=mono"

bool pulse_server_installed(void)
{
    return system("command -v pulseaudio >/dev/null 2>&1") == 0;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int pulse_server_pactl(const pulse_server *ps, char *out, size_t cap, const char *args)
{
    char cmd[512];
    /* XDG_RUNTIME_DIR is already ours (start set it); HOME matches the server's for the cookie. */
    snprintf(cmd, sizeof(cmd), "HOME='%s' pactl %s 2>&1", ps->dir, args);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char sink[256];
    size_t len = 0;
    while (fgets(sink, sizeof(sink), p)) {
        size_t l = strlen(sink);
        if (out && len + 1 < cap) {
            size_t c = l < cap - 1 - len ? l : cap - 1 - len;
            memcpy(out + len, sink, c);
            len += c;
        }
    }
    if (out && cap) {
        while (len && (out[len - 1] == '\n' || out[len - 1] == ' '))
            len--;
        out[len] = 0;
    }
    int st = pclose(p);
    return st < 0 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* parec on NAME.monitor at low latency, so the null sink stops rendering 2 s ahead. */
static void add_keeper(pulse_server *ps, const char *sink)
{
    if (ps->n_keepers >= sizeof(ps->keepers) / sizeof(ps->keepers[0]))
        return;
    char dev[200];
    snprintf(dev, sizeof(dev), "--device=%s.monitor", sink);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open("/dev/null", O_RDWR);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        setenv("HOME", ps->dir, 1);
        execlp("parec", "parec", dev, "--latency-msec=10", "--raw", (char *)NULL);
        _exit(127);
    }
    if (pid > 0)
        ps->keepers[ps->n_keepers++] = pid;
}

/* The null sink's first block (rendered before the keeper asked for less) is 2 s long. */
#define FIRST_BLOCK_MS 2100

int pulse_server_add_sink(pulse_server *ps, const char *name)
{
    char args[256], out[256];
    snprintf(args, sizeof(args), "load-module module-null-sink sink_name=%s %s", name,
             NULL_SINK_ARGS);
    if (pulse_server_pactl(ps, out, sizeof(out), args) != 0) {
        fprintf(stderr, "pactl %s: %s\n", args, out);
        return -1;
    }
    char *end = NULL;
    long idx = strtol(out, &end, 10);
    if (end == out || idx < 0)
        return -1;
    add_keeper(ps, name);
    sleep_ms(FIRST_BLOCK_MS);
    return (int)idx;
}

void pulse_server_signal(pulse_server *ps, int sig)
{
    if (ps->pid > 0)
        kill(ps->pid, sig);
}

void pulse_server_stop(pulse_server *ps)
{
    for (size_t i = 0; i < ps->n_keepers; i++) {
        kill(ps->keepers[i], SIGKILL);
        waitpid(ps->keepers[i], NULL, 0);
    }
    ps->n_keepers = 0;
    if (ps->pid > 0) {
        int status;
        kill(ps->pid, SIGTERM);
        bool reaped = false;
        for (int i = 0; i < 300 && !reaped; i++) {
            pid_t r = waitpid(ps->pid, &status, WNOHANG);
            reaped = r == ps->pid || (r < 0 && errno == ECHILD);
            if (!reaped)
                sleep_ms(10);
        }
        if (!reaped) {
            kill(ps->pid, SIGKILL);
            waitpid(ps->pid, &status, 0);
        }
        ps->pid = 0;
    }
    if (ps->dir[0]) {
        char cmd[256];
        if (getenv("WZP_PULSE_KEEP"))
            snprintf(cmd, sizeof(cmd), "cp '%s/server.log' /tmp/wzp-pulse-last.log; rm -rf '%s'",
                     ps->dir, ps->dir);
        else
            snprintf(cmd, sizeof(cmd), "rm -rf '%s'", ps->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "pulse_server: could not remove %s\n", ps->dir);
        ps->dir[0] = 0;
        if (ps->had_xdg)
            setenv("XDG_RUNTIME_DIR", ps->old_xdg, 1);
        else
            unsetenv("XDG_RUNTIME_DIR");
    }
    free(ps->old_xdg);
    ps->old_xdg = NULL;
}

static void print_log(const pulse_server *ps)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "tail -n 20 '%s/server.log' >&2", ps->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "(no server log)\n");
}

int pulse_server_start(pulse_server *ps, const char *const *sinks, size_t n,
                       const char *default_sink, const char *default_source)
{
    memset(ps, 0, sizeof(*ps));
    if (n > 8)
        return -1;
    snprintf(ps->dir, sizeof(ps->dir), "/tmp/wzp-pulse-XXXXXX");
    if (!mkdtemp(ps->dir)) {
        perror("mkdtemp");
        ps->dir[0] = 0;
        return -1;
    }
    chmod(ps->dir, 0700);
    const char *old = getenv("XDG_RUNTIME_DIR");
    ps->had_xdg = old != NULL;
    ps->old_xdg = old ? strdup(old) : NULL;
    setenv("XDG_RUNTIME_DIR", ps->dir, 1);

    char loads[8][160];
    char *argv[8 + 8 + 2] = {"pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1",
                             "--use-pid-file=no", "--disable-shm=yes", "--log-target=stderr",
                             /* Anonymous: the test's clients need no cookie. */
                             "--load=module-native-protocol-unix auth-anonymous=1"};
    int argc = 8;
    for (size_t i = 0; i < n; i++) {
        snprintf(loads[i], sizeof(loads[i]), "--load=module-null-sink sink_name=%s %s", sinks[i],
                 NULL_SINK_ARGS);
        argv[argc++] = loads[i];
    }
    if (getenv("WZP_PULSE_VERBOSE")) /* the server's debug log, in server.log */
        argv[argc++] = "-vvvv";
    argv[argc] = NULL;

    char logpath[96];
    snprintf(logpath, sizeof(logpath), "%s/server.log", ps->dir);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        pulse_server_stop(ps);
        return -1;
    }
    if (pid == 0) {
        /* Die with the test, however it ends. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        setenv("HOME", ps->dir, 1);
        execvp(argv[0], argv);
        _exit(127);
    }
    ps->pid = pid;

    /* Up when `pactl info` answers; bounded. */
    bool up = false;
    for (int i = 0; i < 100 && !up; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            ps->pid = 0;
            fprintf(stderr, "pulse_server: pulseaudio exited at start-up:\n");
            print_log(ps);
            pulse_server_stop(ps);
            return -1;
        }
        up = pulse_server_pactl(ps, NULL, 0, "info") == 0;
        if (!up)
            sleep_ms(100);
    }
    char args[200], out[256];
    int bad = !up;
    if (up && default_sink) {
        snprintf(args, sizeof(args), "set-default-sink %s", default_sink);
        bad |= pulse_server_pactl(ps, out, sizeof(out), args) != 0;
    }
    if (up && default_source) {
        snprintf(args, sizeof(args), "set-default-source %s", default_source);
        bad |= pulse_server_pactl(ps, out, sizeof(out), args) != 0;
    }
    for (size_t i = 0; up && i < n; i++)
        add_keeper(ps, sinks[i]);
    if (up)
        sleep_ms(FIRST_BLOCK_MS);
    if (bad) {
        fprintf(stderr, "pulse_server: server did not come up or refused defaults:\n");
        print_log(ps);
        pulse_server_stop(ps);
        return -1;
    }
    return 0;
}
