// SPDX-License-Identifier: GPL-2.0
/* goprobe.bpf.c: uprobe programs that time Go function calls and read
 * their arguments, without writing anything into the target.
 *
 * Each probe has an entry program (attached after the function's
 * stack-growth check, so a call that grows its stack is seen once) and a
 * return program (attached to every RET instruction of the function; Go
 * must never get uretprobes, which corrupt moving goroutine stacks).
 * Entry stores a partially filled gp_event in the in-flight LRU map keyed
 * by (tgid, probe kind, goroutine pointer); return completes it and sends
 * it through the ring buffer.
 *
 * Go >= 1.17 register ABI on amd64: integer arguments and results in RAX,
 * RBX, RCX, RDI, RSI, R8, R9, R10, R11; R14 holds the current g.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "goprobe.h"

char LICENSE[] SEC("license") = "GPL";

/* Sized for thousands of concurrent calls (blocked handlers, slow
 * upstreams); LRU so calls that never return (a handler that panics)
 * cannot fill it for good. */
#define GP_INFLIGHT_ENTRIES 65536

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gp_config);
} config SEC(".maps");

/* Per hooked function: which registers hold what (see goprobe.h). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GP_HOOKS_MAX);
	__type(key, __u32);
	__type(value, struct gp_hook);
} hooks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GP_INFLIGHT_ENTRIES);
	__type(key, struct gp_inflight_key);
	__type(value, struct gp_event);
} inflight SEC(".maps");

/* database/sql calls in flight: small records, the text is read at return. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GP_INFLIGHT_ENTRIES);
	__type(key, struct gp_inflight_key);
	__type(value, struct gp_call);
} calls SEC(".maps");

/* Scratch space: the events are too large for the 512-byte BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gp_event);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gp_db_event);
} scratch_db SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gp_panic_event);
} scratch_panic SEC(".maps");

/* One map bucket or group of Request.Header while searching it. */
#define GP_BUCKET_BYTES 336
struct gp_mapbuf {
	__u8 b[GP_BUCKET_BYTES];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gp_mapbuf);
} mapbuf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GP_LOST_MAX);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* 8 MiB: about 8,000 events of slack when user space falls behind. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/* Wake the reader only once this much data is waiting; user space also
 * polls with a short timeout, so a quiet trickle of events is still read
 * promptly. Batching the wake-ups keeps the per-call cost low under load. */
#define GP_WAKEUP_BYTES (256 << 10)

static __always_inline void count_lost(__u32 idx)
{
	__u64 *n = bpf_map_lookup_elem(&lost, &idx);
	if (n)
		*n += 1;
}

static __always_inline struct gp_config *get_config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&config, &zero);
}

static __always_inline int read_u64(__u64 *dst, __u64 addr)
{
	return bpf_probe_read_user(dst, sizeof(*dst), (void *)addr);
}

static __always_inline __u64 off(struct gp_config *cfg, int f)
{
	return cfg->off[f & (GP_F_MAX - 1)];
}

/* The in-flight map key of a call of `kind` on the current goroutine. */
static __always_inline struct gp_inflight_key call_key(void *ctx, __u32 kind)
{
	struct gp_regs_x86_64 *regs = (struct gp_regs_x86_64 *)ctx;
	struct gp_inflight_key key = {
		.tgid = bpf_get_current_pid_tgid() >> 32, .kind = kind, .g = regs->r14};
	return key;
}

/* The current goroutine's id into *dst (left as is when the offset is
 * unknown); non-zero when the read failed. */
static __always_inline int read_goid(void *ctx, struct gp_config *cfg, __u64 *dst)
{
	struct gp_regs_x86_64 *regs = (struct gp_regs_x86_64 *)ctx;
	if (off(cfg, GP_F_G_GOID) == GP_NO_OFFSET)
		return 0;
	return read_u64(dst, regs->r14 + off(cfg, GP_F_G_GOID));
}

/* The hook this uprobe was attached for: its index is the attach cookie. */
static __always_inline struct gp_hook *get_hook(void *ctx)
{
	__u32 idx = (__u32)bpf_get_attach_cookie(ctx);
	return bpf_map_lookup_elem(&hooks, &idx);
}

