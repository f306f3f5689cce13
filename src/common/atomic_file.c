#include "common/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "common/log.h"

int wzp_make_dirs(const char *dir)
{
    char path[PATH_MAX];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof(path))
        return WZP_ERR_INVALID;
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char saved = path[i];
        path[i] = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            WZP_ERROR("cannot create %s: %s", path, strerror(errno));
            return WZP_ERR_IO;
        }
        path[i] = saved;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        WZP_ERROR("%s is not a directory", dir);
        return WZP_ERR_IO;
    }
    return 0;
}

static int join(char *buf, size_t len, const char *dir, const char *name)
{
    int n = snprintf(buf, len, "%s/%s", dir, name);
    return (n < 0 || (size_t)n >= len) ? WZP_ERR_TOO_BIG : 0;
}

int wzp_write_atomic(const char *dir, const char *name, const void *data, size_t len, mode_t mode)
{
    char tmp[PATH_MAX], final[PATH_MAX];
    if (join(final, sizeof(final), dir, name) || join(tmp, sizeof(tmp), dir, ".tmp-XXXXXX"))
        return WZP_ERR_TOO_BIG;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        WZP_ERROR("cannot create a file in %s: %s", dir, strerror(errno));
        return WZP_ERR_IO;
    }
    int rc = 0, err = 0;
    size_t off = 0;
    if (fchmod(fd, mode) != 0)
        rc = WZP_ERR_IO;
    while (rc == 0 && off < len) {
        ssize_t w = write(fd, (const uint8_t *)data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            rc = WZP_ERR_IO;
        else
            off += (size_t)w;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = WZP_ERR_IO;
    if (rc)
        err = errno;
    if (close(fd) != 0 && !rc) {
        rc = WZP_ERR_IO;
        err = errno;
    }
    if (rc == 0 && rename(tmp, final) != 0) {
        rc = WZP_ERR_IO;
        err = errno;
    }
    if (rc != 0) {
        WZP_ERROR("cannot write %s: %s", final, strerror(err));
        unlink(tmp);
        errno = err;
        return rc;
    }
    /* The rename is durable once the directory is on disk; best effort (not every
     * filesystem takes fsync on a directory). */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
}

int wzp_read_small_file(const char *dir, const char *name, size_t max, uint8_t **out, size_t *len)
{
    char path[PATH_MAX];
    if (join(path, sizeof(path), dir, name))
        return WZP_ERR_TOO_BIG;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? WZP_ERR_NOT_FOUND : WZP_ERR_IO;
    uint8_t *buf = malloc(max + 1);
    if (!buf) {
        close(fd);
        return WZP_ERR_NOMEM;
    }
    size_t n = 0;
    int rc = 0;
    for (;;) {
        /* One byte past max tells an over-long file from one exactly max long. */
        ssize_t r = read(fd, buf + n, max + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = WZP_ERR_IO;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max) {
            rc = WZP_ERR_TOO_BIG;
            break;
        }
    }
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int wzp_lock_state_file(const char *dir, const char *name)
{
    int rc = wzp_make_dirs(dir);
    if (rc < 0)
        return rc;
    char lock[PATH_MAX];
    int n = snprintf(lock, sizeof(lock), "%s/%s.lock", dir, name);
    if (n < 0 || (size_t)n >= sizeof(lock))
        return WZP_ERR_TOO_BIG;
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return WZP_ERR_IO;
    while (flock(fd, LOCK_EX) != 0)
        if (errno != EINTR) {
            close(fd);
            return WZP_ERR_IO;
        }
    return fd;
}
