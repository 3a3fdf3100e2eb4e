/* Unit tests for transcoder/hub (with subscribers that record what they
 * get instead of sockets) and the publish authentication. */
#include "transcoder/tc_int.h"

#include "core/arena.h"

#include <check.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
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

/* A copy of p in memory the hub may adopt. */
static uint8_t *owned_copy(const uint8_t *p, size_t n)
{
    uint8_t *o = core_malloc(CORE_TAG_HUB_PACKETS, n > 0 ? n : 1);

    ck_assert_ptr_nonnull(o);
    if (n > 0)
        memcpy(o, p, n);
    return o;
}

START_TEST(lazy_framing_matches_eager)
{
    /* lengths whose chunk headers have 1 to 5 hex digits */
    static const uint32_t lens[] = {0, 1, 4, 300, 4081, 5000, 70000};

    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        uint32_t n = lens[i];
        uint8_t *src = core_malloc(CORE_TAG_TEST, n + 1);
        tc_pkt_t *eager, *lazy;
        size_t framed;

        for (uint32_t k = 0; k < n; k++)
            src[k] = (uint8_t)(k * 7 + i);
        eager = tc_pkt_new(FLV_TAG_VIDEO, 0x12345678u, src, n);
        lazy = tc_pkt_adopt(FLV_TAG_VIDEO, 0x12345678u, owned_copy(src, n), n);
        ck_assert_ptr_nonnull(eager);
        ck_assert_ptr_nonnull(lazy);
        /* nothing framed until asked; the payload is readable already */
        ck_assert_ptr_null(lazy->flv);
        ck_assert_mem_eq(tc_pkt_payload(lazy), src, n);
        ck_assert_int_eq(tc_pkt_flv(lazy), 0);
        ck_assert_ptr_nonnull(lazy->flv);
        ck_assert_int_eq(lazy->chunk_hdr, eager->chunk_hdr);
        framed = lazy->chunk_hdr + tc_pkt_flv_len(lazy) + 2;
        ck_assert_mem_eq(lazy->flv - lazy->chunk_hdr, eager->flv - eager->chunk_hdr, framed);
        /* and both are what FLV and HTTP/1.1 chunking say, spelled out here
         * independently of the framing code */
        {
            char hdr[16];
            const uint8_t *t = lazy->flv;
            size_t tag = 11 + (size_t)n + 4;
            uint32_t prev = 11 + n;

            snprintf(hdr, sizeof(hdr), "%zx\r\n", tag);
            ck_assert_uint_eq(tc_pkt_flv_len(lazy), tag);
            ck_assert_uint_eq((size_t)lazy->chunk_hdr, strlen(hdr));
            ck_assert_mem_eq(lazy->flv - lazy->chunk_hdr, hdr, strlen(hdr));
            ck_assert_uint_eq(t[0], FLV_TAG_VIDEO);
            ck_assert_uint_eq(((uint32_t)t[1] << 16) | ((uint32_t)t[2] << 8) | t[3], n);
            ck_assert_uint_eq(((uint32_t)t[7] << 24) | ((uint32_t)t[4] << 16) |
                              ((uint32_t)t[5] << 8) | t[6], 0x12345678u);
            ck_assert_uint_eq(((uint32_t)t[tag - 4] << 24) | ((uint32_t)t[tag - 3] << 16) |
                              ((uint32_t)t[tag - 2] << 8) | t[tag - 1], prev);
            ck_assert_mem_eq(t + tag, "\r\n", 2);
        }
        /* the payload moved into the tag and is still the same bytes */
        ck_assert_ptr_eq(tc_pkt_payload(lazy), lazy->flv + FLV_TAG_HEADER_LEN);
        ck_assert_mem_eq(tc_pkt_payload(lazy), src, n);
        /* built once */
        {
            const uint8_t *flv = lazy->flv;

            ck_assert_int_eq(tc_pkt_flv(lazy), 0);
            ck_assert_ptr_eq(lazy->flv, flv);
        }
        /* the RTMP form is the same too */
        ck_assert_int_eq(tc_pkt_rtmp(eager, 128), 0);
        ck_assert_int_eq(tc_pkt_rtmp(lazy, 128), 0);
        ck_assert_uint_eq(lazy->rtmp_len, eager->rtmp_len);
        ck_assert_mem_eq(lazy->rtmp, eager->rtmp, eager->rtmp_len);
        tc_pkt_unref(eager);
        tc_pkt_unref(lazy);
        core_free(src);
    }
    /* an adopted packet nobody framed frees its payload */
    tc_pkt_unref(tc_pkt_adopt(FLV_TAG_AUDIO, 1, owned_copy(aac_raw, sizeof(aac_raw)),
                              sizeof(aac_raw)));
}
END_TEST

/* Everything a socket peer of a viewer's bufferevent received. */
static size_t drain(int fd, uint8_t *buf, size_t cap)
{
    size_t have = 0;
    ssize_t n;

    while (have < cap && (n = recv(fd, buf + have, cap - have, MSG_DONTWAIT)) > 0)
        have += (size_t)n;
    return have;
}

/* The same publisher through tc_hub_push (copies, framed at once) and
 * tc_hub_push_take (adopted, framed on first use): a late viewer's GOP
 * replay goes out byte for byte the same, in every form. */