/* The register holding register-ABI word `w` (amd64 order: RAX, RBX, RCX,
 * RDI, RSI, R8, R9, R10, R11). The verifier rejects loads through a
 * variable offset into the uprobe context (and clang turns a switch into
 * exactly that), so the nine registers are copied to the stack with
 * constant offsets and indexed there. */
static __always_inline __u64 word(void *ctx, __u8 w)
{
	struct gp_regs_x86_64 *r = (struct gp_regs_x86_64 *)ctx;
	__u64 abi[9] = {r->rax, r->rbx, r->rcx, r->rdi, r->rsi, r->r8, r->r9, r->r10, r->r11};
	if (w >= 9)
		return 0;
	return abi[w];
}

static __always_inline __u64 slot(void *ctx, struct gp_hook *h, int s)
{
	return word(ctx, h->reg[s & (GP_SLOTS - 1)]);
}

static __always_inline void output(void *data, __u64 size)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= GP_WAKEUP_BYTES)
		flags = BPF_RB_FORCE_WAKEUP;
	if (bpf_ringbuf_output(&events, data, size, flags))
		count_lost(GP_LOST_RINGBUF);
}

/* The dynamic type of a non-empty interface: itab->_type, the second word
 * of runtime.itab (internal/abi.ITab) in every Go release goprobe supports. */
static __always_inline __u64 itab_type(__u64 itab)
{
	__u64 t = 0;
	if (itab)
		read_u64(&t, itab + 8);
	return t;
}

/* Reads a Go string header (ptr, len) at `addr` and copies up to `max`
 * bytes of its data into dst. Stores the real length in *len_out. */
#define READ_GO_STRING(ev, addr, field, len_field)                              \
	({                                                                           \
		int __ret = 0;                                                       \
		__u64 __hdr[2] = {0, 0};                                             \
		if (bpf_probe_read_user(__hdr, sizeof(__hdr), (void *)(addr))) {     \
			__ret = -1;                                                  \
		} else {                                                             \
			__u64 __n = __hdr[1];                                        \
			(ev)->len_field = __n > 0xffffffffULL ? 0xffffffffU : (__u32)__n; \
			if (__n > sizeof((ev)->field))                               \
				__n = sizeof((ev)->field);                           \
			asm volatile("" : "+r"(__n));                                \
			if (__n > sizeof((ev)->field))                               \
				__n = 0;                                             \
			if (__n && bpf_probe_read_user((ev)->field, __n,             \
						       (void *)__hdr[0]))            \
				__ret = -1;                                          \
		}                                                                    \
		__ret;                                                               \
	})

static __always_inline struct gp_event *start_event(void *ctx, __u32 kind,
						     struct gp_config *cfg)
{
	struct gp_regs_x86_64 *regs = (struct gp_regs_x86_64 *)ctx;
	__u32 zero = 0;
	struct gp_event *ev = bpf_map_lookup_elem(&scratch, &zero);
	if (!ev)
		return 0;
	/* The scratch slot is reused: reset every scalar a previous event set.
	 * String bytes past each *_len are left stale (too big to clear
	 * cheaply); user space never reads past min(len, buffer size). */
	ev->flags = 0;
	ev->goid = 0;
	ev->end_ns = 0;
	ev->status = 0;
	ev->ptr_a = 0;
	ev->ptr_b = 0;
	ev->unwound_by = 0;
	ev->method_len = 0;
	ev->path_len = 0;
	ev->host_len = 0;
	ev->proto_len = 0;
	ev->peer_len = 0;
	ev->route_len = 0;
	ev->scheme_len = 0;
	ev->query_len = 0;
	ev->traceparent_len = 0;
	__u64 id = bpf_get_current_pid_tgid();
	ev->kind = kind;
	ev->pid = id >> 32;
	ev->tid = (__u32)id;
	ev->g = regs->r14;
	ev->start_ns = bpf_ktime_get_ns();
	if (read_goid(ctx, cfg, &ev->goid))
		ev->flags |= GP_FLAG_READ_FAILED;
	return ev;
}

