/* cache/raft_sm: the libraft FSM behind cache/raft: entry kinds, the
 * versioned and checksummed snapshot image, fork-based snapshots, and the
 * allocator bridge that makes libraft and libuv allocate through
 * core/arena. */
#include "cache/raft_int.h"

#include "core/arena.h"
#include "core/log.h"
#include "core/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#define SNAP_MAGIC "OBSN"
#define SNAP_VERSION 1u
#define SNAP_TRAILER 12u /* u64 state_len + u32 crc */
#define TAIL_MAGIC "OBTL"
#define CHILD_MAX_S 600u /* a snapshot child may run this long */

/* ---- little-endian helpers -------------------------------------------- */

static void put_u16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint16_t get_u16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;

    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* ---- CRC-32 ----------------------------------------------------------- */

static uint32_t crc_table[256];
static int crc_ready;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;

        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
    crc_ready = 1;
}

uint32_t cache_raft_crc32(uint32_t crc, const void *p, size_t n)
{
    const unsigned char *b = p;

    if (!crc_ready)
        crc_init();
    crc = ~crc;
    while (n-- > 0)
        crc = crc_table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- allocator bridge ------------------------------------------------- */

static void *heap_malloc(void *data, size_t n)
{
    return core_malloc(CORE_TAG_RAFT_LOG, n);
}

static void heap_free(void *data, void *p)
{
    core_free(p);
}

static void *heap_calloc(void *data, size_t nmemb, size_t n)
{
    return core_calloc(CORE_TAG_RAFT_LOG, nmemb, n);
}

static void *heap_realloc(void *data, void *p, size_t n)
{
    return core_realloc(CORE_TAG_RAFT_LOG, p, n);
}

/* Over-allocate and keep the block's own address just below the aligned
 * pointer handed out (raft_uv wants block-aligned buffers for direct I/O). */
static void *heap_aligned_alloc(void *data, size_t align, size_t n)
{
    unsigned char *raw;
    uintptr_t a;

    if (align < sizeof(void *))
        align = sizeof(void *);
    raw = core_malloc(CORE_TAG_RAFT_LOG, n + align + sizeof(void *));
    if (raw == NULL)
        return NULL;
    a = ((uintptr_t)raw + sizeof(void *) + align - 1) & ~(uintptr_t)(align - 1);
    ((void **)a)[-1] = raw;
    return (void *)a;
}

static void heap_aligned_free(void *data, size_t align, void *p)
{
    if (p != NULL)
        core_free(((void **)p)[-1]);
}

static void *uv_malloc_(size_t n)
{
    return core_malloc(CORE_TAG_RAFT_LOG, n);
}

static void *uv_realloc_(void *p, size_t n)
{
    if (n == 0) {
        core_free(p);
        return NULL;
    }
    return core_realloc(CORE_TAG_RAFT_LOG, p, n);
}

static void *uv_calloc_(size_t nmemb, size_t n)
{
    return core_calloc(CORE_TAG_RAFT_LOG, nmemb, n);
}

static struct raft_heap heap = {
    NULL, heap_malloc, heap_free, heap_calloc, heap_realloc, heap_aligned_alloc, heap_aligned_free,
};

void cache_raft_heap_install(void)
{
    static int done;

    if (done)
        return;
    done = 1;
    if (getenv("NOHEAP"))
        return;
    if (!crc_ready)
        crc_init();
    if (!getenv("NORAFTHEAP"))
        raft_heap_set(&heap);
    if (!getenv("NOUVHEAP"))
    uv_replace_allocator(uv_malloc_, uv_realloc_, uv_calloc_, core_free);
}

/* ---- entries ---------------------------------------------------------- */

int cache_raft_entry_new(int kind, const void *body, size_t len, struct raft_buffer *out)
{
    size_t pad = (8 - len % 8) % 8;
    unsigned char *p = raft_malloc(CACHE_RAFT_ENTRY_HDR + len + pad);

    if (p == NULL)
        return -ENOMEM;
    memset(p, 0, CACHE_RAFT_ENTRY_HDR);
    p[0] = (unsigned char)kind;
    p[1] = (unsigned char)pad;
    if (len > 0)
        memcpy(p + CACHE_RAFT_ENTRY_HDR, body, len);
    memset(p + CACHE_RAFT_ENTRY_HDR + len, 0, pad);
    out->base = p;
    out->len = CACHE_RAFT_ENTRY_HDR + len + pad;
    return 0;
}

int cache_raft_entry_parse(const void *buf, size_t len, int *kind, const unsigned char **body,
                           size_t *body_len)
{
    const unsigned char *p = buf;

    if (len < CACHE_RAFT_ENTRY_HDR || len % 8 != 0 || p[1] > 7 ||
        len - CACHE_RAFT_ENTRY_HDR < p[1])
        return -EPROTO;
    *kind = p[0];
    *body = p + CACHE_RAFT_ENTRY_HDR;
    *body_len = len - CACHE_RAFT_ENTRY_HDR - p[1];
    return 0;
}

int cache_raft_node_encode(uint64_t id, const char *addr, unsigned char *buf, size_t len)
{
    size_t n = strlen(addr);

    if (n == 0 || n >= CACHE_RAFT_ADDR_MAX || len < 8 + n)
        return -EINVAL;
    put_u64(buf, id);
    memcpy(buf + 8, addr, n);
    return (int)(8 + n);
}

const char *cache_raft_sm_node_addr(const cache_raft_sm_t *sm, uint64_t id)
{
    for (unsigned i = 0; i < sm->n_nodes; i++)
        if (sm->nodes[i].id == id)
            return sm->nodes[i].addr;
    return NULL;
}

static void node_set(cache_raft_sm_t *sm, uint64_t id, const char *addr, size_t n)
{
    unsigned i;

    for (i = 0; i < sm->n_nodes; i++)
        if (sm->nodes[i].id == id)
            break;
    if (i == sm->n_nodes) {
        if (sm->n_nodes == CACHE_RAFT_MAX_NODES)
            return;
        sm->n_nodes++;
    }
    sm->nodes[i].id = id;
    memcpy(sm->nodes[i].addr, addr, n);
    sm->nodes[i].addr[n] = '\0';
}

/* ---- snapshot writer -------------------------------------------------- */

struct cache_raft_writer {
    int fd;                 /* >= 0: buffered writes to fd; else memory */
    unsigned char *mem;     /* the image (memory mode), core_malloc'd */
    size_t len, cap;
    uint32_t crc;
    uint64_t total;
    int err;
    size_t used;
    unsigned char buf[65536];
};

static int writer_flush(cache_raft_writer_t *w)
{
    size_t off = 0;

    while (off < w->used) {
        ssize_t n = write(w->fd, w->buf + off, w->used - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -EIO;
        off += (size_t)n;
    }
    w->used = 0;
    return 0;
}

static int writer_raw(cache_raft_writer_t *w, const void *p, size_t n)
{
    const unsigned char *b = p;

    if (w->err)
        return w->err;
    if (w->fd < 0) {
        if (w->len + n > w->cap) {
            size_t cap = w->cap ? w->cap : 4096;
            unsigned char *m;

            while (cap < w->len + n)
                cap *= 2;
            m = core_realloc(CORE_TAG_RAFT_SNAP, w->mem, cap);
            if (m == NULL)
                return w->err = -ENOMEM;
            w->mem = m;
            w->cap = cap;
        }
        memcpy(w->mem + w->len, b, n);
        w->len += n;
        return 0;
    }
    while (n > 0) {
        size_t k = sizeof(w->buf) - w->used;

        if (k > n)
            k = n;
        memcpy(w->buf + w->used, b, k);
        w->used += k;
        b += k;
        n -= k;
        if (w->used == sizeof(w->buf) && writer_flush(w) != 0)
            return w->err = -EIO;
    }
    return 0;
}

static int writer_put(cache_raft_writer_t *w, const void *p, size_t n)
{
    w->crc = cache_raft_crc32(w->crc, p, n);
    w->total += n;
    return writer_raw(w, p, n);
}

int cache_raft_write(cache_raft_writer_t *w, const void *p, size_t n)
{
    return writer_put(w, p, n);
}

/* Write the state image: header, node table, state, state length, crc. */
static int image_write(cache_raft_sm_t *sm, cache_raft_writer_t *w)
{
    unsigned char h[12], t[12];
    uint64_t state_start;
    int rv;

    memcpy(h, SNAP_MAGIC, 4);
    put_u32(h + 4, SNAP_VERSION);
    put_u32(h + 8, sm->n_nodes);
    writer_put(w, h, sizeof(h));
    for (unsigned i = 0; i < sm->n_nodes; i++) {
        unsigned char e[10];
        size_t n = strlen(sm->nodes[i].addr);

        put_u64(e, sm->nodes[i].id);
        put_u16(e + 8, (uint16_t)n);
        writer_put(w, e, sizeof(e));
        writer_put(w, sm->nodes[i].addr, n);
    }
    state_start = w->total;
    rv = sm->user.save(sm->user.arg, w);
    if (rv == 0)
        rv = w->err;
    if (rv != 0)
        return rv;
    put_u64(t, w->total - state_start);
    writer_put(w, t, 8);
    put_u32(t + 8, w->crc);
    writer_raw(w, t + 8, 4);
    if (w->err == 0 && w->fd >= 0)
        w->err = writer_flush(w);
    return w->err;
}

/* ---- the tail: entries applied while a forked child wrote the image ---- */

static int tail_reserve(cache_raft_sm_t *sm, size_t n)
{
    unsigned char *p;
    size_t cap;

    if (sm->tail_len + n <= sm->tail_cap)
        return 0;
    cap = sm->tail_cap ? sm->tail_cap : 4096;
    while (cap < sm->tail_len + n)
        cap *= 2;
    p = core_realloc(CORE_TAG_RAFT_SNAP, sm->tail, cap);
    if (p == NULL)
        return -ENOMEM;
    sm->tail = p;
    sm->tail_cap = cap;
    return 0;
}

/* Start a tail: "OBTL", u32 count (patched at the end). */
static int tail_begin(cache_raft_sm_t *sm)
{
    sm->tail_len = 0;
    sm->tail_n = 0;
    if (tail_reserve(sm, 8) != 0)
        return -ENOMEM;
    memcpy(sm->tail, TAIL_MAGIC, 4);
    put_u32(sm->tail + 4, 0);
    sm->tail_len = 8;
    return 0;
}

static void tail_record(cache_raft_sm_t *sm, uint64_t index, const void *entry, size_t len)
{
    if (tail_reserve(sm, 12 + len) != 0) {
        sm->tail_err = -ENOMEM;
        return;
    }
    put_u64(sm->tail + sm->tail_len, index);
    put_u32(sm->tail + sm->tail_len + 8, (uint32_t)len);
    memcpy(sm->tail + sm->tail_len + 12, entry, len);
    sm->tail_len += 12 + len;
    sm->tail_n++;
}

/* Close the tail: count, then u64 image length and the tail's crc. */
static int tail_end(cache_raft_sm_t *sm, size_t image_len)
{
    if (tail_reserve(sm, 12) != 0)
        return -ENOMEM;
    put_u32(sm->tail + 4, sm->tail_n);
    put_u64(sm->tail + sm->tail_len, image_len);
    put_u32(sm->tail + sm->tail_len + 8, cache_raft_crc32(0, sm->tail, sm->tail_len + 8));
    sm->tail_len += 12;
    return 0;
}

static void tail_drop(cache_raft_sm_t *sm)
{
    core_free(sm->tail);
    sm->tail = NULL;
    sm->tail_len = sm->tail_cap = 0;
    sm->tail_n = 0;
    sm->tail_err = 0;
    sm->recording = 0;
}

int cache_raft_snapshot_check(const void *buf, size_t len, const unsigned char **state,
                              size_t *state_len)
{
    const unsigned char *p = buf, *tail;
    uint64_t slen, ilen;
    size_t off = 12, tlen;
    uint32_t n;

    /* tail first: it locates the image */
    if (len < 12 + SNAP_TRAILER + 20)
        return -EPROTO;
    ilen = get_u64(p + len - 12);
    if (ilen < 12 + SNAP_TRAILER || ilen > len - 20)
        return -EPROTO;
    tail = p + ilen;
    tlen = len - (size_t)ilen;
    if (memcmp(tail, TAIL_MAGIC, 4) != 0 ||
        cache_raft_crc32(0, tail, tlen - 4) != get_u32(tail + tlen - 4))
        return -EPROTO;
    n = get_u32(tail + 4);
    off = 8;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t elen;

        if (tlen - 12 - off < 12)
            return -EPROTO;
        elen = get_u32(tail + off + 8);
        if (tlen - 12 - off - 12 < elen)
            return -EPROTO;
        off += 12 + (size_t)elen;
    }
    if (off != tlen - 12)
        return -EPROTO;

    len = (size_t)ilen;
    if (memcmp(p, SNAP_MAGIC, 4) != 0)
        return -EPROTO;
    if (get_u32(p + 4) > SNAP_VERSION)
        return -ENOTSUP;
    if (get_u32(p + 4) == 0)
        return -EPROTO;
    if (cache_raft_crc32(0, p, len - 4) != get_u32(p + len - 4))
        return -EPROTO;
    n = get_u32(p + 8);
    if (n > CACHE_RAFT_MAX_NODES)
        return -EPROTO;
    off = 12;
    for (uint32_t i = 0; i < n; i++) {
        uint16_t alen;

        if (len - SNAP_TRAILER - off < 10)
            return -EPROTO;
        alen = get_u16(p + off + 8);
        if (alen == 0 || alen >= CACHE_RAFT_ADDR_MAX || len - SNAP_TRAILER - off - 10 < alen)
            return -EPROTO;
        off += 10 + alen;
    }
    slen = get_u64(p + len - SNAP_TRAILER);
    if (slen != len - SNAP_TRAILER - off)
        return -EPROTO;
    *state = p + off;
    *state_len = (size_t)slen;
    return 0;
}

/* ---- FSM callbacks ---------------------------------------------------- */

static void dispatch(cache_raft_sm_t *sm, const void *entry, size_t elen, uint64_t index)
{
    const unsigned char *p;
    size_t len;
    int kind;

    if (cache_raft_entry_parse(entry, elen, &kind, &p, &len) != 0) {
        core_log_warn("raft", "malformed log entry skipped", "index=%llu bytes=%zu",
                      (unsigned long long)index, elen);
        return;
    }
    switch (kind) {
    case CACHE_RAFT_ENTRY_BATCH:
        /* one record per proposal: u32 length, bytes */
        while (len > 0) {
            uint32_t n;

            if (len < 4 || (n = get_u32(p)) > len - 4) {
                core_log_warn("raft", "malformed batch record skipped", "index=%llu",
                              (unsigned long long)index);
                break;
            }
            sm->user.apply(sm->user.arg, p + 4, n, index);
            p += 4 + n;
            len -= 4 + (size_t)n;
        }
        break;
    case CACHE_RAFT_ENTRY_NODE:
        if (len > 8 && len - 8 < CACHE_RAFT_ADDR_MAX)
            node_set(sm, get_u64(p), (const char *)p + 8, len - 8);
        else
            core_log_warn("raft", "malformed node entry skipped", "index=%llu",
                          (unsigned long long)index);
        break;
    default:
        /* A newer version wrote it; skipping keeps the node alive and the
         * line tells the operator to upgrade. */
        core_log_warn("raft", "unknown log entry kind skipped", "index=%llu kind=%d",
                      (unsigned long long)index, kind);
        break;
    }
}

void cache_raft_sm_force(cache_raft_sm_t *sm)
{
    if (sm->raft == NULL || sm->forced)
        return;
    sm->forced = 1;
    raft_set_snapshot_threshold(sm->raft, 1);
}

/* The log in memory (libraft keeps every entry since the last snapshot)
 * must not outgrow the state it describes: past the budget, and past the
 * keyspace's live size, take a snapshot and keep few trailing entries.
 * Then RSS follows the keyspace (a FLUSHALL gives memory back), and a
 * snapshot never costs more than the log it frees. */
static void check_log_budget(cache_raft_sm_t *sm)
{
    uint64_t state, avg, keep;

    if (sm->log_budget == 0 || sm->log_bytes < sm->log_budget || sm->forced || sm->raft == NULL)
        return;
    state = sm->user.state_bytes != NULL ? sm->user.state_bytes(sm->user.arg) : 0;
    if (sm->log_bytes < state)
        return;
    avg = sm->log_entries ? sm->log_bytes / sm->log_entries : 1;
    keep = (sm->log_budget / 64) / (avg ? avg : 1);
    if (keep < 1)
        keep = 1;
    if (keep < sm->trailing) {
        raft_set_snapshot_trailing(sm->raft, (unsigned)keep);
        sm->trailing_lowered = 1;
    }
    cache_raft_sm_force(sm);
}

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
    cache_raft_sm_t *sm = fsm->data;
    uint64_t index = sm->raft != NULL ? raft_last_applied(sm->raft) + 1 : 0;

    *result = NULL;
    sm->entries_applied++;
    sm->log_bytes += buf->len;
    sm->log_entries++;
    if (sm->recording)
        tail_record(sm, index, buf->base, buf->len);
    dispatch(sm, buf->base, buf->len, index);
    check_log_budget(sm);
    return 0;
}

