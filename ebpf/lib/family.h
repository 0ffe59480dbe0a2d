/* family.h: what every probe family's eBPF object has: its configuration
 * (field offsets, switches), its hooks' register tables, its lost-event
 * counters and its ring buffer, and the helpers that use them.
 *
 * Include it once per family C file, after the family's generated
 * "fields.h" (which must define GP_F_g_goid: every family names
 * runtime.g.goid in the catalog). A family may define GP_RINGBUF_BYTES first
 * to size its ring buffer.
 *
 * Go >= 1.17 register ABI on amd64: integer arguments and results in RAX,
 * RBX, RCX, RDI, RSI, R8, R9, R10, R11; R14 holds the current g.
 */
#ifndef GP_FAMILY_H
#define GP_FAMILY_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "abi.h"
#include "goread.h"

char LICENSE[] SEC("license") = "GPL";

#ifndef GP_RINGBUF_BYTES
#define GP_RINGBUF_BYTES (4 << 20)
#endif

/* Sized for thousands of concurrent calls (blocked handlers, slow
 * upstreams); LRU so calls that never return (a handler that panics)
 * cannot fill an in-flight map for good. */
#define GP_INFLIGHT_ENTRIES 65536

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gp_config);
} config SEC(".maps");

/* Per hooked function: which registers hold what. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, GP_HOOKS_MAX);
	__type(key, __u32);
	__type(value, struct gp_hook);
} hooks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GP_LOST_MAX);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, GP_RINGBUF_BYTES);
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

/* The family's offset of field `f` (a GP_F_* index); masked so the verifier
 * sees the index in bounds. */
static __always_inline __u64 off(struct gp_config *cfg, int f)
{
	return cfg->off[f & (GP_OFF_MAX - 1)];
}

static __always_inline __u32 mode(struct gp_config *cfg, int m)
{
	return cfg->mode[m & (GP_MODES - 1)];
}

/* The in-flight map key of a call on the current goroutine. */
static __always_inline struct gp_call_key call_key(void *ctx)
{
	struct gp_regs_x86_64 *regs = (struct gp_regs_x86_64 *)ctx;
	struct gp_call_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .g = regs->r14};
	return key;
}

/* The current goroutine's id into *dst (left as is when the offset is
 * unknown); non-zero when the read failed. */
static __always_inline int read_goid(void *ctx, struct gp_config *cfg, __u64 *dst)
{
	struct gp_regs_x86_64 *regs = (struct gp_regs_x86_64 *)ctx;
	if (off(cfg, GP_F_g_goid) == GP_NO_OFFSET)
		return 0;
	return read_u64(dst, regs->r14 + off(cfg, GP_F_g_goid));
}

#ifdef GP_F_g_parentGoid
/* The id of the goroutine that started the current one (runtime.g.parentGoid,
 * set by the runtime since Go 1.21; 0 for goroutines it did not record, or
 * when the offset is unknown). With it a call on a goroutine a handler
 * started joins the handler's span without a uprobe on every goroutine
 * creation: net/http alone starts one per request. */
static __always_inline __u64 read_parent_goid(void *ctx, struct gp_config *cfg)
{
	struct gp_regs_x86_64 *regs = (struct gp_regs_x86_64 *)ctx;
	__u64 p = 0;
	if (off(cfg, GP_F_g_parentGoid) == GP_NO_OFFSET ||
	    read_u64(&p, regs->r14 + off(cfg, GP_F_g_parentGoid)))
		return 0;
	return p;
}

/* The goroutine's id into *goid (as read_goid) and its parent's into
 * *parent (as read_parent_goid), in one read when the two fields lie
 * within GP_G_SPAN bytes of each other (goid @152, parentGoid @272 or 280
 * in every release that has it): a user-memory read costs more than the
 * rest of most programs. Non-zero when the goid's read failed. */
