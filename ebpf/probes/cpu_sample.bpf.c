// SPDX-License-Identifier: GPL-2.0
/* cpu_sample.bpf.c: the cpu_sample family (catalog probe cpu.sample): a
 * perf_event program on the software cpu-clock event of every CPU (it
 * works on VMs without a hardware PMU). For each sample on a thread of a
 * target process it reports the user stack, walked by frame pointers (Go
 * keeps them on amd64), and the goroutine running then, read from the
 * thread's registers and the runtime's g and m structs. No uprobe is
 * involved: user space labels each sample with the span its goroutine was
 * serving (see src/probes/cpu_sample.rs).
 *
 * Which goroutine: in Go code (register ABI, Go >= 1.17) R14 holds the
 * current g. It is checked, never trusted: g.m must point to an m whose
 * curg or g0 is that g. On g0 (the system stack: the scheduler, GC work
 * run through systemstack) the goroutine served is m.curg (none in the
 * scheduler). Where R14 does not check out (assembly or C code that uses
 * R14, a vDSO call, a signal handler on gsignal), the thread's m learnt
 * from an earlier sample that did is used instead (threads keep their m
 * for life); with no such m the goroutine is reported unknown, never
 * guessed. Samples that hit the kernel (a syscall, a page fault) use the
 * user registers saved at kernel entry.
 */
#define GP_RINGBUF_BYTES (8 << 20)   /* about 7,000 samples of 127 frames */
#include "fields.h"
#include "family.h"

/* Deepest user stack reported: the kernel's default perf_event_max_stack. */
#define GP_STACK_MAX 127

/* Sample flags (a family's own flags start at 1 << 8). */
#define GP_SAMPLE_KERNEL (1 << 8)     /* the thread was in the kernel: registers from kernel entry */
#define GP_SAMPLE_G_FROM_M (1 << 9)   /* R14 was not a g: the thread's m, learnt earlier, named it */
#define GP_SAMPLE_SYSTEM (1 << 10)    /* on the system stack (g0) on behalf of the goroutine */
#define GP_SAMPLE_NO_G (1 << 11)      /* the thread's m ran no goroutine (scheduler, idle) */
#define GP_SAMPLE_UNKNOWN_G (1 << 12) /* which goroutine could not be told */

/* The perf_event program's context (struct bpf_perf_event_data): the
 * sampled registers, then the sample period. */
struct gp_perf_ctx {
	struct gp_regs_x86_64 regs;
	__u64 sample_period;
	__u64 addr;
};

/* One CPU sample. */
struct gp_cpu_sample {
	__u32 pid;
	__u32 tid;
	__u32 cpu;
	__u32 flags;                  /* GP_SAMPLE_*, GP_FLAG_READ_FAILED */
	__u64 ts_ns;                  /* CLOCK_MONOTONIC */
	__u64 period_ns;              /* CPU time this sample stands for */
	__u64 goid;                   /* 0 unless a goroutine was told */
	__u64 parent_goid;            /* g.parentGoid (Go >= 1.21), else 0 */
	__u64 ip;                     /* user registers at the sample */
	__u64 sp;
	__u64 bp;
	__u64 sp_words[2];            /* the words at sp and sp+8 (a frameless function's return address) */
	__u32 nframes;                /* user pcs in stack[], the sampled pc first */
	__u32 _pad;
	__u64 stack[GP_STACK_MAX];
};
_Static_assert(sizeof(struct gp_cpu_sample) == 96 + 8 * GP_STACK_MAX, "gp_cpu_sample layout (src/probes/cpu_sample.rs)");
#define GP_SAMPLE_HEADER (sizeof(struct gp_cpu_sample) - 8 * GP_STACK_MAX)

/* Scratch space: the sample is too large for the 512-byte BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gp_cpu_sample);
} scratch SEC(".maps");

/* The processes to sample (tgid -> 1), kept by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u32);
} targets SEC(".maps");

/* Each thread's m, learnt from a sample whose R14 checked out. */
struct thread_key {
	__u32 tgid;
	__u32 tid;
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct thread_key);
	__type(value, __u64);
} thread_m SEC(".maps");

/* Reads a pointer-sized word; 0 when it cannot be read. */
static __always_inline __u64 word_at(__u64 addr)
{
	__u64 v = 0;
	if (addr && read_u64(&v, addr))
		v = 0;
	return v;
}

/* The goroutine the thread's m serves: m.curg (0 in the scheduler). */
static __always_inline __u64 curg_of(struct gp_config *cfg, __u64 m)
{
	return word_at(m + off(cfg, GP_F_m_curg));
}

/* Is `g` the g the thread is running on m: its curg, or its g0? Returns the
 * m (0: no). */
