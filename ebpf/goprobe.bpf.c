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

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GP_INFLIGHT_ENTRIES);
	__type(key, struct gp_inflight_key);
	__type(value, struct gp_event);
} inflight SEC(".maps");

/* Scratch space: gp_event is too large for the 512-byte BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gp_event);
} scratch SEC(".maps");

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
	ev->method_len = 0;
	ev->path_len = 0;
	ev->host_len = 0;
	ev->proto_len = 0;
	ev->peer_len = 0;
	ev->route_len = 0;
	ev->scheme_len = 0;
	ev->query_len = 0;
	__u64 id = bpf_get_current_pid_tgid();
	ev->kind = kind;
	ev->pid = id >> 32;
	ev->tid = (__u32)id;
	ev->g = regs->r14;
	ev->start_ns = bpf_ktime_get_ns();
	if (cfg->g_goid != GP_NO_OFFSET && read_u64(&ev->goid, regs->r14 + cfg->g_goid))
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
	struct gp_regs_x86_64 *regs = (struct gp_regs_x86_64 *)ctx;
	key->tgid = bpf_get_current_pid_tgid() >> 32;
	key->kind = kind;
	key->g = regs->r14;
	struct gp_event *ev = bpf_map_lookup_elem(&inflight, key);
	if (!ev)
		count_lost(GP_LOST_UNPAIRED);
	return ev;
}

static __always_inline void finish(struct gp_event *ev, struct gp_inflight_key *key)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= GP_WAKEUP_BYTES)
		flags = BPF_RB_FORCE_WAKEUP;
	ev->end_ns = bpf_ktime_get_ns();
	if (bpf_ringbuf_output(&events, ev, sizeof(*ev), flags))
		count_lost(GP_LOST_RINGBUF);
	bpf_map_delete_elem(&inflight, key);
}

/* net/http.serverHandler.ServeHTTP(sh serverHandler, rw ResponseWriter, req *Request)
 * sh (one pointer) in RAX, rw (interface: itab, data) in RBX/RCX, req in RDI. */
SEC("uprobe")
int http_server_entry(void *ctx)
{
	struct gp_regs_x86_64 *regs = (struct gp_regs_x86_64 *)ctx;
	struct gp_config *cfg = get_config();
	if (!cfg)
		return 0;
	struct gp_event *ev = start_event(ctx, GP_KIND_HTTP_SERVER, cfg);
	if (!ev)
		return 0;
	__u64 req = regs->rdi;
	ev->ptr_a = req;
	ev->ptr_b = regs->rcx;
	int bad = 0;
	bad |= READ_GO_STRING(ev, req + cfg->req_method, method, method_len);
	bad |= READ_GO_STRING(ev, req + cfg->req_proto, proto, proto_len);
	bad |= READ_GO_STRING(ev, req + cfg->req_host, host, host_len);
	bad |= READ_GO_STRING(ev, req + cfg->req_remote_addr, peer, peer_len);
	__u64 url = 0;
	if (read_u64(&url, req + cfg->req_url) || !url) {
		bad = 1;
	} else {
		bad |= READ_GO_STRING(ev, url + cfg->url_path, path, path_len);
	}
	if (bad)
		ev->flags |= GP_FLAG_READ_FAILED;
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
	if (ev->proto[5] == '1' && ev->ptr_b && cfg->response_status != GP_NO_OFFSET) {
		__s64 status = 0;
		if (bpf_probe_read_user(&status, sizeof(status), (void *)(ev->ptr_b + cfg->response_status))) {
			ev->flags |= GP_FLAG_READ_FAILED;
			count_lost(GP_LOST_READ);
		}
		ev->status = status;
	}
	/* The mux fills the route in during ServeHTTP, so read it at return. */
	if (cfg->route_mode == GP_ROUTE_PATTERN) {
		if (READ_GO_STRING(ev, req + cfg->req_route, route, route_len))
			ev->flags |= GP_FLAG_READ_FAILED;
	} else if (cfg->route_mode == GP_ROUTE_PAT_PTR) {
		__u64 pat = 0;
		if (read_u64(&pat, req + cfg->req_route) == 0 && pat) {
			if (READ_GO_STRING(ev, pat + cfg->pattern_str, route, route_len))
				ev->flags |= GP_FLAG_READ_FAILED;
		}
	}
	finish(ev, &key);
	return 0;
}

/* net/http.(*Transport).roundTrip(t *Transport, req *Request) (*Response, error)
 * t in RAX, req in RBX; results: *Response in RAX, error (itab, data) in RBX/RCX. */