static __always_inline void store_inflight(struct gp_event *ev)
{
	struct gp_inflight_key key = {.tgid = ev->pid, .kind = ev->kind, .g = ev->g};
	if (ev->flags & GP_FLAG_READ_FAILED)
		count_lost(GP_LOST_READ);
	if (bpf_map_update_elem(&inflight, &key, ev, BPF_ANY))
		count_lost(GP_LOST_INFLIGHT);
}

static __always_inline struct gp_event *take_inflight(void *ctx, __u32 kind,
						      struct gp_inflight_key *key)
{
	*key = call_key(ctx, kind);
	struct gp_event *ev = bpf_map_lookup_elem(&inflight, key);
	if (!ev)
		count_lost(GP_LOST_UNPAIRED);
	return ev;
}

static __always_inline void finish(struct gp_event *ev, struct gp_inflight_key *key)
{
	ev->end_ns = bpf_ktime_get_ns();
	output(ev, sizeof(*ev));
	bpf_map_delete_elem(&inflight, key);
}

/* --- Incoming trace context: the Traceparent entry of Request.Header ---
 *
 * Header is a map[string][]string. goprobe cannot hash the key (the seed
 * is per map and the hash is the runtime's), so it scans every slot and
 * compares keys; a header map is small. Keys are canonical
 * ("Traceparent"). Only the first value is used. Bounds keep the verifier
 * happy and the cost fixed; a bigger map sets GP_FLAG_MAP_TOO_BIG. */
#define GP_TP_KEY "Traceparent"
#define GP_TP_KEY_LEN 11

/* Slot layout for map[string][]string on 64-bit: a string key is 16 bytes,
 * a []string value 24.
 * Go < 1.24 bucket: tophash[8] @0, keys[8] @8, elems[8] @136, overflow @328.
 * Go >= 1.24 group: ctrl word @0, then 8 slots of {key @0, elem @16}, 40 bytes each. */
#define GP_BK_KEYS 8
#define GP_BK_ELEMS 136
#define GP_BK_OVERFLOW 328
#define GP_GR_SLOTS 8
#define GP_GR_SLOT_SIZE 40
#define GP_GR_BYTES 328
/* runtime/map.go: tophash values below minTopHash (5) mark empty or evacuated slots. */
#define GP_MIN_TOPHASH 5
/* Limits: 2^4 buckets (about 104 headers) plus the old array while growing;
 * 4 Swiss tables of up to 16 groups. */
#define GP_MAX_B 4
#define GP_MAX_CHAIN 2
#define GP_MAX_TABLES 4
#define GP_MAX_GROUPS 16

/* If the key at buf+koff is "Traceparent", copy the first value of the
 * []string at buf+voff into ev and return 1. */
static __always_inline int match_slot(struct gp_event *ev, __u8 *buf, __u32 koff, __u32 voff)
{
	if (koff > GP_BUCKET_BYTES - 16 || voff > GP_BUCKET_BYTES - 24)
		return 0;
	__u64 kptr = *(__u64 *)(buf + koff);
	__u64 klen = *(__u64 *)(buf + koff + 8);
	if (klen != GP_TP_KEY_LEN || !kptr)
		return 0;
	char k[GP_TP_KEY_LEN];
	if (bpf_probe_read_user(k, sizeof(k), (void *)kptr))
		return 0;
	const char want[] = GP_TP_KEY;
#pragma unroll
	for (int i = 0; i < GP_TP_KEY_LEN; i++)
		if (k[i] != want[i])
			return 0;
	__u64 vptr = *(__u64 *)(buf + voff);
	__u64 vlen = *(__u64 *)(buf + voff + 8);
	if (!vptr || vlen < 1)
		return 1;
	if (READ_GO_STRING(ev, vptr, traceparent, traceparent_len))
		ev->flags |= GP_FLAG_READ_FAILED;
	return 1;
}