START_TEST(taken_payloads_replay_byte_identical)
{
    static const uint8_t meta[] = {0x02, 0, 10, 'o', 'n', 'M', 'e', 't', 'a', 'D', 'a', 't', 'a',
                                   0x08, 0, 0, 0, 0, 0, 0, 9};
    static const struct {
        uint8_t type;
        uint32_t ts;
        const uint8_t *p;
        size_t n;
    } seq[] = {
        {FLV_TAG_SCRIPT, 0, meta, sizeof(meta)},
        {FLV_TAG_VIDEO, 0, avc_seq, sizeof(avc_seq)},
        {FLV_TAG_AUDIO, 0, aac_seq, sizeof(aac_seq)},
        {FLV_TAG_VIDEO, 40, avc_key, sizeof(avc_key)},
        {FLV_TAG_AUDIO, 50, aac_raw, sizeof(aac_raw)},
        {FLV_TAG_VIDEO, 80, avc_inter, sizeof(avc_inter)},
        {FLV_TAG_AUDIO, 73, aac_raw, sizeof(aac_raw)},
    };
    static const tc_form_t forms[] = {TC_FORM_FLV, TC_FORM_FLV_CHUNKED, TC_FORM_RTMP};
    tc_stream_t *a = publish("copy"), *b = publish("take");
    fake_t fa = {0}, fb = {0};

    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        ck_assert_int_eq(tc_hub_push(a, seq[i].type, seq[i].ts, seq[i].p, (uint32_t)seq[i].n, 0), 0);
        ck_assert_int_eq(tc_hub_push_take(b, seq[i].type, seq[i].ts, owned_copy(seq[i].p, seq[i].n),
                                          (uint32_t)seq[i].n, 0), 0);
    }
    /* nobody watched b: none of its packets was framed */
    ck_assert_ptr_null(b->vconfig->flv);
    ck_assert_ptr_null(b->meta->flv);
    for (size_t i = 0; i < b->ngop; i++)
        ck_assert_ptr_null(b->gop[i]->flv);
    ck_assert_int_eq(tc_hub_attach(a, &fa.sub, &fops, TC_PROTO_FLV), 0);
    ck_assert_int_eq(tc_hub_attach(b, &fb.sub, &fops, TC_PROTO_FLV), 0);
    ck_assert_int_eq(fa.n, 7);   /* metadata, two sequence headers, the GOP of 4 */
    ck_assert_int_eq(fb.n, fa.n);
    for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
        int sa[2], sb[2];
        struct bufferevent *ba, *bb;
        static uint8_t ra[8192], rb[8192];
        size_t na, nb;

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sa), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sb), 0);
        ba = bufferevent_socket_new(base, sa[0], BEV_OPT_CLOSE_ON_FREE);
        bb = bufferevent_socket_new(base, sb[0], BEV_OPT_CLOSE_ON_FREE);
        ck_assert_int_eq(bufferevent_enable(ba, EV_READ | EV_WRITE), 0);
        ck_assert_int_eq(bufferevent_enable(bb, EV_READ | EV_WRITE), 0);
        {
            /* a stream that flips between per-read and merged writes: packets
             * go straight to the socket, are held for the merged write, and
             * are queued by reference behind held ones */
            static tc_stream_t ms;
            tc_sub_t ua, ub;
            int sent;

            memset(&ms, 0, sizeof(ms));
            memset(&ua, 0, sizeof(ua));
            memset(&ub, 0, sizeof(ub));
            ua.conn = (tc_sub_conn_t){ba, bufferevent_get_output(ba), sa[0], forms[f], 128};
            ub.conn = (tc_sub_conn_t){bb, bufferevent_get_output(bb), sb[0], forms[f], 128};
            ua.stream = ub.stream = &ms;
            for (int i = 0; i < fa.n; i++) {
                ms.merged = i % 3 == 1;
                ck_assert_int_gt(tc_pkt_send(fa.got[i], &ua, &sent), 0);
                ck_assert_int_gt(tc_pkt_send(fb.got[i], &ub, &sent), 0);
            }
            tc_sub_flush(&ua);
            tc_sub_flush(&ub);
        }
        na = drain(sa[1], ra, sizeof(ra));
        nb = drain(sb[1], rb, sizeof(rb));
        ck_assert_uint_gt(na, 0);
        ck_assert_uint_eq(na, nb);
        ck_assert_mem_eq(ra, rb, na);
        bufferevent_free(ba);
        bufferevent_free(bb);
        close(sa[1]);
        close(sb[1]);
    }
    tc_hub_detach(&fa.sub);
    tc_hub_detach(&fb.sub);
    fake_clear(&fa);
    fake_clear(&fb);
}
END_TEST

START_TEST(taken_payload_freed_on_refusal)
{
    tc_stream_t *s = publish("refuse");
    static const uint8_t short_avc[] = {0x17};

    /* a body too short for its codec is refused and its payload freed
     * (the teardown checks that no packet bytes stay live) */
    ck_assert_int_eq(tc_hub_push_take(s, FLV_TAG_VIDEO, 0, owned_copy(short_avc, 1), 1, 0), -EPROTO);
    ck_assert_int_eq(tc_hub_push_take(s, FLV_TAG_AUDIO, 0, owned_copy(short_avc, 0), 0, 0), -EPROTO);
    ck_assert_uint_eq(s->packets_in, 0);
}
END_TEST

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
    tcase_add_test(tc, lazy_framing_matches_eager);
    tcase_add_test(tc, taken_payloads_replay_byte_identical);
    tcase_add_test(tc, taken_payload_freed_on_refusal);
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
