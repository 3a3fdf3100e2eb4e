/* core/log: one line per event on stderr (or a file), with a timestamp, a
 * level and key=value fields:
 *
 *   2026-11-22T18:30:00.123Z level=info sub=rtmp msg="publish" stream=abc
 *
 * Thread-safe: each line is written with a single write(2). */
#ifndef CORE_LOG_H
#define CORE_LOG_H

#include <stdarg.h>

typedef enum core_log_level {
    CORE_LOG_DEBUG = 0,
    CORE_LOG_INFO,
    CORE_LOG_NOTICE,
    CORE_LOG_WARN,
    CORE_LOG_ERROR,
} core_log_level_t;

/* Parse "debug", "verbose" (= debug), "info", "notice", "warning" or
 * "error". Returns the level or -EINVAL. */
int core_log_level_parse(const char *s);
const char *core_log_level_name(core_log_level_t level);

void core_log_set_level(core_log_level_t level);
core_log_level_t core_log_get_level(void);

/* Send lines to path (appending); NULL or "" means stderr. Returns 0 or a
 * negative errno; on error the previous destination is kept. */
int core_log_open(const char *path);

/* Reopen the current file (after rotation; SIGHUP). No-op for stderr. */
int core_log_reopen(void);

/* Write one line: sub is the subsystem ("rtmp", "resp", ...), msg a short
 * message (quoted in the output), fields a printf format for further
 * " key=value" pairs (may be NULL). Lines below the current level are
 * dropped before formatting. */
void core_log_write(core_log_level_t level, const char *sub, const char *msg,
                    const char *fields, ...) __attribute__((format(printf, 4, 5)));

#define core_log_debug(sub, msg, ...) \
    do { if (core_log_get_level() <= CORE_LOG_DEBUG) core_log_write(CORE_LOG_DEBUG, sub, msg, __VA_ARGS__); } while (0)
#define core_log_info(sub, msg, ...) core_log_write(CORE_LOG_INFO, sub, msg, __VA_ARGS__)
#define core_log_notice(sub, msg, ...) core_log_write(CORE_LOG_NOTICE, sub, msg, __VA_ARGS__)
#define core_log_warn(sub, msg, ...) core_log_write(CORE_LOG_WARN, sub, msg, __VA_ARGS__)
#define core_log_error(sub, msg, ...) core_log_write(CORE_LOG_ERROR, sub, msg, __VA_ARGS__)

#endif
