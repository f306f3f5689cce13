/*
 * Small state files (contacts, identity): written so that a reader sees the
 * old file or the complete new one, never a torn one, and read with a size
 * limit so a huge or endless file cannot exhaust memory.
 */
#ifndef WZP_COMMON_ATOMIC_FILE_H
#define WZP_COMMON_ATOMIC_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* mkdir -p, mode 0700 for every component created. 0 or WZP_ERR_IO / WZP_ERR_INVALID. */
int wzp_make_dirs(const char *dir);

/* Writes data to dir/name through a temp file in dir, fsync, rename and an fsync of dir.
 * 0, WZP_ERR_IO (errno kept) or WZP_ERR_TOO_BIG (path too long). */
int wzp_write_atomic(const char *dir, const char *name, const void *data, size_t len, mode_t mode);

/* Reads dir/name whole (at most max bytes; NUL-terminated for convenience, not counted).
 * 0, WZP_ERR_NOT_FOUND, WZP_ERR_TOO_BIG (over max) or WZP_ERR_IO. Free *out with free(). */
int wzp_read_small_file(const char *dir, const char *name, size_t max, uint8_t **out, size_t *len);

/* Takes an exclusive lock on dir/name.lock (created if missing; dir made with wzp_make_dirs)
 * for a read-change-write of dir/name: a separate file, since dir/name itself is replaced by
 * rename and a lock on it would be on the old inode. The fd (close it to unlock), or
 * WZP_ERR_IO / WZP_ERR_TOO_BIG / WZP_ERR_INVALID. */
int wzp_lock_state_file(const char *dir, const char *name);

#endif