/* Scan one bucket (and up to GP_MAX_CHAIN-1 overflow buckets). */
static __always_inline int scan_buckets(struct gp_event *ev, __u8 *buf, __u64 addr)
{
	for (int c = 0; c < GP_MAX_CHAIN; c++) {
		if (!addr)
			return 0;
		if (bpf_probe_read_user(buf, GP_BUCKET_BYTES, (void *)addr))
			return 0;
#pragma unroll
		for (int s = 0; s < 8; s++) {
			if (buf[s] < GP_MIN_TOPHASH)
				continue;
			if (match_slot(ev, buf, GP_BK_KEYS + 16 * s, GP_BK_ELEMS + 24 * s))
				return 1;
		}
		addr = *(__u64 *)(buf + GP_BK_OVERFLOW);
	}
	if (addr)
		ev->flags |= GP_FLAG_MAP_TOO_BIG;
	return 0;
}

static __always_inline int scan_group(struct gp_event *ev, __u8 *buf, __u64 addr)
{
	if (!addr || bpf_probe_read_user(buf, GP_GR_BYTES, (void *)addr))
		return 0;
#pragma unroll
	for (int s = 0; s < GP_GR_SLOTS; s++) {
		/* internal/runtime/maps: a control byte with the high bit clear is a full slot. */
		if (buf[s] & 0x80)
			continue;
		if (match_slot(ev, buf, 8 + GP_GR_SLOT_SIZE * s, 8 + GP_GR_SLOT_SIZE * s + 16))
			return 1;
	}
	return 0;
}

static __always_inline void read_traceparent(struct gp_event *ev, struct gp_config *cfg, __u64 req)
{
	if (cfg->map_mode == GP_MAP_NONE || off(cfg, GP_F_REQ_HEADER) == GP_NO_OFFSET)
		return;
	__u32 zero = 0;
	struct gp_mapbuf *mb = bpf_map_lookup_elem(&mapbuf, &zero);
	if (!mb)
		return;
	__u64 m = 0;
	if (read_u64(&m, req + off(cfg, GP_F_REQ_HEADER)) || !m)
		return;
	if (cfg->map_mode == GP_MAP_BUCKETS) {
		__u8 b = 0;
		__u64 buckets = 0, old = 0;
		if (bpf_probe_read_user(&b, 1, (void *)(m + off(cfg, GP_F_HMAP_B))) ||
		    read_u64(&buckets, m + off(cfg, GP_F_HMAP_BUCKETS)) ||
		    read_u64(&old, m + off(cfg, GP_F_HMAP_OLDBUCKETS)))
			return;
		if (b > GP_MAX_B) {
			ev->flags |= GP_FLAG_MAP_TOO_BIG;
			return;
		}
		__u32 n = 1u << b;
		for (__u32 i = 0; i < (1u << GP_MAX_B); i++) {
			if (i >= n)
				break;
			if (scan_buckets(ev, mb->b, buckets + (__u64)i * GP_BUCKET_BYTES))
				return;
		}
		/* While the map grows, entries not yet moved are in the old
		 * array (half the size); moved ones are marked evacuated there. */
		for (__u32 i = 0; old && i < (1u << (GP_MAX_B - 1)); i++) {
			if (i >= n / 2)
				break;
			if (scan_buckets(ev, mb->b, old + (__u64)i * GP_BUCKET_BYTES))
				return;
		}
		return;
	}
	/* GP_MAP_SWISS */
	__u64 dir = 0, dirlen = 0;
	if (read_u64(&dir, m + off(cfg, GP_F_SMAP_DIRPTR)) ||
	    read_u64(&dirlen, m + off(cfg, GP_F_SMAP_DIRLEN)))
		return;
	if (dirlen == 0) {
		/* A small map (up to 8 entries): dirPtr points at its one group. */
		scan_group(ev, mb->b, dir);
		return;
	}
	if (dirlen > GP_MAX_TABLES) {
		ev->flags |= GP_FLAG_MAP_TOO_BIG;
		return;
	}
	__u64 groups_off = off(cfg, GP_F_STABLE_GROUPS);
	for (__u32 t = 0; t < GP_MAX_TABLES; t++) {
		if (t >= dirlen)
			break;
		__u64 table = 0, data = 0, mask = 0;
		if (read_u64(&table, dir + 8 * (__u64)t) || !table)
			return;
		if (read_u64(&data, table + groups_off + off(cfg, GP_F_GROUPS_DATA)) ||
		    read_u64(&mask, table + groups_off + off(cfg, GP_F_GROUPS_MASK)))
			return;
		if (mask + 1 > GP_MAX_GROUPS) {
			ev->flags |= GP_FLAG_MAP_TOO_BIG;
			return;
		}
		for (__u32 g = 0; g < GP_MAX_GROUPS; g++) {
			if (g > mask)
				break;
			if (scan_group(ev, mb->b, data + (__u64)g * GP_GR_BYTES))
				return;
		}
	}
}

