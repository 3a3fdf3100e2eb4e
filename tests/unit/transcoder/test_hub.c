/* Unit tests for transcoder/hub (with subscribers that record what they
 * get instead of sockets) and the publish authentication. */
#include "transcoder/tc_int.h"

#include "core/arena.h"

#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct fake {
    tc_sub_t sub;
    tc_pkt_t *got[256];
    int n;
    size_t queued;             /* what queued() reports */
    int ended;
    int flushes;
    uint64_t spin_us;          /* each packet costs this much loop time */
    char reason[16];
} fake_t;

static int f_packet(tc_sub_t *sub, tc_pkt_t *p)
{
    fake_t *f = (fake_t *)sub;

    uint64_t t0 = core_mono_us();

    while (f->spin_us > 0 && core_mono_us() - t0 < f->spin_us)
        ;
    if (f->n == 256) {
        tc_pkt_unref(f->got[0]);   /* keep the most recent ones */
        memmove(f->got, f->got + 1, 255 * sizeof(f->got[0]));
        f->n--;
    }
    f->got[f->n++] = tc_pkt_ref(p);
    return 0;
}

static size_t f_queued(tc_sub_t *sub)
{
    return ((fake_t *)sub)->queued;
}

static void f_end(tc_sub_t *sub, const char *reason)
{
    fake_t *f = (fake_t *)sub;

    f->ended = 1;
    snprintf(f->reason, sizeof(f->reason), "%s", reason);
}

static void f_flush(tc_sub_t *sub)
{
    ((fake_t *)sub)->flushes++;
}

static const tc_sub_ops_t fops = {f_packet, f_queued, f_end, f_flush};

static void fake_clear(fake_t *f)
{
    for (int i = 0; i < f->n; i++)
        tc_pkt_unref(f->got[i]);
    f->n = 0;
}

static struct event_base *base;
static tc_conf_t conf;
static tc_hub_t hub;
static int pub_token;

static void setup(void)
{
    base = event_base_new();
    memset(&conf, 0, sizeof(conf));
    conf.viewer_queue_bytes = 1000;
    conf.viewer_queue_ms = 50;
    conf.publish_grace_ms = 0;
    conf.gop_cache = 1;
    conf.gop_cache_max_bytes = 1 << 20;
    conf.max_streams = 4;
    ck_assert_int_eq(tc_hub_init(&hub, base, &conf), 0);
}

static void teardown(void)
{
    tc_hub_close(&hub);
    event_base_free(base);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_HUB_PACKETS), 0);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_HUB), 0);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_FLV), 0);
}

static const uint8_t avc_seq[] = {0x17, 0x00, 0, 0, 0, 1, 0x64, 0, 0x1f};
static const uint8_t avc_key[] = {0x17, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x65};
static const uint8_t avc_inter[] = {0x27, 0x01, 0, 0, 0, 0, 0, 0, 1, 0x41};
static const uint8_t aac_seq[] = {0xaf, 0x00, 0x12, 0x10};
static const uint8_t aac_raw[] = {0xaf, 0x01, 0x21, 0x00};

static tc_stream_t *publish(const char *name)
{
    int err = 0;
    tc_stream_t *s = tc_hub_publish(&hub, "live", name, "", &pub_token, &err);

    ck_assert_ptr_nonnull(s);
    return s;
}

static void push(tc_stream_t *s, uint8_t type, uint32_t ts, const uint8_t *p, size_t n)
{
    ck_assert_int_eq(tc_hub_push(s, type, ts, p, (uint32_t)n, 0), 0);
}