#define GP_G_SPAN 192
static __always_inline int read_goids(void *ctx, struct gp_config *cfg, __u64 *goid, __u64 *parent)
{
	struct gp_regs_x86_64 *regs = (struct gp_regs_x86_64 *)ctx;
	__u64 og = off(cfg, GP_F_g_goid), op = off(cfg, GP_F_g_parentGoid);
	*parent = 0;
	if (og != GP_NO_OFFSET && op != GP_NO_OFFSET && op > og && ((op - og) & 7) == 0 &&
	    op - og <= GP_G_SPAN - 8) {
		__u64 w[GP_G_SPAN / 8];
		__u64 n = op - og + 8;
		/* Re-checked after the barrier, for the verifier. */
		asm volatile("" : "+r"(n));
		if (n < 16 || n > sizeof(w))
			return -1;
		if (bpf_probe_read_user(w, n, (void *)(regs->r14 + og)))
			return -1;
		__u64 i = (op - og) >> 3;
		/* Re-checked after the barrier, for the verifier. */
		asm volatile("" : "+r"(i));
		if (i >= GP_G_SPAN / 8)
			return -1;
		*goid = w[0];
		*parent = w[i];
		return 0;
	}
	*parent = read_parent_goid(ctx, cfg);
	return read_goid(ctx, cfg, goid);
}
#endif

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

/* itab -> dynamic type, cached: a direct-mapped cache of the interface
 * tables seen last, per CPU (so no entry is ever seen half written: the
 * programs of one object do not nest on a CPU). Exact, not a heuristic:
 * the runtime never frees or changes an itab (the binary's own are static,
 * the others persistentalloc'd), so an address once seen with a type keeps
 * it for the life of the process (the key has its tgid; only a pid reused
 * within one recording, by a process with an itab at the very address,
 * could meet another's entry). Speculative reads (a word that may not be
 * an itab at all) cache what they read too: such a word is never a real
 * itab's address (itabs live off the Go heap), so it only takes a slot. A
 * user-memory
 * read costs some 60-100 ns in the program; the lookup a few: the
 * ResponseWriter's, a connector's or a connection's itab is the same one
 * call after call. */
#define GP_ITAB_CACHE 64
struct gp_itab_slot {
	__u64 itab;
	__u64 type;
	__u32 tgid;
	__u32 _pad;
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GP_ITAB_CACHE);
	__type(key, __u32);
	__type(value, struct gp_itab_slot);
} itab_cache SEC(".maps");

static __always_inline __u64 itab_type(__u64 itab)
{
	if (!itab)
		return 0;
	/* itabs are 8-byte aligned and a few dozen bytes apart. */
	__u32 idx = (__u32)(itab >> 3) & (GP_ITAB_CACHE - 1);
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct gp_itab_slot *s = bpf_map_lookup_elem(&itab_cache, &idx);
	if (s && s->itab == itab && s->tgid == tgid)
		return s->type;
	__u64 t = read_itab_type(itab);
	/* 0: unreadable; not cached, so it is tried again. */
	if (s && t) {
		s->itab = itab;
		s->type = t;
		s->tgid = tgid;
	}
	return t;
}

/* Whether the record of `size` bytes about to be sent wakes the reader:
 * only when it makes the waiting data cross a multiple of GP_WAKEUP_BYTES.
 * A wake-up is an inter-processor interrupt (a VM exit here) that costs
 * several microseconds inside the program; waking on every record while
 * the reader lags behind the threshold costs that on every call, and the
 * reader, once awake, reads everything there is anyway (its epoll is
 * level-triggered). A crossing missed in a race between two CPUs is
 * caught at the next multiple, or by the reader's timeout. */
static __always_inline __u64 wakeup_flags(__u64 size)
{
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	/* 8: the record header. */
	return avail / GP_WAKEUP_BYTES != (avail + size + 8) / GP_WAKEUP_BYTES ? BPF_RB_FORCE_WAKEUP
										: BPF_RB_NO_WAKEUP;
}

static __always_inline void output(void *data, __u64 size)
{
	if (bpf_ringbuf_output(&events, data, size, wakeup_flags(size)))
		count_lost(GP_LOST_RINGBUF);
}

/* A record of `size` bytes reserved in the ring buffer, to be filled in
 * place and sent with bpf_ringbuf_submit(rec, wakeup_flags(size)) (or dropped
 * with bpf_ringbuf_discard): no copy through a scratch buffer, and only
 * the bytes written are touched. Its memory is not cleared: every scalar
 * must be set, and string bytes past a length are never read. 0 (counted
 * as lost) when the ring buffer is full. */
#define RESERVE(size)                                                    \
	({                                                                   \
		void *__rec = bpf_ringbuf_reserve(&events, (size), 0);       \
		if (!__rec)                                                  \
			count_lost(GP_LOST_RINGBUF);                         \
		__rec;                                                       \
	})

#endif