static void threshold_restore(cache_raft_sm_t *sm)
{
    if (sm->forced && sm->raft != NULL) {
        raft_set_snapshot_threshold(sm->raft, sm->threshold);
        sm->forced = 0;
    }
}

/* Hand libraft two buffers: the image and the tail. Ownership stays here
 * (fsm version >= 2): snapshot_finalize frees them. */
static int bufs_out(cache_raft_sm_t *sm, unsigned char *img, size_t img_len,
                    struct raft_buffer *bufs[], unsigned *n_bufs)
{
    struct raft_buffer *b = core_malloc(CORE_TAG_RAFT_SNAP, 2 * sizeof(*b));

    if (b == NULL || tail_end(sm, img_len) != 0) {
        core_free(b);
        core_free(img);
        tail_drop(sm);
        return RAFT_NOMEM;
    }
    b[0].base = img;
    b[0].len = img_len;
    b[1].base = sm->tail;
    b[1].len = sm->tail_len;
    sm->tail = NULL;
    tail_drop(sm);
    *bufs = b;
    *n_bufs = 2;
    return 0;
}

/* Worker thread: wait for the child and read the image it wrote. */
static void prep_work(uv_work_t *req)
{
    cache_raft_sm_t *sm = req->data;
    unsigned char *mem = NULL;
    struct stat st;
    size_t off = 0;
    int status = 0, exited = 0, fd;

    sm->prep_img = NULL;
    /* a child that never ends (say, a lock held at fork time by another
     * thread) is killed after CHILD_MAX_S; the next snapshot retries */
    for (unsigned waited_ms = 0, step = 1;; waited_ms += step, step = step < 50 ? step * 2 : 50) {
        pid_t w = waitpid(sm->child, &status, WNOHANG);

        if (w == sm->child) {
            exited = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            break;
        }
        if (w < 0 && errno != EINTR)
            break;
        if (waited_ms > CHILD_MAX_S * 1000) {
            kill(sm->child, SIGKILL);
            while (waitpid(sm->child, &status, 0) < 0 && errno == EINTR)
                ;
            break;
        }
        usleep(step * 1000);
    }
    if (!exited)
        goto out;
    fd = open(sm->tmp_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        goto out;
    if (fstat(fd, &st) != 0 || st.st_size < 12 + (off_t)SNAP_TRAILER ||
        (mem = core_malloc(CORE_TAG_RAFT_SNAP, (size_t)st.st_size)) == NULL) {
        close(fd);
        goto out;
    }
    while (off < (size_t)st.st_size) {
        ssize_t n = read(fd, mem + off, (size_t)st.st_size - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    close(fd);
    if (off != (size_t)st.st_size) {
        core_free(mem);
        goto out;
    }
    sm->prep_img = mem;
    sm->prep_len = off;
out:
    unlink(sm->tmp_path);
}

static void prep_done(uv_work_t *req, int status)
{
    cache_raft_sm_t *sm = req->data;

    sm->child = 0;
    sm->work_busy = 0;
    if (sm->prep_gen != sm->gen || sm->prep != PREP_RUNNING) {
        /* a snapshot was installed meanwhile: this image is stale */
        core_free(sm->prep_img);
        sm->prep_img = NULL;
        return;
    }
    sm->prep = sm->prep_img != NULL ? PREP_READY : PREP_FAILED;
    /* libraft takes the snapshot at the next applied entry: make one come
     * even when no client writes */
    if (sm->kick != NULL)
        sm->kick(sm->kick_arg);
}

/* Fork a child that writes the state at the current index; the entries
 * applied until libraft asks again are recorded as the tail. */
static int prep_start(cache_raft_sm_t *sm)
{
    uint64_t t0;
    int fd;
    pid_t pid;

    if (sm->work_busy || sm->uv == NULL)
        return RAFT_BUSY;
    fd = open(sm->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        core_log_warn("raft", "cannot create snapshot file", "path=%s error=\"%s\"", sm->tmp_path,
                      strerror(errno));
        return RAFT_IOERR;
    }
    if (tail_begin(sm) != 0) {
        close(fd);
        return RAFT_NOMEM;
    }
    t0 = core_mono_us();
    pid = fork();
    if (pid < 0) {
        close(fd);
        tail_drop(sm);
        return RAFT_IOERR;
    }
    if (pid == 0) {
        /* Child: a copy-on-write view of the keyspace at this index. Only
         * reads state and writes through a stack buffer; no allocation. */
        cache_raft_writer_t w;
        int rv;

        memset(&w, 0, offsetof(cache_raft_writer_t, buf));
        w.fd = fd;
        rv = image_write(sm, &w);
        if (rv == 0 && fsync(fd) != 0)
            rv = -EIO;
        _exit(rv == 0 ? 0 : 1);
    }
    close(fd);
    sm->log_bytes = sm->log_entries = 0;
    sm->fork_us = core_mono_us() - t0;
    sm->child = pid;
    sm->recording = 1;
    sm->prep = PREP_RUNNING;
    sm->prep_gen = sm->gen;
    sm->work_busy = 1;
    sm->work.data = sm;
    if (uv_queue_work(sm->uv, &sm->work, prep_work, prep_done) != 0) {
        /* cannot wait in a worker: reap here (rare) */
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        sm->child = 0;
        sm->work_busy = 0;
        sm->prep = PREP_IDLE;
        unlink(sm->tmp_path);
        tail_drop(sm);
        return RAFT_IOERR;
    }
    return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    cache_raft_sm_t *sm = fsm->data;
    int rv;

    *bufs = NULL;
    *n_bufs = 0;
    if (!sm->fork_mode) {
        cache_raft_writer_t *w = core_calloc(CORE_TAG_RAFT_SNAP, 1, sizeof(*w));
        unsigned char *img;
        size_t len;

        threshold_restore(sm);
        if (w == NULL)
            return RAFT_NOMEM;
        sm->log_bytes = sm->log_entries = 0;
        w->fd = -1;
        rv = image_write(sm, w);
        img = w->mem;
        len = w->len;
        core_free(w);
        if (rv != 0 || tail_begin(sm) != 0) {
            core_free(img);
            core_log_warn("raft", "snapshot failed", "error=\"%s\"", strerror(rv ? -rv : ENOMEM));
            return RAFT_IOERR;
        }
        return bufs_out(sm, img, len, bufs, n_bufs);
    }
    switch (sm->prep) {
    case PREP_IDLE:
        rv = prep_start(sm);
        /* libraft retries at the next applied entry */
        return rv == 0 ? RAFT_BUSY : rv;
    case PREP_RUNNING:
        return RAFT_BUSY;
    case PREP_FAILED:
        core_log_warn("raft", "snapshot child failed; will retry", NULL);
        tail_drop(sm);
        sm->prep = PREP_IDLE;
        return RAFT_BUSY;
    default: /* PREP_READY */
        sm->prep = PREP_IDLE;
        if (sm->tail_err != 0) {
            core_free(sm->prep_img);
            sm->prep_img = NULL;
            tail_drop(sm);
            return RAFT_NOMEM;
        }
        threshold_restore(sm);
        core_log_info("raft", "snapshot taken", "index=%llu image_bytes=%zu tail_entries=%u fork_us=%llu",
                      sm->raft != NULL ? (unsigned long long)raft_last_applied(sm->raft) : 0ULL,
                      sm->prep_len, sm->tail_n, (unsigned long long)sm->fork_us);
        rv = bufs_out(sm, sm->prep_img, sm->prep_len, bufs, n_bufs);
        sm->prep_img = NULL;
        return rv;
    }
}

static int fsm_snapshot_finalize(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    cache_raft_sm_t *sm = fsm->data;

    if (*bufs != NULL) {
        for (unsigned i = 0; i < *n_bufs; i++)
            core_free((*bufs)[i].base);
        core_free(*bufs);
        sm->snapshots_taken++;
    }
    if (sm->trailing_lowered && sm->raft != NULL) {
        raft_set_snapshot_trailing(sm->raft, sm->trailing);
        sm->trailing_lowered = 0;
    }
    *bufs = NULL;
    *n_bufs = 0;
    return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    cache_raft_sm_t *sm = fsm->data;
    const unsigned char *p = buf->base, *state, *tail;
    size_t state_len, off = 12;
    uint32_t n;
    int rv = cache_raft_snapshot_check(buf->base, buf->len, &state, &state_len);

    if (rv != 0) {
        core_log_error("raft", "snapshot image rejected", "bytes=%zu error=\"%s\"", buf->len,
                       rv == -ENOTSUP ? "written by a newer version" : "corrupt or truncated");
        return RAFT_CORRUPT;
    }
    /* a snapshot being prepared describes a state that is going away */
    sm->gen++;
    if (sm->prep != PREP_IDLE) {
        core_free(sm->prep_img);
        sm->prep_img = NULL;
        sm->prep = PREP_IDLE;
    }
    tail_drop(sm);
    rv = sm->user.load(sm->user.arg, state, state_len);
    if (rv != 0) {
        core_log_error("raft", "snapshot state rejected", "bytes=%zu error=\"%s\"", state_len,
                       strerror(-rv));
        return RAFT_CORRUPT;
    }
    sm->n_nodes = 0;
    n = get_u32(p + 8);
    for (uint32_t i = 0; i < n; i++) {
        uint16_t alen = get_u16(p + off + 8);

        node_set(sm, get_u64(p + off), (const char *)p + off + 10, alen);
        off += 10 + alen;
    }
    /* then the entries applied while the image was being written */
    tail = p + get_u64(p + buf->len - 12);
    n = get_u32(tail + 4);
    off = 8;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t elen = get_u32(tail + off + 8);

        dispatch(sm, tail + off + 12, elen, get_u64(tail + off));
        off += 12 + elen;
    }
    sm->snapshots_restored++;
    raft_free(buf->base);
    return 0;
}

int cache_raft_sm_init(cache_raft_sm_t *sm, const cache_raft_fsm_t *user, const char *dir,
                       int fork_mode)
{
    memset(sm, 0, sizeof(*sm));
    if (fork_mode) {
        int n = snprintf(sm->tmp_path, sizeof(sm->tmp_path), "%s/oboro-snapshot.tmp", dir);

        if (n < 0 || (size_t)n >= sizeof(sm->tmp_path))
            return -ENAMETOOLONG;
    }
    if (!crc_ready)
        crc_init();
    sm->user = *user;
    sm->fork_mode = fork_mode;
    sm->fsm.version = 2;
    sm->fsm.data = sm;
    sm->fsm.apply = fsm_apply;
    sm->fsm.snapshot = fsm_snapshot;
    sm->fsm.restore = fsm_restore;
    sm->fsm.snapshot_finalize = fsm_snapshot_finalize;
    return 0;
}

void cache_raft_sm_close(cache_raft_sm_t *sm)
{
    if (sm->child > 0 && !sm->work_busy) {
        while (waitpid(sm->child, NULL, 0) < 0 && errno == EINTR)
            ;
        sm->child = 0;
        unlink(sm->tmp_path);
    }
    core_free(sm->prep_img);
    sm->prep_img = NULL;
    tail_drop(sm);
}