START_TEST(gop_cache_on_attach)
{
    tc_stream_t *s = publish("a");
    fake_t f = {0};

    push(s, FLV_TAG_VIDEO, 0, avc_seq, sizeof(avc_seq));
    push(s, FLV_TAG_AUDIO, 0, aac_seq, sizeof(aac_seq));
    push(s, FLV_TAG_VIDEO, 0, avc_inter, sizeof(avc_inter));    /* before any keyframe */
    push(s, FLV_TAG_VIDEO, 40, avc_key, sizeof(avc_key));
    push(s, FLV_TAG_AUDIO, 50, aac_raw, sizeof(aac_raw));
    push(s, FLV_TAG_VIDEO, 80, avc_inter, sizeof(avc_inter));
    ck_assert_int_eq(tc_hub_attach(s, &f.sub, &fops, TC_PROTO_FLV), 0);
    /* sequence headers, then the GOP from the keyframe on */
    ck_assert_int_eq(f.n, 5);
    ck_assert_int_eq(f.got[0]->config, 1);
    ck_assert_int_eq(f.got[0]->type, FLV_TAG_VIDEO);
    ck_assert_int_eq(f.got[1]->type, FLV_TAG_AUDIO);
    ck_assert_int_eq(f.got[2]->key, 1);
    ck_assert_uint_eq(f.got[2]->ts, 40);
    ck_assert_uint_eq(f.got[4]->ts, 80);
    /* the packet is an FLV tag whose body is the RTMP payload */
    ck_assert_int_eq(f.got[2]->flv[0], FLV_TAG_VIDEO);
    ck_assert_mem_eq(tc_pkt_payload(f.got[2]), avc_key, sizeof(avc_key));
    ck_assert_int_eq(f.flushes, 1);     /* the start is written at once */
    /* live packets follow; the same packet object is shared; one flush
     * per batch */
    push(s, FLV_TAG_VIDEO, 120, avc_inter, sizeof(avc_inter));
    push(s, FLV_TAG_AUDIO, 130, aac_raw, sizeof(aac_raw));
    ck_assert_int_eq(f.flushes, 1);
    tc_hub_flush(s);
    ck_assert_int_eq(f.flushes, 2);
    tc_hub_flush(s);
    ck_assert_int_eq(f.flushes, 2);
    ck_assert_int_eq(f.n, 7);
    f.n--;
    tc_pkt_unref(f.got[f.n]);
    ck_assert_int_eq(s->nsubs[TC_PROTO_FLV], 1);
    ck_assert_ptr_eq(f.got[5], s->gop[s->ngop - 2]);
    tc_hub_detach(&f.sub);
    ck_assert_int_eq(s->nsubs[TC_PROTO_FLV], 0);
    fake_clear(&f);
}
END_TEST

START_TEST(merged_writes)
{
    tc_stream_t *s = publish("m");
    fake_t f = {0};
    struct timeval tv = {0, 60 * 1000};

    conf.viewer_flush_ms = 20;
    conf.viewer_merge_load = 0;        /* always merge */
    push(s, FLV_TAG_VIDEO, 0, avc_key, sizeof(avc_key));
    tc_hub_attach(s, &f.sub, &fops, TC_PROTO_FLV);
    ck_assert_int_eq(f.flushes, 1);
    for (int i = 1; i <= 3; i++) {
        push(s, FLV_TAG_VIDEO, (uint32_t)(i * 33), avc_inter, sizeof(avc_inter));
        tc_hub_flush(s);
    }
    /* the first read after a quiet spell is written at once, the next
     * ones within viewer-flush-ms are held back ... */
    ck_assert_int_eq(f.flushes, 2);
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    ck_assert_int_eq(f.flushes, 3);    /* ... and written once */
    ck_assert_int_eq(f.n, 4);
    ck_assert_int_eq(s->merged, 1);
    tc_hub_detach(&f.sub);
    fake_clear(&f);
}
END_TEST

START_TEST(no_gop_cache_waits_for_keyframe)
{
    tc_stream_t *s = publish("b");
    fake_t f = {0};

    conf.gop_cache = 0;
    push(s, FLV_TAG_VIDEO, 0, avc_seq, sizeof(avc_seq));
    push(s, FLV_TAG_VIDEO, 0, avc_key, sizeof(avc_key));
    tc_hub_attach(s, &f.sub, &fops, TC_PROTO_RTMP);
    ck_assert_int_eq(f.n, 1);          /* the sequence header only */
    push(s, FLV_TAG_VIDEO, 40, avc_inter, sizeof(avc_inter));
    ck_assert_int_eq(f.n, 1);
    push(s, FLV_TAG_VIDEO, 80, avc_key, sizeof(avc_key));
    ck_assert_int_eq(f.n, 2);
    ck_assert_int_eq(f.got[1]->key, 1);
    tc_hub_detach(&f.sub);
    fake_clear(&f);
}
END_TEST

