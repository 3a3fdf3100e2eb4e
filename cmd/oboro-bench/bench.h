/* oboro-bench: the pieces of the load, latency and memory tools that are
 * pure computation (histogram, parsers, report rendering), shared by the
 * subcommands and unit-tested without sockets.
 *
 * Latencies are recorded in nanoseconds. */
#ifndef OBORO_BENCH_H
#define OBORO_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct evbuffer;

/* ---- histogram -------------------------------------------------------- */

/* Log-linear histogram (HDR style): values below 256 are exact; above, each
 * power-of-two range is split into 128 equal sub-buckets, so a reported
 * value is within 1/256 (0.4%) of a recorded one. Covers 0 .. 2^64-1 ns.
 * Mean and standard deviation are exact; min and max are exact. Besides,
 * every value is counted in one decade bin (1ns ~ 10ns ... 10s ~). */
#define BENCH_HIST_BUCKETS (256 + 56 * 128)
#define BENCH_HIST_DECADES 11

typedef struct bench_hist {
    uint64_t n;
    uint64_t min, max;
    long double sum, sumsq;
    uint64_t decades[BENCH_HIST_DECADES];
    uint64_t counts[BENCH_HIST_BUCKETS];
} bench_hist_t;

/* New empty histogram (about 60 KiB). Ownership passes to the caller.
 * NULL when out of memory. */
bench_hist_t *bench_hist_new(void);
void bench_hist_free(bench_hist_t **hp);

/* Empty h. */
void bench_hist_reset(bench_hist_t *h);

/* Record one value (ns). */
void bench_hist_record(bench_hist_t *h, uint64_t v);

/* Add every value of src to dst. */
void bench_hist_merge(bench_hist_t *dst, const bench_hist_t *src);

/* Value at percentile p (0 < p <= 100): the smallest recorded value such
 * that at least p% of the values are <= it, within 0.4%, and clamped to
 * [min, max]. 0 when empty. */
uint64_t bench_hist_percentile(const bench_hist_t *h, double p);

/* Exact mean and population standard deviation (ns); 0 when empty. */
double bench_hist_mean(const bench_hist_t *h);
double bench_hist_stddev(const bench_hist_t *h);

/* Bucket index of v and the lowest value a bucket holds (exported for the
 * unit tests). */
unsigned bench_hist_index(uint64_t v);
uint64_t bench_hist_bucket_low(unsigned idx);

/* ---- parsers for command-line values ---------------------------------- */

/* Parse a rate: "150000/min", "2500/s", "2500/sec", "9e6/h", or a bare
 * number (per second). "max" and "0" mean unlimited and give 0. On success
 * *per_sec is operations per second. Returns 0 or -EINVAL (garbage, a
 * negative or non-finite number, an unknown unit, above 10^9 per second). */
int bench_rate_parse(const char *s, double *per_sec);

/* Parse a duration: "500ms", "30s", "10m", "1h", or a bare number of
 * seconds (fractions allowed). *ns gets nanoseconds. Returns 0 or -EINVAL
 * (garbage, zero or negative, longer than 30 days). */
int bench_duration_parse(const char *s, uint64_t *ns);

/* Parse a byte size: "64", "1k", "4kb", "1m", "1mb" (powers of 1024).
 * Returns 0 or -EINVAL (garbage, above max). */
int bench_size_parse(const char *s, uint64_t max, uint64_t *out);

/* ---- rate schedule ----------------------------------------------------- */

/* Fixed-rate schedule: request k (0-based) is intended to be sent at
 * start + k * period; total requests in all. The intended time, not the
 * actual send time, is where a request's latency starts, so a stall of the
 * client or the server is charged to every request it delayed
 * (no coordinated omission). */
typedef struct bench_sched {
    uint64_t start_ns;
    uint64_t total;
    double period_ns;
} bench_sched_t;

/* Schedule count requests over duration_ns starting at start_ns. */
void bench_sched_init(bench_sched_t *s, uint64_t start_ns, uint64_t duration_ns, uint64_t count);

/* Number of requests whose intended time is <= now_ns (at most total). */
uint64_t bench_sched_due(const bench_sched_t *s, uint64_t now_ns);

/* Intended send time of request k. */
uint64_t bench_sched_at(const bench_sched_t *s, uint64_t k);

/* ---- RESP replies ------------------------------------------------------ */

