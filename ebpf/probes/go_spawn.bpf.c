// SPDX-License-Identifier: GPL-2.0
/* go_spawn.bpf.c: the go_spawn family (catalog probe go.spawn, goprobe's
 * own bookkeeping): goroutine creation (runtime.newproc1), so that calls
 * made on goroutines a handler starts join the handler's trace.
 *
 * Hook slots (catalog `slot`):
 *   spawn: 0 callergp *g  1 the new *g (return)
 */
#define GP_RINGBUF_BYTES (2 << 20)   /* about 50,000 creations of slack */
#include "fields.h"
#include "family.h"

/* A goroutine was created (runtime.newproc1 returned). */
struct gp_spawn {
	__u32 pid;
	__u32 tid;
	__u64 parent_goid;            /* the goroutine that ran the go statement */
	__u64 child_goid;             /* the new goroutine */
	__u64 ts_ns;                  /* CLOCK_MONOTONIC */
};
_Static_assert(sizeof(struct gp_spawn) == 32, "gp_spawn layout (src/probes/go_spawn.rs)");

/* In-flight runtime.newproc1 calls: the creating g, keyed like inflight.
 * newproc1 runs on the system stack (R14 is the M's g0) and cannot be
 * preempted, so (tgid, g0) identifies the call. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct gp_call_key);
	__type(value, __u64);
} spawning SEC(".maps");

/* runtime.newproc1(fn *funcval, callergp *g, callerpc uintptr, ...) *g */
SEC("uprobe")
int spawn_entry(void *ctx)
{
	struct gp_hook *h = get_hook(ctx);
	if (!h)
		return 0;
	struct gp_call_key key = call_key(ctx);
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
	struct gp_call_key key = call_key(ctx);
	__u64 *caller = bpf_map_lookup_elem(&spawning, &key);
	if (!caller) {
		count_lost(GP_LOST_UNPAIRED);
		return 0;
	}
	__u64 callergp = *caller;
	bpf_map_delete_elem(&spawning, &key);
	struct gp_spawn sp = {.pid = id >> 32, .tid = (__u32)id};
	sp.ts_ns = bpf_ktime_get_ns();
	if (read_u64(&sp.parent_goid, callergp + off(cfg, GP_F_g_goid)) ||
	    read_u64(&sp.child_goid, slot(ctx, h, 1) + off(cfg, GP_F_g_goid))) {
		count_lost(GP_LOST_READ);
		return 0;
	}
	output(&sp, sizeof(sp));
	return 0;
}