/* The mux fills the route in during ServeHTTP, so it is read at return
 * (or when a panic escapes the handler). */
static __always_inline void read_route(struct gp_event *ev, struct gp_config *cfg, __u64 req)
{
	if (cfg->route_mode == GP_ROUTE_PATTERN) {
		if (READ_GO_STRING(ev, req + off(cfg, GP_F_REQ_PATTERN), route, route_len))
			ev->flags |= GP_FLAG_READ_FAILED;
	} else if (cfg->route_mode == GP_ROUTE_PAT_PTR) {
		__u64 pat = 0;
		if (read_u64(&pat, req + off(cfg, GP_F_REQ_PAT)) == 0 && pat) {
			if (READ_GO_STRING(ev, pat + off(cfg, GP_F_PATTERN_STR), route, route_len))
				ev->flags |= GP_FLAG_READ_FAILED;
		}
	}
}

/* net/http.serverHandler.ServeHTTP(sh serverHandler, rw ResponseWriter, req *Request) */
SEC("uprobe")
int http_server_entry(void *ctx)
{
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h)
		return 0;
	struct gp_event *ev = start_event(ctx, GP_KIND_HTTP_SERVER, cfg);
	if (!ev)
		return 0;
	__u64 req = slot(ctx, h, 2);
	ev->ptr_a = req;
	ev->ptr_b = slot(ctx, h, 1);
	int bad = 0;
	bad |= READ_GO_STRING(ev, req + off(cfg, GP_F_REQ_METHOD), method, method_len);
	bad |= READ_GO_STRING(ev, req + off(cfg, GP_F_REQ_PROTO), proto, proto_len);
	bad |= READ_GO_STRING(ev, req + off(cfg, GP_F_REQ_HOST), host, host_len);
	bad |= READ_GO_STRING(ev, req + off(cfg, GP_F_REQ_REMOTE_ADDR), peer, peer_len);
	__u64 url = 0;
	if (read_u64(&url, req + off(cfg, GP_F_REQ_URL)) || !url) {
		bad = 1;
	} else {
		bad |= READ_GO_STRING(ev, url + off(cfg, GP_F_URL_PATH), path, path_len);
	}
	if (bad)
		ev->flags |= GP_FLAG_READ_FAILED;
	read_traceparent(ev, cfg, req);
	store_inflight(ev);
	return 0;
}

SEC("uprobe")
int http_server_return(void *ctx)
{
	struct gp_config *cfg = get_config();
	if (!cfg)
		return 0;
	struct gp_inflight_key key = {};
	struct gp_event *ev = take_inflight(ctx, GP_KIND_HTTP_SERVER, &key);
	if (!ev)
		return 0;
	__u64 req = ev->ptr_a;
	/* rw's dynamic type is *http.response for HTTP/1.x; only then is the
	 * status field where the offset says. */
	if (ev->proto[5] == '1' && ev->ptr_b && off(cfg, GP_F_RESPONSE_STATUS) != GP_NO_OFFSET) {
		__s64 status = 0;
		if (bpf_probe_read_user(&status, sizeof(status), (void *)(ev->ptr_b + off(cfg, GP_F_RESPONSE_STATUS)))) {
			ev->flags |= GP_FLAG_READ_FAILED;
			count_lost(GP_LOST_READ);
		}
		ev->status = status;
	}
	read_route(ev, cfg, req);
	finish(ev, &key);
	return 0;
}

