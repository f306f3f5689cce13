/*
 * Interop with coturn, the reference STUN/TURN server, on loopback:
 *  (a) our client gets the right mapped address from `turnserver --stun-only`;
 *  (b) coturn's `turnutils_stunclient` parses the answer of our responder.
 * Exits 77 (skipped, reason printed) when coturn's binaries are not installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "ice/stun_client.h"
#include "net/clock.h"
#include "net/loop.h"
#include "net/udp.h"
#include "support/stun_loop.h"

static bool in_path(const char *name)
{
    const char *path = getenv("PATH");
    char buf[4096];
    if (!path)
        path = "/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && n < sizeof(buf) - strlen(name) - 2) {
            snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, name);
            if (access(buf, X_OK) == 0)
                return true;
        }
        path += n;
        if (*path == ':')
            path++;
    }
    return false;
}

/* Starts argv with stdout (and stderr) going to out_fd, or /dev/null when out_fd < 0. */
static pid_t spawn(char *const argv[], int out_fd)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = out_fd >= 0 ? out_fd : open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Stops our own child: SIGTERM, up to 5 s, then SIGKILL. Returns its wait status. */
static int stop_child(pid_t pid)
{
    int status = 0;
    kill(pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return status;
}

static char tmpdir[64];

static int make_tmpdir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/wzp-stun-coturn-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int remove_tmpdir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* (a) turnserver --stun-only answers our client with our own address. */
static void test_our_client_vs_coturn(void **state)
{
    (void)state;
    int port = stun_free_udp_port("127.0.0.1");
    assert_true(port > 0);
    char port_arg[64], log_arg[128], pid_arg[128], db_arg[128];
    snprintf(port_arg, sizeof(port_arg), "--listening-port=%d", port);
    snprintf(log_arg, sizeof(log_arg), "--log-file=%s/turnserver.log", tmpdir);
    snprintf(pid_arg, sizeof(pid_arg), "--pidfile=%s/turnserver.pid", tmpdir);
    snprintf(db_arg, sizeof(db_arg), "--db=%s/turndb", tmpdir);
    char *argv[] = {
        "turnserver", "-n",        "--stun-only",  "--listening-ip=127.0.0.1", port_arg, "--no-cli",
        "--no-tls",   "--no-dtls", "--simple-log", "--no-stdout-log",          log_arg,  pid_arg,
        db_arg,       NULL};
    pid_t pid = spawn(argv, -1);

    wzp_loop *loop = NULL;
    assert_int_equal(wzp_loop_new(&loop), 0);
    wzp_addr any, local, server;
    assert_int_equal(wzp_addr_parse(&any, "127.0.0.1:0", false), 0);
    int fd = wzp_udp_open(&any, NULL, &local);
    assert_true(fd >= 0);
    assert_int_equal(wzp_addr_parse(&server, "127.0.0.1:0", false), 0);
    wzp_addr_set_port(&server, (uint16_t)port);

    /* Quick retransmissions ride over the server's start-up. */
    wzp_stun_config cfg;
    wzp_stun_config_default(&cfg);
    cfg.rto = WZP_MS(50);
    cfg.max_tx = 9;
    cfg.final_wait = 8;
    cfg.software = "wzp test";
    wzp_stun_txn t;
    assert_int_equal(wzp_stun_txn_start(&t, &cfg, &server, wzp_now()), 0);
    int rv = stun_loop_run_txns(loop, fd, &t, 1, WZP_SEC(20));

    int status = stop_child(pid);
    close(fd);
    wzp_loop_free(loop);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        fail_msg("turnserver could not be started");
    assert_int_equal(rv, 0);
    assert_int_equal(t.state, WZP_STUN_TXN_DONE);
    char got[WZP_ADDR_STRLEN], want[WZP_ADDR_STRLEN];
    print_message("coturn saw us as %s (local %s)\n", wzp_addr_format(&t.mapped, got, sizeof(got)),
                  wzp_addr_format(&local, want, sizeof(want)));
    assert_true(wzp_addr_equal(&t.mapped, &local));
}

/* (b) turnutils_stunclient reads our responder's answer. */
typedef struct child_out {
    wzp_io io;
    char text[4096];
    size_t len;
} child_out;

static void on_child_output(wzp_loop *loop, wzp_io *io, unsigned events)
{
    child_out *c = io->arg;
    ssize_t n = read(io->fd, c->text + c->len, sizeof(c->text) - 1 - c->len);
    if (n > 0) {
        c->len += (size_t)n;
        c->text[c->len] = '\0';
        if (c->len < sizeof(c->text) - 1)
            return;
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    /* EOF (the client exited), error, or full. */
    wzp_io_stop(loop, io);
    wzp_loop_stop(loop);
}

static void on_deadline(wzp_loop *loop, wzp_timer *t)
{
    *(bool *)t->arg = true;
    wzp_loop_stop(loop);
}

static void test_coturn_client_vs_our_responder(void **state)
{
    (void)state;
    if (!in_path("turnutils_stunclient")) {
        print_message("turnutils_stunclient not installed\n");
        skip();
    }
    wzp_loop *loop = NULL;
    assert_int_equal(wzp_loop_new(&loop), 0);
    stun_responder r;
    assert_int_equal(stun_responder_open(loop, &r, "127.0.0.1:0"), 0);

    int pipefd[2];
    assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
    char port_arg[16];
    snprintf(port_arg, sizeof(port_arg), "%u", wzp_addr_port(&r.addr));
    char *argv[] = {"turnutils_stunclient", "-p", port_arg, "127.0.0.1", NULL};
    pid_t pid = spawn(argv, pipefd[1]);
    close(pipefd[1]);
    fcntl(pipefd[0], F_SETFL, O_NONBLOCK);

    child_out out = {.len = 0};
    out.text[0] = '\0';
    wzp_io_init(&out.io, on_child_output, &out);
    assert_int_equal(wzp_io_start(loop, &out.io, pipefd[0], WZP_IO_READ), 0);
    bool timed_out = false;
    wzp_timer deadline;
    wzp_timer_init(&deadline, on_deadline, &timed_out);
    wzp_timer_start(loop, &deadline, wzp_now() + WZP_SEC(20));
    assert_int_equal(wzp_loop_run(loop), 0);

    int status = stop_child(pid);
    wzp_io_stop(loop, &out.io);
    close(pipefd[0]);
    stun_responder_close(loop, &r);
    wzp_loop_free(loop);

    print_message("turnutils_stunclient said:\n%s", out.text);
    assert_false(timed_out);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(r.answered >= 1);
    /* It must print the address we saw it from, i.e. it decoded our XOR-MAPPED-ADDRESS. */
    char want[WZP_ADDR_STRLEN + 32];
    char addr[WZP_ADDR_STRLEN];
    snprintf(want, sizeof(want), "UDP reflexive addr: %s",
             wzp_addr_format(&r.last_from, addr, sizeof(addr)));
    assert_non_null(strstr(out.text, want));
}

int main(void)
{
    if (!in_path("turnserver")) {
        printf("SKIP: coturn's turnserver is not installed (Debian package coturn)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_our_client_vs_coturn),
        cmocka_unit_test(test_coturn_client_vs_our_responder),
    };
    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