START_TEST(slow_viewer_drops_then_is_cut)
{
    tc_stream_t *s = publish("c");
    fake_t f = {0};

    push(s, FLV_TAG_VIDEO, 0, avc_seq, sizeof(avc_seq));
    push(s, FLV_TAG_VIDEO, 0, avc_key, sizeof(avc_key));
    tc_hub_attach(s, &f.sub, &fops, TC_PROTO_FLV);
    ck_assert_int_eq(f.n, 2);
    f.queued = 5000;                   /* over the 1000-byte bound */
    push(s, FLV_TAG_VIDEO, 40, avc_inter, sizeof(avc_inter));
    ck_assert_int_eq(f.n, 2);
    ck_assert_int_eq(s->dropped, 1);
    f.queued = 0;                      /* drained, but mid-GOP: still dropping */
    push(s, FLV_TAG_VIDEO, 80, avc_inter, sizeof(avc_inter));
    ck_assert_int_eq(f.n, 2);
    push(s, FLV_TAG_VIDEO, 120, avc_key, sizeof(avc_key));
    ck_assert_int_eq(f.n, 3);          /* resumes at the keyframe */
    push(s, FLV_TAG_VIDEO, 160, avc_seq, sizeof(avc_seq));
    ck_assert_int_eq(f.n, 4);          /* configuration is never dropped */
    f.queued = 5000;
    push(s, FLV_TAG_VIDEO, 200, avc_inter, sizeof(avc_inter));
    usleep(80 * 1000);                 /* longer than viewer-queue-ms */
    push(s, FLV_TAG_VIDEO, 240, avc_inter, sizeof(avc_inter));
    ck_assert_int_eq(f.ended, 1);
    ck_assert_str_eq(f.reason, "slow");
    ck_assert_ptr_null(f.sub.stream);
    ck_assert_int_eq(s->nsubs[TC_PROTO_FLV], 0);
    fake_clear(&f);
}
END_TEST

START_TEST(one_publisher_per_stream)
{
    tc_stream_t *s = publish("d");
    int err = 0, other;

    ck_assert_ptr_null(tc_hub_publish(&hub, "live", "d", "", &other, &err));
    ck_assert_int_eq(err, -EBUSY);
    ck_assert_ptr_eq(tc_hub_find(&hub, "live", "d"), s);
    ck_assert_ptr_null(tc_hub_find(&hub, "other", "d"));
    tc_hub_unpublish(s);               /* no grace, no viewers: gone */
    ck_assert_ptr_null(tc_hub_find(&hub, "live", "d"));
}
END_TEST

START_TEST(max_streams)
{
    int err = 0;

    for (int i = 0; i < 4; i++) {
        char n[8];

        snprintf(n, sizeof(n), "s%d", i);
        publish(n);
    }
    ck_assert_ptr_null(tc_hub_publish(&hub, "live", "s9", "", &pub_token, &err));
    ck_assert_int_eq(err, -ENOSPC);
}
END_TEST

START_TEST(republish_in_grace_keeps_viewers)
{
    tc_stream_t *s;
    fake_t f = {0};
    struct timeval tv = {0, 400 * 1000};

    conf.publish_grace_ms = 200;
    s = publish("e");
    push(s, FLV_TAG_VIDEO, 1000, avc_seq, sizeof(avc_seq));
    push(s, FLV_TAG_VIDEO, 1000, avc_key, sizeof(avc_key));
    push(s, FLV_TAG_VIDEO, 1040, avc_inter, sizeof(avc_inter));
    tc_hub_attach(s, &f.sub, &fops, TC_PROTO_FLV);
    ck_assert_uint_eq(f.got[f.n - 1]->ts, 40);   /* the timeline starts at 0 */
    tc_hub_unpublish(s);
    ck_assert_ptr_eq(tc_hub_find(&hub, "live", "e"), s);
    ck_assert_int_eq(f.ended, 0);
    ck_assert_ptr_eq(publish("e"), s);
    push(s, FLV_TAG_VIDEO, 0, avc_key, sizeof(avc_key));
    /* the new publisher's timestamps continue the old timeline */
    ck_assert_uint_gt(f.got[f.n - 1]->ts, 40);
    tc_hub_unpublish(s);
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);         /* the grace period runs out */
    ck_assert_int_eq(f.ended, 1);
    ck_assert_str_eq(f.reason, "eos");
    ck_assert_ptr_null(tc_hub_find(&hub, "live", "e"));
    fake_clear(&f);
}
END_TEST