/* net/http.(*Transport).roundTrip(t *Transport, req *Request) (*Response, error) */
SEC("uprobe")
int http_client_entry(void *ctx)
{
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h)
		return 0;
	struct gp_event *ev = start_event(ctx, GP_KIND_HTTP_CLIENT, cfg);
	if (!ev)
		return 0;
	__u64 req = slot(ctx, h, 0);
	ev->ptr_a = req;
	int bad = 0;
	bad |= READ_GO_STRING(ev, req + off(cfg, GP_F_REQ_METHOD), method, method_len);
	bad |= READ_GO_STRING(ev, req + off(cfg, GP_F_REQ_HOST), peer, peer_len);
	__u64 url = 0;
	if (read_u64(&url, req + off(cfg, GP_F_REQ_URL)) || !url) {
		bad = 1;
	} else {
		bad |= READ_GO_STRING(ev, url + off(cfg, GP_F_URL_SCHEME), scheme, scheme_len);
		bad |= READ_GO_STRING(ev, url + off(cfg, GP_F_URL_HOST), host, host_len);
		bad |= READ_GO_STRING(ev, url + off(cfg, GP_F_URL_PATH), path, path_len);
		bad |= READ_GO_STRING(ev, url + off(cfg, GP_F_URL_RAW_QUERY), query, query_len);
	}
	if (bad)
		ev->flags |= GP_FLAG_READ_FAILED;
	store_inflight(ev);
	return 0;
}

SEC("uprobe")
int http_client_return(void *ctx)
{
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h)
		return 0;
	struct gp_inflight_key key = {};
	struct gp_event *ev = take_inflight(ctx, GP_KIND_HTTP_CLIENT, &key);
	if (!ev)
		return 0;
	__u64 resp = slot(ctx, h, 1);
	if (slot(ctx, h, 2))
		ev->flags |= GP_FLAG_ERROR;
	if (resp) {
		__s64 code = 0;
		if (bpf_probe_read_user(&code, sizeof(code), (void *)(resp + off(cfg, GP_F_RESP_STATUS_CODE)))) {
			ev->flags |= GP_FLAG_READ_FAILED;
			count_lost(GP_LOST_READ);
		}
		ev->status = code;
	} else {
		ev->flags |= GP_FLAG_NO_RESPONSE;
	}
	finish(ev, &key);
	return 0;
}

/* --- database/sql --- */

SEC("uprobe")
int db_call_entry(void *ctx)
{
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h)
		return 0;
	struct gp_call c = {};
	c.start_ns = bpf_ktime_get_ns();
	c.hook = (__u32)bpf_get_attach_cookie(ctx);
	if (read_goid(ctx, cfg, &c.goid))
		c.flags |= GP_FLAG_READ_FAILED;
	c.w[0] = slot(ctx, h, 0);
	c.w[1] = slot(ctx, h, 1);
	c.w[2] = slot(ctx, h, 2);
	if ((h->flags & GP_HOOK_SKIP_IF_TX_DONE) && off(cfg, GP_F_TX_DONE) != GP_NO_OFFSET) {
		__u32 done = 0;
		if (bpf_probe_read_user(&done, sizeof(done), (void *)(c.w[0] + off(cfg, GP_F_TX_DONE))) == 0 && done)
			c.flags |= GP_CALL_SKIP;
	}
	struct gp_inflight_key key = call_key(ctx, GP_KIND_DB);
	if (bpf_map_update_elem(&calls, &key, &c, BPF_ANY))
		count_lost(GP_LOST_INFLIGHT);
	return 0;
}