static __always_inline __u64 m_of_g(struct gp_config *cfg, __u64 g, int *on_g0)
{
	if (!g || g < 4096)
		return 0;
	__u64 m = word_at(g + off(cfg, GP_F_g_m));
	if (!m)
		return 0;
	if (word_at(m + off(cfg, GP_F_m_curg)) == g) {
		*on_g0 = 0;
		return m;
	}
	if (word_at(m + off(cfg, GP_F_m_g0)) == g) {
		*on_g0 = 1;
		return m;
	}
	return 0;
}

SEC("perf_event")
int cpu_sample(struct gp_perf_ctx *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	if (!bpf_map_lookup_elem(&targets, &tgid))
		return 0;
	struct gp_config *cfg = get_config();
	__u32 zero = 0;
	struct gp_cpu_sample *s = bpf_map_lookup_elem(&scratch, &zero);
	if (!cfg || !s)
		return 0;
	s->pid = tgid;
	s->tid = (__u32)id;
	s->cpu = bpf_get_smp_processor_id();
	s->flags = 0;
	s->ts_ns = bpf_ktime_get_ns();
	s->period_ns = ctx->sample_period;
	s->goid = 0;
	s->parent_goid = 0;
	s->_pad = 0;

	/* The user registers: the sampled ones when the thread was in user
	 * mode (CPL 3), else those saved when it entered the kernel. */
	struct gp_regs_x86_64 regs;
	if ((ctx->regs.cs & 3) == 3) {
		regs.rip = ctx->regs.rip;
		regs.rsp = ctx->regs.rsp;
		regs.rbp = ctx->regs.rbp;
		regs.r14 = ctx->regs.r14;
	} else {
		s->flags |= GP_SAMPLE_KERNEL;
		struct task_struct *task = bpf_get_current_task_btf();
		/* A kernel thread has no user registers: not a target's thread. */
		long user = bpf_task_pt_regs(task);
		if (!user || bpf_probe_read_kernel(&regs, sizeof(regs), (void *)user))
			return 0;
	}
	s->ip = regs.rip;
	s->sp = regs.rsp;
	s->bp = regs.rbp;
	s->sp_words[0] = s->sp_words[1] = 0;
	if (bpf_probe_read_user(s->sp_words, sizeof(s->sp_words), (void *)regs.rsp))
		s->flags |= GP_FLAG_READ_FAILED;

	/* Which goroutine (see the top of this file). */
	struct thread_key tk = {.tgid = tgid, .tid = (__u32)id};
	int on_g0 = 0;
	__u64 m = m_of_g(cfg, regs.r14, &on_g0);
	__u64 g = 0;
	if (m) {
		bpf_map_update_elem(&thread_m, &tk, &m, BPF_ANY);
		g = on_g0 ? curg_of(cfg, m) : regs.r14;
	} else {
		__u64 *known = bpf_map_lookup_elem(&thread_m, &tk);
		/* The m must still be this thread's: its procid is the tid. */
		if (known && (off(cfg, GP_F_m_procid) == GP_NO_OFFSET ||
			      word_at(*known + off(cfg, GP_F_m_procid)) == (__u32)id)) {
			m = *known;
			s->flags |= GP_SAMPLE_G_FROM_M;
			on_g0 = 1;
			g = curg_of(cfg, m);
		}
	}
	if (!m) {
		s->flags |= GP_SAMPLE_UNKNOWN_G;
	} else if (!g) {
		s->flags |= GP_SAMPLE_NO_G;
	} else {
		if (on_g0 && !(s->flags & GP_SAMPLE_G_FROM_M))
			s->flags |= GP_SAMPLE_SYSTEM;
		if (read_u64(&s->goid, g + off(cfg, GP_F_g_goid))) {
			s->goid = 0;
			s->flags |= GP_SAMPLE_UNKNOWN_G | GP_FLAG_READ_FAILED;
		} else if (off(cfg, GP_F_g_parentGoid) != GP_NO_OFFSET) {
			s->parent_goid = word_at(g + off(cfg, GP_F_g_parentGoid));
		}
	}

	/* The user stack by frame pointers, from the kernel's own walker
	 * (it starts at the user registers whichever mode was sampled). */
	long n = bpf_get_stack(ctx, s->stack, sizeof(s->stack), BPF_F_USER_STACK);
	if (n < 0) {
		n = 0;
		s->flags |= GP_FLAG_READ_FAILED;
	}
	__u32 frames = (__u32)n / 8;
	if (frames > GP_STACK_MAX)
		frames = GP_STACK_MAX;
	s->nframes = frames;
	__u64 size = GP_SAMPLE_HEADER + (__u64)frames * 8;
	/* Re-checked after the barrier, for the verifier. */
	asm volatile("" : "+r"(size));
	if (size > sizeof(*s))
		size = sizeof(*s);
	output(s, size);
	return 0;
}