START_TEST(metadata_and_rtmp_form)
{
    /* "onMetaData" {width: 640, height: 360} as an ECMA array */
    static const uint8_t meta[] = {0x02, 0, 10, 'o', 'n', 'M', 'e', 't', 'a', 'D', 'a', 't', 'a',
                                   0x08, 0, 0, 0, 2,
                                   0, 5, 'w', 'i', 'd', 't', 'h', 0x00, 0x40, 0x84, 0, 0, 0, 0, 0, 0,
                                   0, 6, 'h', 'e', 'i', 'g', 'h', 't', 0x00, 0x40, 0x76, 0x80, 0, 0, 0, 0, 0,
                                   0, 0, 9};
    tc_stream_t *s = publish("f");
    fake_t f = {0};

    push(s, FLV_TAG_SCRIPT, 0, meta, sizeof(meta));
    ck_assert(s->info.width == 640 && s->info.height == 360);
    tc_hub_attach(s, &f.sub, &fops, TC_PROTO_RTMP);
    ck_assert_int_eq(f.n, 1);
    ck_assert_int_eq(tc_pkt_rtmp(f.got[0], 4096), 0);
    /* one type-0 chunk on chunk stream 5, message stream 1, type 18 */
    ck_assert_int_eq(f.got[0]->rtmp[0], 5);
    ck_assert_int_eq(f.got[0]->rtmp[7], 18);
    ck_assert_int_eq(f.got[0]->rtmp[8], 1);
    ck_assert_int_eq(f.got[0]->rtmp_len, 12 + sizeof(meta));
    tc_hub_detach(&f.sub);
    fake_clear(&f);
}
END_TEST

START_TEST(malformed_media_refused)
{
    tc_stream_t *s = publish("g");
    static const uint8_t short_avc[] = {0x17, 0x01};

    ck_assert_int_eq(tc_hub_push(s, FLV_TAG_VIDEO, 0, short_avc, 2, 0), -EPROTO);
    ck_assert_int_eq(tc_hub_push(s, FLV_TAG_AUDIO, 0, aac_raw, 1, 0), -EPROTO);
}
END_TEST

/* ---- publish authentication -------------------------------------------- */

static void sign(const char *secret, const char *name, unsigned long long exp, char *key, size_t n,
                 const char *extra)
{
    char msg[128], hex[65];
    uint8_t mac[32];
    unsigned ml = 32;

    snprintf(msg, sizeof(msg), "%s:%llu", name, exp);
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const uint8_t *)msg, strlen(msg), mac, &ml);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    snprintf(key, n, "%s?exp=%llu&sig=%s%s", name, exp, hex, extra);
}

START_TEST(auth)
{
    char key[256], name[64], opts[64];
    const char *why = NULL;

    ck_assert_int_eq(tc_auth_check("", "cam?blur=1&x=2", 100, name, sizeof(name), opts, sizeof(opts), &why), 0);
    ck_assert_str_eq(name, "cam");
    ck_assert_str_eq(opts, "blur=1&x=2");
    ck_assert_int_eq(tc_auth_check("k", "cam", 100, name, sizeof(name), opts, sizeof(opts), &why), -EACCES);
    ck_assert_str_eq(why, "missing exp or sig");
    sign("k", "cam", 200, key, sizeof(key), "&blur=1");
    ck_assert_int_eq(tc_auth_check("k", key, 100, name, sizeof(name), opts, sizeof(opts), &why), 0);
    ck_assert_str_eq(opts, "blur=1");
    ck_assert_int_eq(tc_auth_check("k", key, 201, name, sizeof(name), opts, sizeof(opts), &why), -EACCES);
    ck_assert_str_eq(why, "stream key expired");
    ck_assert_int_eq(tc_auth_check("other", key, 100, name, sizeof(name), opts, sizeof(opts), &why), -EACCES);
    ck_assert_str_eq(why, "bad signature");
    sign("k", "cam2", 200, key, sizeof(key), "");
    key[3] = '\0';   /* "cam" with cam2's signature cannot pass */
    memcpy(key, "cam", 3);
    memmove(key + 3, key + 4, strlen(key + 4) + 1);
    ck_assert_int_eq(tc_auth_check("k", key, 100, name, sizeof(name), opts, sizeof(opts), &why), -EACCES);
}
END_TEST

/* ---- fan-out load and the merge decision -------------------------------- */