SEC("uprobe")
int db_call_return(void *ctx)
{
	struct gp_regs_x86_64 *regs = (struct gp_regs_x86_64 *)ctx;
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	struct gp_inflight_key key = call_key(ctx, GP_KIND_DB);
	struct gp_call *c = bpf_map_lookup_elem(&calls, &key);
	if (!c) {
		count_lost(GP_LOST_UNPAIRED);
		return 0;
	}
	__u32 zero = 0;
	struct gp_db_event *ev = bpf_map_lookup_elem(&scratch_db, &zero);
	if (!ev) {
		bpf_map_delete_elem(&calls, &key);
		return 0;
	}
	ev->kind = GP_KIND_DB;
	ev->pid = id >> 32;
	ev->tid = (__u32)id;
	ev->flags = c->flags;
	ev->goid = c->goid;
	ev->g = regs->r14;
	ev->start_ns = c->start_ns;
	ev->end_ns = bpf_ktime_get_ns();
	ev->hook = c->hook;
	ev->query_len = 0;
	ev->dsn_len = 0;
	ev->connector_type = 0;
	ev->driver_type = 0;
	ev->error_type = 0;
	__u64 recv = c->w[0], qptr = c->w[1], qlen = c->w[2], db = recv;
	__u32 skip = c->flags & GP_CALL_SKIP;
	bpf_map_delete_elem(&calls, &key);
	if (skip)
		return 0;
	ev->flags &= ~GP_CALL_SKIP;
	int bad = 0;
	if (h->flags & GP_HOOK_RECEIVER_IS_STMT) {
		__u64 hdr[2] = {0, 0};
		if (read_u64(&db, recv + off(cfg, GP_F_STMT_DB)) ||
		    bpf_probe_read_user(hdr, sizeof(hdr), (void *)(recv + off(cfg, GP_F_STMT_QUERY))))
			bad = 1;
		qptr = hdr[0];
		qlen = hdr[1];
	} else if (h->flags & GP_HOOK_RECEIVER_IS_TX) {
		if (read_u64(&db, recv + off(cfg, GP_F_TX_DB)))
			bad = 1;
		qptr = 0;
		qlen = 0;
	}
	/* The query string is immutable and its caller still holds it. */
	if (qptr && qlen) {
		ev->query_len = qlen > 0xffffffffULL ? 0xffffffffU : (__u32)qlen;
		__u64 n = qlen;
		if (n > GP_QUERY_MAX)
			n = GP_QUERY_MAX;
		asm volatile("" : "+r"(n));
		if (n > GP_QUERY_MAX)
			n = 0;
		if (n && bpf_probe_read_user(ev->query, n, (void *)qptr))
			bad = 1;
	}
	/* DB.connector (driver.Connector interface) names the database system:
	 * sql.Open's dsnConnector wraps the driver and keeps the DSN. */
	__u64 conn[2] = {0, 0};
	if (db && bpf_probe_read_user(conn, sizeof(conn), (void *)(db + off(cfg, GP_F_DB_CONNECTOR))) == 0) {
		ev->connector_type = itab_type(conn[0]);
		if (conn[1] && off(cfg, GP_F_DSN_DRIVER) != GP_NO_OFFSET) {
			__u64 drv[2] = {0, 0};
			if (bpf_probe_read_user(drv, sizeof(drv), (void *)(conn[1] + off(cfg, GP_F_DSN_DRIVER))) == 0)
				ev->driver_type = itab_type(drv[0]);
		}
		if (conn[1] && off(cfg, GP_F_DSN_DSN) != GP_NO_OFFSET)
			READ_GO_STRING(ev, conn[1] + off(cfg, GP_F_DSN_DSN), dsn, dsn_len);
	} else {
		bad = 1;
	}
	__u64 err = slot(ctx, h, 3);
	if (err) {
		ev->flags |= GP_FLAG_ERROR;
		ev->error_type = itab_type(err);
	}
	if (bad) {
		ev->flags |= GP_FLAG_READ_FAILED;
		count_lost(GP_LOST_READ);
	}
	output(ev, sizeof(*ev));
	return 0;
}

/* --- panics --- */

