/*
 * An LD_PRELOAD shim for tests/crash_states.rs: records, in the order they happen, what
 * the relay writes under $CRASH_SHIM_ROOT, what it makes durable there, and when it
 * acknowledges an event (an "HTTP/1.1 202" written to a socket). The test rebuilds the
 * files as a power cut at each acknowledgement would leave them, from this log alone.
 *
 * One mutex orders every recorded call with its log entry, so the log's order is the
 * order the calls took effect. A sync is recorded with the log position at which it
 * started: only what was logged before that is durable by it (a write that races the
 * sync may or may not be). Directories are assumed to exist, durably (mkdir is not
 * followed); only files are. Writes through mmap or raw syscalls are not followed
 * either: the relay and sled make none under the outbox.
 *
 * Log entry: op (1 byte), path length (u32), path, a (u64), b (u64), b data bytes for
 * 'W' and 'R' (the new path) only. Little-endian, as the host.
 *   W path a=offset b=len data   bytes written at offset
 *   T path a=len                 truncated or extended to len
 *   C path                       created (it did not exist before)
 *   S path a=start               fsync or fdatasync of a file, begun at log entry start
 *   D path a=start               fsync of a directory, begun at log entry start
 *   R path b=len data=new path   renamed
 *   U path                       unlinked
 *   A                            an HTTP 202 about to be written to a socket
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int log_fd = -1;
static uint64_t entries;
static const char *root;
static size_t root_len;

#define REAL(name, ret, ...)                                                   \
    static ret (*real_##name)(__VA_ARGS__);                                    \
    if (!real_##name)                                                          \
        real_##name = (ret (*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name);

static void init_once(void) {
    root = getenv("CRASH_SHIM_ROOT");
    root_len = root ? strlen(root) : 0;
    const char *path = getenv("CRASH_SHIM_LOG");
    if (path) {
        REAL(open, int, const char *, int, ...);
        log_fd = real_open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    }
}

/* Every thread sees the root and the log set up before its first call goes through. */
static void init(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_once);
}

/* Write all of buf to the log with the real write; abort on failure (a lost entry would
 * make the test's verdict wrong). */
static void put(const void *buf, size_t len) {
    REAL(write, ssize_t, int, const void *, size_t);
    const char *p = buf;
    while (len > 0) {
        ssize_t n = real_write(log_fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            abort();
        p += n;
        len -= (size_t)n;
    }
}

static void entry(char op, const char *path, uint64_t a, const void *data, uint64_t b) {
    uint32_t plen = path ? (uint32_t)strlen(path) : 0;
    put(&op, 1);
    put(&plen, 4);
    if (plen)
        put(path, plen);
    put(&a, 8);
    put(&b, 8);
    if (data && b)
        put(data, b);
    entries++;
}

/* The root itself or a path below it (not a sibling that shares its prefix). */
static int watched(const char *path) {
    return log_fd >= 0 && root_len && strncmp(path, root, root_len) == 0 &&
           (path[root_len] == '/' || path[root_len] == 0);
}

/* The path of fd, if it is a file or directory under the root. */
static int fd_path(int fd, char *out, struct stat *st) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, PATH_MAX - 1);
    if (n <= 0)
        return 0;
    out[n] = 0;
    /* An unlinked file's link reads "PATH (deleted)": nothing the rebuilt outbox holds. */
    static const char deleted[] = " (deleted)";
    size_t d = sizeof deleted - 1;
    if ((size_t)n >= d && strcmp(out + n - d, deleted) == 0)
        return 0;
    return watched(out) && fstat(fd, st) == 0;
}

static int is_ack(const void *buf, size_t len) {
    static const char ack[] = "HTTP/1.1 202";
    return len >= sizeof ack - 1 && memcmp(buf, ack, sizeof ack - 1) == 0;
}

/* Absolute path of `path` relative to dirfd (AT_FDCWD or a directory). */
static void absolute(int dirfd, const char *path, char *out) {
    if (path[0] == '/') {
        if (snprintf(out, PATH_MAX, "%s", path) >= PATH_MAX)
            out[0] = 0;
        return;
    }
    char base[PATH_MAX] = ".";
    if (dirfd == AT_FDCWD) {
        if (!getcwd(base, sizeof base))
            base[0] = 0;
    } else {
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
        ssize_t n = readlink(link, base, sizeof base - 1);
        base[n > 0 ? n : 0] = 0;
    }
    /* A path too long to hold is not under the root (it is never followed). */
    if (snprintf(out, PATH_MAX, "%s/%s", base, path) >= PATH_MAX)
        out[0] = 0;
}

static int opened(int dirfd, const char *path, int flags, mode_t mode, int at) {
    REAL(open, int, const char *, int, ...);
    REAL(openat64, int, int, const char *, int, ...);
    init();
    char abs[PATH_MAX];
    absolute(dirfd, path, abs);
    if (!(flags & (O_CREAT | O_TRUNC)) || !watched(abs))
        return at ? real_openat64(dirfd, path, flags, mode) : real_open(path, flags, mode);
    pthread_mutex_lock(&lock);
    int existed = access(abs, F_OK) == 0;
    int fd = at ? real_openat64(dirfd, path, flags, mode) : real_open(path, flags, mode);
    if (fd >= 0 && !existed && (flags & O_CREAT))
        entry('C', abs, 0, NULL, 0);
    else if (fd >= 0 && existed && (flags & O_TRUNC))
        entry('T', abs, 0, NULL, 0);
    pthread_mutex_unlock(&lock);
    return fd;
}

static mode_t mode_arg(int flags, va_list ap) {
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return opened(AT_FDCWD, path, flags, mode, 0);
}

