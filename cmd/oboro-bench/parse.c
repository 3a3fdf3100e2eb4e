/* oboro-bench: parsers for command-line values, RESP replies and
 * /proc/PID/smaps_rollup. Pure functions over bytes. */
#include "cmd/oboro-bench/bench.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Parse a finite, non-negative number at the start of s; *end gets the
 * rest. Returns 0 or -EINVAL. */
static int parse_number(const char *s, double *out, const char **end)
{
    char *e;
    double v;

    if (s == NULL || !(isdigit((unsigned char)s[0]) || s[0] == '.'))
        return -EINVAL;
    errno = 0;
    v = strtod(s, &e);
    if (e == s || errno != 0 || !isfinite(v) || v < 0)
        return -EINVAL;
    *out = v;
    *end = e;
    return 0;
}

int bench_rate_parse(const char *s, double *per_sec)
{
    static const struct { const char *unit; double secs; } units[] = {
        {"", 1}, {"/s", 1}, {"/sec", 1}, {"/ms", 0.001}, {"/m", 60}, {"/min", 60}, {"/h", 3600},
    };
    const char *end;
    double v;
    size_t i;

    if (s == NULL)
        return -EINVAL;
    if (strcasecmp(s, "max") == 0) {
        *per_sec = 0;
        return 0;
    }
    if (parse_number(s, &v, &end) != 0)
        return -EINVAL;
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].unit) == 0) {
            v /= units[i].secs;
            if (v > 1e9)
                return -EINVAL;
            *per_sec = v;
            return 0;
        }
    }
    return -EINVAL;
}

int bench_duration_parse(const char *s, uint64_t *ns)
{
    static const struct { const char *unit; double ns; } units[] = {
        {"", 1e9}, {"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"min", 60e9}, {"h", 3600e9},
    };
    const char *end;
    double v;
    size_t i;

    if (parse_number(s, &v, &end) != 0)
        return -EINVAL;
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].unit) == 0) {
            v *= units[i].ns;
            if (v < 1 || v > 30.0 * 86400e9)
                return -EINVAL;
            *ns = (uint64_t)v;
            return 0;
        }
    }
    return -EINVAL;
}

int bench_size_parse(const char *s, uint64_t max, uint64_t *out)
{
    static const struct { const char *unit; uint64_t mult; } units[] = {
        {"", 1}, {"b", 1}, {"k", 1024}, {"kb", 1024}, {"m", 1048576}, {"mb", 1048576},
    };
    unsigned long long v;
    char *e;
    size_t i;

    if (s == NULL || !isdigit((unsigned char)s[0]))
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &e, 10);
    if (errno != 0)
        return -EINVAL;
    for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(e, units[i].unit) == 0) {
            if (v > max / units[i].mult)
                return -EINVAL;
            *out = v * units[i].mult;
            return 0;
        }
    }
    return -EINVAL;
}

/* ---- RESP replies ------------------------------------------------------ */

/* Find the CRLF ending the line that starts at buf[pos]. Returns the
 * index of '\r', -EAGAIN or -EPROTO (a bare CR or LF, or a line too
 * long). */
static ssize_t line_end(const char *buf, size_t len, size_t pos)
{
    size_t i;

    for (i = pos; i < len; i++) {
        if (i - pos > BENCH_REPLY_MAX_LINE)
            return -EPROTO;
        if (buf[i] == '\n')
            return -EPROTO;
        if (buf[i] == '\r') {
            if (i + 1 == len)
                return -EAGAIN;
            return buf[i + 1] == '\n' ? (ssize_t)i : -EPROTO;
        }
    }
    return len - pos > BENCH_REPLY_MAX_LINE ? -EPROTO : -EAGAIN;
}

/* Parse the signed decimal integer in buf[from..to). Returns 0 or -EPROTO. */
static int parse_int(const char *buf, size_t from, size_t to, long long *out)
{
    long long v = 0;
    int neg = 0;

    if (from < to && buf[from] == '-') {
        neg = 1;
        from++;
    }
    if (from == to || to - from > 18)
        return -EPROTO;
    for (; from < to; from++) {
        if (buf[from] < '0' || buf[from] > '9')
            return -EPROTO;
        v = v * 10 + (buf[from] - '0');
    }
    *out = neg ? -v : v;
    return 0;
}

