/* core/log: timestamped key=value lines, one write(2) each. */
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static _Atomic int cur_level = CORE_LOG_INFO;
static _Atomic int log_fd = STDERR_FILENO;
static char log_path[4096];
static pthread_mutex_t path_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "notice", "warning", "error"};

int core_log_level_parse(const char *s)
{
    if (strcasecmp(s, "verbose") == 0)
        return CORE_LOG_DEBUG;
    if (strcasecmp(s, "warn") == 0)
        return CORE_LOG_WARN;
    for (int i = 0; i <= CORE_LOG_ERROR; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    return -EINVAL;
}

const char *core_log_level_name(core_log_level_t level)
{
    if ((unsigned)level > CORE_LOG_ERROR)
        return "unknown";
    return level_names[level];
}

void core_log_set_level(core_log_level_t level)
{
    atomic_store(&cur_level, (int)level);
}

core_log_level_t core_log_get_level(void)
{
    return (core_log_level_t)atomic_load_explicit(&cur_level, memory_order_relaxed);
}

static int open_path(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);

    return fd < 0 ? -errno : fd;
}

int core_log_open(const char *path)
{
    int fd = STDERR_FILENO, old;

    pthread_mutex_lock(&path_lock);
    if (path != NULL && path[0] != '\0') {
        if (strlen(path) >= sizeof(log_path)) {
            pthread_mutex_unlock(&path_lock);
            return -ENAMETOOLONG;
        }
        fd = open_path(path);
        if (fd < 0) {
            pthread_mutex_unlock(&path_lock);
            return fd;
        }
        strcpy(log_path, path);
    } else {
        log_path[0] = '\0';
    }
    old = atomic_exchange(&log_fd, fd);
    pthread_mutex_unlock(&path_lock);
    if (old != STDERR_FILENO)
        close(old);
    return 0;
}

int core_log_reopen(void)
{
    int fd, old;

    pthread_mutex_lock(&path_lock);
    if (log_path[0] == '\0') {
        pthread_mutex_unlock(&path_lock);
        return 0;
    }
    fd = open_path(log_path);
    pthread_mutex_unlock(&path_lock);
    if (fd < 0)
        return fd;
    old = atomic_exchange(&log_fd, fd);
    if (old != STDERR_FILENO)
        close(old);
    return 0;
}

/* Append msg quoted, escaping quotes, backslashes and control bytes so a
 * peer-supplied string can never forge a log line. */
static size_t put_quoted(char *buf, size_t off, size_t cap, const char *msg)
{
    if (off < cap)
        buf[off++] = '"';
    for (const unsigned char *p = (const unsigned char *)msg; *p && off + 4 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            buf[off++] = '\\';
            buf[off++] = (char)*p;
        } else if (*p < 0x20 || *p == 0x7f) {
            off += (size_t)snprintf(buf + off, cap - off, "\\x%02x", *p);
        } else {
            buf[off++] = (char)*p;
        }
    }
    if (off < cap)
        buf[off++] = '"';
    return off;
}

void core_log_write(core_log_level_t level, const char *sub, const char *msg,
                    const char *fields, ...)
{
    char buf[2048];
    size_t off, cap = sizeof(buf) - 1;
    struct timeval tv;
    struct tm tm;
    int saved_errno = errno;

    if ((int)level < atomic_load_explicit(&cur_level, memory_order_relaxed))
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    off = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    off += (size_t)snprintf(buf + off, cap - off, ".%03ldZ level=%s sub=%s msg=",
                            (long)(tv.tv_usec / 1000), core_log_level_name(level),
                            sub ? sub : "-");
    off = put_quoted(buf, off, cap, msg ? msg : "");
    if (fields != NULL && fields[0] != '\0' && off + 1 < cap) {
        va_list ap;
        int n;

        buf[off++] = ' ';
        va_start(ap, fields);
        n = vsnprintf(buf + off, cap - off, fields, ap);
        va_end(ap);
        if (n > 0)
            off += (size_t)n < cap - off ? (size_t)n : cap - off - 1;
    }
    /* a field value may carry a newline; keep one event per line */
    for (size_t i = 0; i < off; i++)
        if (buf[i] == '\n' || buf[i] == '\r')
            buf[i] = ' ';
    buf[off++] = '\n';
    {
        ssize_t w = write(atomic_load(&log_fd), buf, off);
        (void)w;
    }
    errno = saved_errno;
}