/* The same function under glibc's large-file name, which the binary also imports. */
int open64(const char *path, int flags, ...) __attribute__((alias("open")));

int openat64(int dirfd, const char *path, int flags, ...) {
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    return opened(dirfd, path, flags, mode, 1);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t offset) {
    REAL(pwrite64, ssize_t, int, const void *, size_t, off_t);
    init();
    char path[PATH_MAX];
    struct stat st;
    if (!fd_path(fd, path, &st) || !S_ISREG(st.st_mode))
        return real_pwrite64(fd, buf, len, offset);
    pthread_mutex_lock(&lock);
    ssize_t n = real_pwrite64(fd, buf, len, offset);
    if (n > 0)
        entry('W', path, (uint64_t)offset, buf, (uint64_t)n);
    pthread_mutex_unlock(&lock);
    return n;
}

/* A write at the file's offset (the end with O_APPEND). */
static ssize_t file_write(int fd, const char *path, const void *buf, size_t len) {
    REAL(write, ssize_t, int, const void *, size_t);
    pthread_mutex_lock(&lock);
    off_t at = (fcntl(fd, F_GETFL) & O_APPEND) ? lseek(fd, 0, SEEK_END) : lseek(fd, 0, SEEK_CUR);
    ssize_t n = real_write(fd, buf, len);
    if (n > 0)
        entry('W', path, (uint64_t)at, buf, (uint64_t)n);
    pthread_mutex_unlock(&lock);
    return n;
}

static void maybe_ack(const void *buf, size_t len) {
    if (log_fd >= 0 && is_ack(buf, len)) {
        pthread_mutex_lock(&lock);
        entry('A', NULL, 0, NULL, 0);
        pthread_mutex_unlock(&lock);
    }
}

ssize_t write(int fd, const void *buf, size_t len) {
    REAL(write, ssize_t, int, const void *, size_t);
    init();
    char path[PATH_MAX];
    struct stat st;
    if (fd != log_fd && fd_path(fd, path, &st) && S_ISREG(st.st_mode))
        return file_write(fd, path, buf, len);
    if (fd != log_fd)
        maybe_ack(buf, len);
    return real_write(fd, buf, len);
}

ssize_t writev(int fd, const struct iovec *iov, int count) {
    REAL(writev, ssize_t, int, const struct iovec *, int);
    init();
    char path[PATH_MAX];
    struct stat st;
    if (fd_path(fd, path, &st) && S_ISREG(st.st_mode)) {
        /* Files under the root are not written vectored by the relay; say so loudly. */
        fprintf(stderr, "crash_shim: writev to %s is not followed\n", path);
        abort();
    }
    if (count > 0)
        maybe_ack(iov[0].iov_base, iov[0].iov_len);
    return real_writev(fd, iov, count);
}

ssize_t send(int fd, const void *buf, size_t len, int flags) {
    REAL(send, ssize_t, int, const void *, size_t, int);
    init();
    maybe_ack(buf, len);
    return real_send(fd, buf, len, flags);
}

static int synced(int fd, int (*real)(int)) {
    init();
    char path[PATH_MAX];
    struct stat st;
    if (!fd_path(fd, path, &st))
        return real(fd);
    pthread_mutex_lock(&lock);
    uint64_t start = entries;
    pthread_mutex_unlock(&lock);
    int r = real(fd);
    if (r == 0) {
        pthread_mutex_lock(&lock);
        entry(S_ISDIR(st.st_mode) ? 'D' : 'S', path, start, NULL, 0);
        pthread_mutex_unlock(&lock);
    }
    return r;
}

int fsync(int fd) {
    REAL(fsync, int, int);
    return synced(fd, real_fsync);
}

int fdatasync(int fd) {
    REAL(fdatasync, int, int);
    return synced(fd, real_fdatasync);
}

int ftruncate64(int fd, off_t len) {
    REAL(ftruncate64, int, int, off_t);
    init();
    char path[PATH_MAX];
    struct stat st;
    if (!fd_path(fd, path, &st) || !S_ISREG(st.st_mode))
        return real_ftruncate64(fd, len);
    pthread_mutex_lock(&lock);
    int r = real_ftruncate64(fd, len);
    if (r == 0)
        entry('T', path, (uint64_t)len, NULL, 0);
    pthread_mutex_unlock(&lock);
    return r;
}

int rename(const char *from, const char *to) {
    REAL(rename, int, const char *, const char *);
    init();
    char a[PATH_MAX], b[PATH_MAX];
    absolute(AT_FDCWD, from, a);
    absolute(AT_FDCWD, to, b);
    if (!watched(a) && !watched(b))
        return real_rename(from, to);
    pthread_mutex_lock(&lock);
    int r = real_rename(from, to);
    if (r == 0)
        entry('R', a, 0, b, strlen(b));
    pthread_mutex_unlock(&lock);
    return r;
}

static int removed(int dirfd, const char *path, int flags) {
    REAL(unlinkat, int, int, const char *, int);
    init();
    char abs[PATH_MAX];
    absolute(dirfd, path, abs);
    if ((flags & AT_REMOVEDIR) || !watched(abs))
        return real_unlinkat(dirfd, path, flags);
    pthread_mutex_lock(&lock);
    int r = real_unlinkat(dirfd, path, flags);
    if (r == 0)
        entry('U', abs, 0, NULL, 0);
    pthread_mutex_unlock(&lock);
    return r;
}

int unlink(const char *path) { return removed(AT_FDCWD, path, 0); }

int unlinkat(int dirfd, const char *path, int flags) { return removed(dirfd, path, flags); }