/* Maximum nesting of aggregate replies and bulk length accepted. */
#define BENCH_REPLY_MAX_DEPTH 32
#define BENCH_REPLY_MAX_BULK (512LL * 1024 * 1024)
#define BENCH_REPLY_MAX_LINE 65536
#define BENCH_REPLY_MAX_ELEMS (1LL << 24)

/* Find the end of one complete RESP2/RESP3 reply at buf[0..len).
 * Returns the number of bytes it takes, -EAGAIN when more input is needed,
 * or -EPROTO on malformed input or a limit exceeded. *is_error (may be
 * NULL) is set to 1 for a top-level error reply ('-' or '!'), else 0. Pure:
 * it keeps no state and re-scans from buf[0]. */
ssize_t bench_reply_skip(const char *buf, size_t len, int *is_error);

/* ---- memory of a process ----------------------------------------------- */

typedef struct bench_mem {
    int64_t rss_kb;
    int64_t private_clean_kb;
    int64_t private_dirty_kb;
    int64_t private_hugetlb_kb;
    int64_t lazyfree_kb;
} bench_mem_t;

/* Parse the text of /proc/PID/smaps_rollup. Missing optional fields
 * (Private_Hugetlb, LazyFree) read as 0. Returns 0, or -EPROTO when
 * Private_Clean or Private_Dirty is missing or a number is malformed. */
int bench_smaps_parse(const char *text, size_t len, bench_mem_t *out);

/* Read /proc/PID/smaps_rollup. Returns 0 or a negative errno (-ENOENT
 * once the process is gone). */
int bench_smaps_read(pid_t pid, bench_mem_t *out);

/* The article's figure: Private_Clean + Private_Dirty + Private_Hugetlb. */
int64_t bench_mem_private_kb(const bench_mem_t *m);

/* CSV header and one row (elapsed seconds, then the fields in kB). */
void bench_mem_csv_header(FILE *f);
void bench_mem_csv_row(FILE *f, double elapsed_s, const bench_mem_t *m);

/* ---- FLV stream and /proc/PID/stat -------------------------------------- */

#define BENCH_FLV_MAX_TAG (4u * 1024 * 1024)

typedef struct bench_flv_tag {
    uint8_t type;               /* 8 audio, 9 video, 18 script data */
    uint32_t timestamp_ms;
    uint32_t size;              /* payload bytes */
    int keyframe;               /* video: frame type 1 */
} bench_flv_tag_t;

/* The FLV file header and the first PreviousTagSize at buf[0..len).
 * Returns its length (9 + 4 for a standard header), -EAGAIN or -EPROTO
 * (no "FLV" signature, header offset below 9 or above 64). */
ssize_t bench_flv_header_parse(const uint8_t *buf, size_t len);

/* One tag with its trailing PreviousTagSize. Returns the bytes it takes,
 * -EAGAIN, or -EPROTO (unknown type, payload above BENCH_FLV_MAX_TAG,
 * filtered/encrypted tags, PreviousTagSize not 11 + payload). */
ssize_t bench_flv_tag_parse(const uint8_t *buf, size_t len, bench_flv_tag_t *out);

/* CPU time (utime + stime, clock ticks) from the text of /proc/PID/stat.
 * Returns 0 or -EPROTO. */
int bench_stat_parse(const char *text, size_t len, uint64_t *ticks);

/* ---- reports ----------------------------------------------------------- */

/* Format ns as a short human figure ("812ns", "0.153ms", "1.204s") into
 * buf (at least 16 bytes). Returns buf. */
char *bench_fmt_ns(char *buf, size_t size, double ns);

/* Append the latency table (AVG | 50%ILE | ... | MAX | STDDEV, then a line
 * with p99.9 and p99.99) to out. Returns 0 or -ENOMEM. */
int bench_report_table(struct evbuffer *out, const bench_hist_t *h);

/* Append the decade histogram ("1ns ~ 10ns" ... "10s ~") with a bar, the
 * count and the percent of each bin. Returns 0 or -ENOMEM. */
int bench_report_decades(struct evbuffer *out, const bench_hist_t *h);

/* Append the latency figures as a JSON object (no trailing newline):
 * {"count":N,"avg_ns":..,"p50_ns":..,...,"max_ns":..,"stddev_ns":..,
 *  "histogram":[{"from_ns":1,"to_ns":10,"count":N,"percent":..},...]}.
 * Returns 0 or -ENOMEM. */
int bench_report_json(struct evbuffer *out, const bench_hist_t *h);

/* Clock helpers: monotonic and wall-clock nanoseconds. */
uint64_t bench_now_ns(void);
uint64_t bench_wall_ns(void);

#endif