#define MS 1000u
#define T0 ((uint64_t)5000000000u)

START_TEST(load_window)
{
    tc_load_t l;

    tc_load_init(&l, T0);
    tc_load_add(&l, T0 + 100 * MS, 100 * MS);
    ck_assert_int_eq(tc_load_permille(&l, T0 + 500 * MS), -1);   /* too little history */
    /* window [T0, T0+800ms): 100 ms busy of 800 */
    ck_assert_int_eq(tc_load_permille(&l, T0 + 800 * MS), 125);
    /* [T0+250ms, T0+1100ms): the busy bucket has slid out */
    ck_assert_int_eq(tc_load_permille(&l, T0 + 1100 * MS), 0);
    tc_load_add(&l, T0 + 1200 * MS, 300 * MS);
    tc_load_add(&l, T0 + 1300 * MS, 150 * MS);
    /* [T0+750ms, T0+1500ms): 450 ms busy of 750 */
    ck_assert_int_eq(tc_load_permille(&l, T0 + 1500 * MS), 600);
    /* [T0+1000ms, T0+1999ms): the same 450 ms of 999 */
    ck_assert_int_eq(tc_load_permille(&l, T0 + 1999 * MS), 450);
    tc_load_add(&l, T0 + 2000 * MS, 5000 * MS);
    ck_assert_int_eq(tc_load_permille(&l, T0 + 2000 * MS), 1000);   /* capped */
    /* a gap longer than the window forgets everything */
    ck_assert_int_eq(tc_load_permille(&l, T0 + 60000 * MS), 0);
    /* a clock that goes back counts as now */
    tc_load_add(&l, T0 + 59000 * MS, 100 * MS);
    ck_assert_int_eq(tc_load_permille(&l, T0 + 60000 * MS), 100 * 1000 / 750);
}
END_TEST

static const struct {
    int merged, threshold, hub_pm, stream_pm, want;
} decide_cases[] = {
    {0, 0, -1, -1, 1},       /* 0: always merge, even without history */
    {1, 0, 0, 0, 1},
    {0, 100, 1000, 1000, 0}, /* 100: never */
    {1, 100, 1000, 1000, 0},
    {1, 150, 1000, 1000, 0},
    {0, 10, -1, 500, 0},     /* too little history keeps the mode */
    {1, 10, 0, -1, 1},
    {0, 10, 100, 100, 0},    /* at the threshold: not yet */
    {0, 10, 101, 10, 1},     /* over it, the stream a tenth of it */
    {0, 10, 101, 9, 0},      /* a stream that costs next to nothing */
    {0, 10, 900, 9, 0},
    {0, 10, 60, 60, 0},      /* between a quarter and the whole: stays */
    {1, 10, 60, 60, 1},
    {1, 10, 25, 3, 1},       /* merged: stays down to a quarter ... */
    {1, 10, 24, 500, 0},     /* ... and a fortieth for the stream */
    {1, 10, 500, 2, 0},
    {0, 50, 501, 50, 1},
    {1, 50, 124, 500, 0},
    {1, 50, 125, 13, 1},
};

START_TEST(merge_decide)
{
    for (size_t i = 0; i < sizeof(decide_cases) / sizeof(decide_cases[0]); i++)
        ck_assert_msg(tc_merge_decide(decide_cases[i].merged, decide_cases[i].threshold,
                                      decide_cases[i].hub_pm, decide_cases[i].stream_pm) ==
                          decide_cases[i].want,
                      "case %zu", i);
}
END_TEST

/* One publisher read: a video frame and an audio frame, then the flush. */
static void read_batch(tc_stream_t *s, uint32_t ts)
{
    push(s, FLV_TAG_VIDEO, ts, ts % 1000 == 0 ? avc_key : avc_inter, sizeof(avc_inter));
    push(s, FLV_TAG_AUDIO, ts, aac_raw, sizeof(aac_raw));
    tc_hub_flush(s);
}