ssize_t bench_reply_skip(const char *buf, size_t len, int *is_error)
{
    long long rem[BENCH_REPLY_MAX_DEPTH];
    int depth = 0;
    size_t pos = 0;

    if (is_error != NULL)
        *is_error = 0;
    if (len == 0)
        return -EAGAIN;
    if (is_error != NULL)
        *is_error = buf[0] == '-' || buf[0] == '!';
    for (;;) {
        char type;
        ssize_t eol;
        long long n;
        int aggregate = 0;

        if (pos >= len)
            return -EAGAIN;
        type = buf[pos];
        eol = line_end(buf, len, pos + 1);
        if (eol < 0)
            return eol;
        switch (type) {
        case '+': case '-': case ':': case ',': case '(': case '#': case '_':
            if (type == '_' && (size_t)eol != pos + 1)
                return -EPROTO;
            if (type == '#' && ((size_t)eol != pos + 2 || (buf[pos + 1] != 't' && buf[pos + 1] != 'f')))
                return -EPROTO;
            if (type == ':' && parse_int(buf, pos + 1, eol, &n) != 0)
                return -EPROTO;
            pos = eol + 2;
            break;
        case '$': case '!': case '=':
            if (parse_int(buf, pos + 1, eol, &n) != 0)
                return -EPROTO;
            if (n == -1 && type == '$') {
                pos = eol + 2;
                break;
            }
            if (n < 0 || n > BENCH_REPLY_MAX_BULK)
                return -EPROTO;
            pos = eol + 2;
            if (len - pos < (size_t)n + 2)
                return -EAGAIN;
            if (buf[pos + n] != '\r' || buf[pos + n + 1] != '\n')
                return -EPROTO;
            pos += n + 2;
            break;
        case '*': case '~': case '>': case '%': case '|':
            if (parse_int(buf, pos + 1, eol, &n) != 0)
                return -EPROTO;
            pos = eol + 2;
            if (n == -1 && type == '*')
                break;
            if (n < 0 || n > BENCH_REPLY_MAX_ELEMS)
                return -EPROTO;
            if (type == '%')
                n *= 2;
            else if (type == '|')
                n = n * 2 + 1; /* the attribute's pairs, then the value it annotates */
            if (n == 0)
                break;
            if (depth == BENCH_REPLY_MAX_DEPTH)
                return -EPROTO;
            rem[depth++] = n;
            aggregate = 1;
            break;
        default:
            return -EPROTO;
        }
        if (aggregate)
            continue;
        /* one element done: close every aggregate it completes */
        while (depth > 0 && --rem[depth - 1] == 0)
            depth--;
        if (depth == 0)
            return (ssize_t)pos;
    }
}

/* ---- smaps_rollup ------------------------------------------------------ */

int bench_smaps_parse(const char *text, size_t len, bench_mem_t *out)
{
    static const struct { const char *name; size_t off; } fields[] = {
        {"Rss:", offsetof(bench_mem_t, rss_kb)},
        {"Private_Clean:", offsetof(bench_mem_t, private_clean_kb)},
        {"Private_Dirty:", offsetof(bench_mem_t, private_dirty_kb)},
        {"Private_Hugetlb:", offsetof(bench_mem_t, private_hugetlb_kb)},
        {"LazyFree:", offsetof(bench_mem_t, lazyfree_kb)},
    };
    int have_clean = 0, have_dirty = 0;
    size_t pos = 0;

    memset(out, 0, sizeof(*out));
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t llen = nl ? (size_t)(nl - line) : len - pos;
        size_t i;

        pos += llen + (nl != NULL);
        for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
            size_t flen = strlen(fields[i].name);
            size_t j = flen;
            int64_t v = 0;
            int digits = 0;

            if (llen < flen || memcmp(line, fields[i].name, flen) != 0)
                continue;
            while (j < llen && line[j] == ' ')
                j++;
            while (j < llen && line[j] >= '0' && line[j] <= '9' && digits < 18) {
                v = v * 10 + (line[j++] - '0');
                digits++;
            }
            if (digits == 0 || llen - j != 3 || memcmp(line + j, " kB", 3) != 0)
                return -EPROTO;
            *(int64_t *)((char *)out + fields[i].off) = v;
            have_clean |= i == 1;
            have_dirty |= i == 2;
        }
    }
    return have_clean && have_dirty ? 0 : -EPROTO;
}

