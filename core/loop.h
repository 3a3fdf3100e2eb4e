/* core/loop: the libevent loop that owns every socket, with the signal
 * handling and timers every daemon needs, plus listening sockets and time.
 *
 * SIGTERM and SIGINT run the shutdown hooks (in reverse order of
 * registration) and stop the loop once they return, or after 2 s at the
 * latest; SIGHUP reopens the log file; SIGPIPE is ignored. */
#ifndef CORE_LOOP_H
#define CORE_LOOP_H

#include <stdint.h>

struct event_base;

typedef struct core_loop core_loop_t;
typedef void (*core_loop_cb)(void *arg);

/* New loop (installs the signal handlers). NULL on failure. */
core_loop_t *core_loop_new(void);
void core_loop_free(core_loop_t **lp);

/* The libevent base (borrowed, lives as long as the loop). */
struct event_base *core_loop_base(core_loop_t *l);

/* Run cb(arg) when a shutdown is requested. Returns 0 or -ENOMEM. */
int core_loop_on_shutdown(core_loop_t *l, core_loop_cb cb, void *arg);

/* Run cb(arg) every period_ms on the loop until shutdown begins (the
 * shutdown hooks may free what arg points to) or the loop is freed.
 * Returns 0 or -ENOMEM. */
int core_loop_every(core_loop_t *l, uint64_t period_ms, core_loop_cb cb, void *arg);

/* Run until shutdown. Returns 0, or -EIO if the loop failed. */
int core_loop_run(core_loop_t *l);

/* Ask for a graceful shutdown as if SIGTERM had arrived. */
void core_loop_shutdown(core_loop_t *l);

/* Nonzero once shutdown has begun. */
int core_loop_stopping(const core_loop_t *l);

/* Open a non-blocking TCP listening socket on host:port (IPv4 or IPv6
 * literal, or a name). port 0 picks a free port; *bound_port gets the port
 * actually bound (may be NULL). Returns the fd or a negative errno
 * (-EADDRINUSE for a busy port). */
int core_listen_tcp(const char *host, int port, int backlog, int *bound_port);

/* Monotonic clock in microseconds / milliseconds; wall clock in ms. */
uint64_t core_mono_us(void);
uint64_t core_mono_ms(void);
uint64_t core_wall_ms(void);

#endif