SEC("uprobe")
int http_client_entry(void *ctx)
{
	struct gp_regs_x86_64 *regs = (struct gp_regs_x86_64 *)ctx;
	struct gp_config *cfg = get_config();
	if (!cfg)
		return 0;
	struct gp_event *ev = start_event(ctx, GP_KIND_HTTP_CLIENT, cfg);
	if (!ev)
		return 0;
	__u64 req = regs->rbx;
	ev->ptr_a = req;
	int bad = 0;
	bad |= READ_GO_STRING(ev, req + cfg->req_method, method, method_len);
	bad |= READ_GO_STRING(ev, req + cfg->req_host, peer, peer_len);
	__u64 url = 0;
	if (read_u64(&url, req + cfg->req_url) || !url) {
		bad = 1;
	} else {
		bad |= READ_GO_STRING(ev, url + cfg->url_scheme, scheme, scheme_len);
		bad |= READ_GO_STRING(ev, url + cfg->url_host, host, host_len);
		bad |= READ_GO_STRING(ev, url + cfg->url_path, path, path_len);
		bad |= READ_GO_STRING(ev, url + cfg->url_raw_query, query, query_len);
	}
	if (bad)
		ev->flags |= GP_FLAG_READ_FAILED;
	store_inflight(ev);
	return 0;
}

SEC("uprobe")
int http_client_return(void *ctx)
{
	struct gp_regs_x86_64 *regs = (struct gp_regs_x86_64 *)ctx;
	struct gp_config *cfg = get_config();
	if (!cfg)
		return 0;
	struct gp_inflight_key key = {};
	struct gp_event *ev = take_inflight(ctx, GP_KIND_HTTP_CLIENT, &key);
	if (!ev)
		return 0;
	__u64 resp = regs->rax;
	if (regs->rbx)
		ev->flags |= GP_FLAG_ERROR;
	if (resp) {
		__s64 code = 0;
		if (bpf_probe_read_user(&code, sizeof(code), (void *)(resp + cfg->resp_status_code))) {
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

/* In-flight runtime.newproc1 calls: the creating g, keyed like inflight.
 * newproc1 runs on the system stack (R14 is the M's g0) and cannot be
 * preempted, so (tgid, g0) identifies the call. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct gp_inflight_key);
	__type(value, __u64);
} spawning SEC(".maps");

/* runtime.newproc1(fn *funcval, callergp *g, callerpc uintptr, ...) *g
 * (Go 1.23 added two trailing arguments; the first two never moved):
 * callergp in RBX; the new g returned in RAX. */
SEC("uprobe")
int spawn_entry(void *ctx)
{
	struct gp_regs_x86_64 *regs = (struct gp_regs_x86_64 *)ctx;
	struct gp_inflight_key key = {
		.tgid = bpf_get_current_pid_tgid() >> 32, .kind = GP_KIND_SPAWN, .g = regs->r14};
	__u64 caller = regs->rbx;
	if (bpf_map_update_elem(&spawning, &key, &caller, BPF_ANY))
		count_lost(GP_LOST_INFLIGHT);
	return 0;
}

SEC("uprobe")
int spawn_return(void *ctx)
{
	struct gp_regs_x86_64 *regs = (struct gp_regs_x86_64 *)ctx;
	struct gp_config *cfg = get_config();
	if (!cfg)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	struct gp_inflight_key key = {.tgid = id >> 32, .kind = GP_KIND_SPAWN, .g = regs->r14};
	__u64 *caller = bpf_map_lookup_elem(&spawning, &key);
	if (!caller) {
		count_lost(GP_LOST_UNPAIRED);
		return 0;
	}
	__u64 callergp = *caller;
	bpf_map_delete_elem(&spawning, &key);
	struct gp_spawn sp = {.kind = GP_KIND_SPAWN, .pid = id >> 32, .tid = (__u32)id};
	sp.ts_ns = bpf_ktime_get_ns();
	if (read_u64(&sp.parent_goid, callergp + cfg->g_goid) ||
	    read_u64(&sp.child_goid, regs->rax + cfg->g_goid)) {
		count_lost(GP_LOST_READ);
		return 0;
	}
	__u64 flags = BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= GP_WAKEUP_BYTES)
		flags = BPF_RB_FORCE_WAKEUP;
	if (bpf_ringbuf_output(&events, &sp, sizeof(sp), flags))
		count_lost(GP_LOST_RINGBUF);
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