int bench_smaps_read(pid_t pid, bench_mem_t *out)
{
    char path[64], text[4096];
    ssize_t n;
    size_t got = 0;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    while (got < sizeof(text) && (n = read(fd, text + got, sizeof(text) - got)) > 0)
        got += (size_t)n;
    close(fd);
    if (got == 0)
        return -ENOENT; /* a zombie's rollup is empty */
    return bench_smaps_parse(text, got, out);
}

int64_t bench_mem_private_kb(const bench_mem_t *m)
{
    return m->private_clean_kb + m->private_dirty_kb + m->private_hugetlb_kb;
}

void bench_mem_csv_header(FILE *f)
{
    fputs("elapsed_s,private_kb,private_clean_kb,private_dirty_kb,private_hugetlb_kb,lazyfree_kb,rss_kb\n", f);
}

void bench_mem_csv_row(FILE *f, double elapsed_s, const bench_mem_t *m)
{
    fprintf(f, "%.3f,%lld,%lld,%lld,%lld,%lld,%lld\n", elapsed_s,
            (long long)bench_mem_private_kb(m), (long long)m->private_clean_kb,
            (long long)m->private_dirty_kb, (long long)m->private_hugetlb_kb,
            (long long)m->lazyfree_kb, (long long)m->rss_kb);
    fflush(f);
}

/* ---- FLV --------------------------------------------------------------- */

static uint32_t be24(const uint8_t *p)
{
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | be24(p + 1);
}

ssize_t bench_flv_header_parse(const uint8_t *buf, size_t len)
{
    static const uint8_t sig[3] = {'F', 'L', 'V'};
    uint32_t off;

    if (memcmp(buf, sig, len < 3 ? len : 3) != 0)
        return -EPROTO;
    if (len < 9)
        return -EAGAIN;
    off = be32(buf + 5);
    if (off < 9 || off > 64)
        return -EPROTO;
    if (len < off + 4)
        return -EAGAIN;
    return (ssize_t)(off + 4);
}

ssize_t bench_flv_tag_parse(const uint8_t *buf, size_t len, bench_flv_tag_t *out)
{
    uint8_t type;
    uint32_t size;

    if (len < 1)
        return -EAGAIN;
    type = buf[0];
    if (type != 8 && type != 9 && type != 18)
        return -EPROTO; /* also rejects the filter bit (0x20) */
    if (len < 11)
        return -EAGAIN;
    size = be24(buf + 1);
    if (size > BENCH_FLV_MAX_TAG)
        return -EPROTO;
    if (len < 11 + (size_t)size + 4)
        return -EAGAIN;
    if (be32(buf + 11 + size) != 11 + size)
        return -EPROTO;
    out->type = type;
    out->size = size;
    out->timestamp_ms = be24(buf + 4) | (uint32_t)buf[7] << 24;
    out->keyframe = type == 9 && size > 0 && (buf[11] >> 4) == 1;
    return (ssize_t)(11 + size + 4);
}

int bench_stat_parse(const char *text, size_t len, uint64_t *ticks)
{
    const char *p = NULL, *end = text + len;
    unsigned long long ut, st;
    char tmp[512];
    size_t i, n;
    int field = 2;

    /* comm (field 2) may hold spaces and parentheses: the last ')' ends it */
    for (i = len; i > 0; i--)
        if (text[i - 1] == ')') {
            p = text + i;
            break;
        }
    if (p == NULL)
        return -EPROTO;
    n = (size_t)(end - p) < sizeof(tmp) - 1 ? (size_t)(end - p) : sizeof(tmp) - 1;
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    p = tmp;
    /* fields 3..13, then utime (14) and stime (15) */
    while (field < 13) {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            return -EPROTO;
        while (*p != ' ' && *p != '\0')
            p++;
        field++;
    }
    if (sscanf(p, " %llu %llu", &ut, &st) != 2)
        return -EPROTO;
    *ticks = ut + st;
    return 0;
}