/* runtime.gopanic(e any): every panic, recovered or not. */
SEC("uprobe")
int panic_entry(void *ctx)
{
	struct gp_regs_x86_64 *regs = (struct gp_regs_x86_64 *)ctx;
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h)
		return 0;
	__u32 zero = 0;
	struct gp_panic_event *ev = bpf_map_lookup_elem(&scratch_panic, &zero);
	if (!ev)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	ev->kind = GP_KIND_PANIC;
	ev->pid = id >> 32;
	ev->tid = (__u32)id;
	ev->flags = 0;
	ev->goid = 0;
	ev->g = regs->r14;
	ev->ts_ns = bpf_ktime_get_ns();
	ev->type_ptr = slot(ctx, h, 0);
	ev->data_ptr = slot(ctx, h, 1);
	ev->word[0] = ev->word[1] = ev->word[2] = ev->word[3] = 0;
	ev->text_len = 0;
	if (read_goid(ctx, cfg, &ev->goid))
		ev->flags |= GP_FLAG_READ_FAILED;
	if (ev->data_ptr) {
		/* The value may be smaller than 32 bytes and end at a page edge:
		 * fall back to the first two words (a string or one-string struct). */
		if (bpf_probe_read_user(ev->word, 32, (void *)ev->data_ptr) &&
		    bpf_probe_read_user(ev->word, 16, (void *)ev->data_ptr))
			ev->flags |= GP_FLAG_READ_FAILED;
		__u64 p = ev->word[0], n = ev->word[1];
		/* Whether these words really are a string is decided in user space
		 * from the type; reading a wrong guess only fails or is ignored. */
		if (p && n && n < (1ULL << 32)) {
			ev->text_len = (__u32)n;
			if (n > GP_PANIC_TEXT_MAX)
				n = GP_PANIC_TEXT_MAX;
			asm volatile("" : "+r"(n));
			if (n > GP_PANIC_TEXT_MAX)
				n = 0;
			if (n && bpf_probe_read_user(ev->text, n, (void *)p))
				ev->text_len = 0;
		}
	}
	output(ev, sizeof(*ev));
	return 0;
}

/* Entry of net/http's recovery (the deferred function of conn.serve, or of
 * the HTTP/2 runHandler), which runs when the goroutine that served
 * requests unwinds. A server call still in flight on this goroutine means
 * ServeHTTP did not return: a panic (or runtime.Goexit) escaped the
 * handler. Its span ends here, with the route the mux had set. */
SEC("uprobe")
int unwound_entry(void *ctx)
{
	struct gp_config *cfg = get_config();
	if (!cfg)
		return 0;
	struct gp_inflight_key key = call_key(ctx, GP_KIND_HTTP_SERVER);
	struct gp_event *ev = bpf_map_lookup_elem(&inflight, &key);
	if (!ev)
		return 0;
	ev->unwound_by = bpf_get_attach_cookie(ctx);
	ev->flags |= GP_FLAG_UNWOUND;
	read_route(ev, cfg, ev->ptr_a);
	finish(ev, &key);
	return 0;
}

/* In-flight runtime.newproc1 calls: the creating g, keyed like inflight.
 * newproc1 runs on the system stack (R14 is the M's g0) and cannot be
 * preempted, so (tgid, g0) identifies the call. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct gp_inflight_key);
	__type(value, __u64);
} spawning SEC(".maps");

/* runtime.newproc1(fn *funcval, callergp *g, callerpc uintptr, ...) *g */
SEC("uprobe")
int spawn_entry(void *ctx)
{
	struct gp_hook *h = get_hook(ctx);
	if (!h)
		return 0;
	struct gp_inflight_key key = call_key(ctx, GP_KIND_SPAWN);
	__u64 caller = slot(ctx, h, 0);
	if (bpf_map_update_elem(&spawning, &key, &caller, BPF_ANY))
		count_lost(GP_LOST_INFLIGHT);
	return 0;
}

SEC("uprobe")
int spawn_return(void *ctx)
{
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	struct gp_inflight_key key = call_key(ctx, GP_KIND_SPAWN);
	__u64 *caller = bpf_map_lookup_elem(&spawning, &key);
	if (!caller) {
		count_lost(GP_LOST_UNPAIRED);
		return 0;
	}
	__u64 callergp = *caller;
	bpf_map_delete_elem(&spawning, &key);
	struct gp_spawn sp = {.kind = GP_KIND_SPAWN, .pid = id >> 32, .tid = (__u32)id};
	sp.ts_ns = bpf_ktime_get_ns();
	if (read_u64(&sp.parent_goid, callergp + off(cfg, GP_F_G_GOID)) ||
	    read_u64(&sp.child_goid, slot(ctx, h, 1) + off(cfg, GP_F_G_GOID))) {
		count_lost(GP_LOST_READ);
		return 0;
	}
	output(&sp, sizeof(sp));
	return 0;
}

/* Does nothing: attached at the same points as the real programs by
 * `goprobe attach --baseline-empty`, so benches/attach.sh can measure what
 * the uprobe traps alone cost. */
SEC("uprobe")
int empty_probe(void *ctx)
{
	return 0;
}