START_TEST(idle_stream_writes_per_read)
{
    tc_stream_t *s = publish("idle");
    fake_t f[3];
    uint64_t end = core_mono_us() + 1300 * MS;
    uint32_t ts = 0;
    int reads = 0;

    memset(f, 0, sizeof(f));
    conf.viewer_flush_ms = 40;
    conf.viewer_merge_load = 10;
    push(s, FLV_TAG_VIDEO, 0, avc_key, sizeof(avc_key));
    for (int i = 0; i < 3; i++)
        tc_hub_attach(s, &f[i].sub, &fops, TC_PROTO_FLV);
    /* longer than a window: the hub has measured and decided */
    while (core_mono_us() < end) {
        ts += 10;
        read_batch(s, ts);
        reads++;
        usleep(10 * 1000);
    }
    ck_assert_int_eq(s->merged, 0);
    ck_assert_uint_eq(s->merge_switches, 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(f[i].flushes, 1 + reads);  /* every read written at once */
    /* forced: viewer-merge-load 0 merges from the next read (held: the
     * last write is younger than viewer-flush-ms) */
    conf.viewer_merge_load = 0;
    conf.viewer_flush_ms = 1000;
    read_batch(s, ts + 10);
    ck_assert_int_eq(s->merged, 1);
    ck_assert_int_eq(hub.nmerged, 1);
    ck_assert_int_eq(f[0].flushes, 1 + reads);      /* held for the timer */
    /* viewer-flush-ms 0 never merges; what was held goes at once */
    conf.viewer_flush_ms = 0;
    read_batch(s, ts + 20);
    ck_assert_int_eq(s->merged, 0);
    ck_assert_int_eq(hub.nmerged, 0);
    ck_assert_int_eq(f[0].flushes, 1 + reads + 1);
    for (int i = 0; i < 3; i++) {
        tc_hub_detach(&f[i].sub);
        fake_clear(&f[i]);
    }
}
END_TEST

START_TEST(busy_stream_merges_then_recovers)
{
    tc_stream_t *s = publish("busy");
    fake_t f = {0};
    uint64_t deadline;
    uint32_t ts = 0;
    int held;

    conf.viewer_flush_ms = 40;
    conf.viewer_merge_load = 10;
    push(s, FLV_TAG_VIDEO, 0, avc_key, sizeof(avc_key));
    tc_hub_attach(s, &f.sub, &fops, TC_PROTO_FLV);
    /* writing to this viewer takes most of the loop: 2 x 10 ms per read */
    f.spin_us = 10 * MS;
    deadline = core_mono_us() + 5000 * MS;
    while (!s->merged && core_mono_us() < deadline) {
        ts += 20;
        read_batch(s, ts);
        usleep(2 * 1000);
    }
    ck_assert_int_eq(s->merged, 1);
    ck_assert_uint_eq(s->merge_switches, 1);
    conf.viewer_flush_ms = 1000;       /* however slow this machine is */
    held = f.flushes;
    ts += 20;
    read_batch(s, ts);
    ck_assert_int_eq(f.flushes, held);     /* merged: the timer writes */
    /* the load goes away: back to per-read writes after a window of
     * measurement in merged mode */
    f.spin_us = 0;
    deadline = core_mono_us() + 5000 * MS;
    while (s->merged && core_mono_us() < deadline) {
        ts += 20;
        read_batch(s, ts);
        usleep(20 * 1000);
    }
    ck_assert_int_eq(s->merged, 0);
    ck_assert_uint_eq(s->merge_switches, 2);
    held = f.flushes;
    read_batch(s, ts + 20);
    ck_assert_int_eq(f.flushes, held + 1);
    tc_hub_detach(&f.sub);
    fake_clear(&f);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("transcoder/hub");
    TCase *tc = tcase_create("hub");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, gop_cache_on_attach);
    tcase_add_test(tc, no_gop_cache_waits_for_keyframe);
    tcase_add_test(tc, merged_writes);
    tcase_add_test(tc, slow_viewer_drops_then_is_cut);
    tcase_add_test(tc, one_publisher_per_stream);
    tcase_add_test(tc, max_streams);
    tcase_add_test(tc, republish_in_grace_keeps_viewers);
    tcase_add_test(tc, metadata_and_rtmp_form);
    tcase_add_test(tc, malformed_media_refused);
    suite_add_tcase(s, tc);
    tc = tcase_create("merge");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, load_window);
    tcase_add_test(tc, merge_decide);
    tcase_add_test(tc, idle_stream_writes_per_read);
    tcase_add_test(tc, busy_stream_merges_then_recovers);
    suite_add_tcase(s, tc);
    tc = tcase_create("auth");
    tcase_add_test(tc, auth);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
