// SPDX-License-Identifier: GPL-2.0
/* go_panic.bpf.c: the go_panic family (catalog probe go.panic): every
 * runtime.gopanic call, recovered or not, with the panic value's type
 * descriptor and the first words of its data (user space names the type
 * and, where Go's own text can be read exactly, the message), and the
 * panicking goroutine's stack, walked by frame pointers from gopanic's
 * entry (user space symbolizes it into the traceback Go prints).
 *
 * Hook slots (catalog `slot`):
 *   panic: 0,1 the panic value (eface: type, data)
 */
#define GP_RINGBUF_BYTES (4 << 20)   /* about 3,000 panics with 127-frame stacks of slack */
#include "fields.h"
#include "family.h"

#define GP_PANIC_TEXT_MAX 128
/* Deepest stack captured: the kernel's default perf_event_max_stack. */
#define GP_PANIC_STACK_MAX 127

/* runtime.gopanic was called. */
struct gp_panic_event {
	__u32 pid;
	__u32 tid;
	__u32 flags;                  /* GP_FLAG_READ_FAILED */
	__u32 text_len;               /* word[1] when word[0] looks like a string's data */
	__u64 goid;
	__u64 g;
	__u64 parent_goid;            /* runtime.g.parentGoid (Go >= 1.21), 0 when unknown */
	__u64 ts_ns;
	__u64 type_ptr;               /* the value's type descriptor (runtime address) */
	__u64 data_ptr;               /* the value's data word */
	__u64 word[4];                /* 32 bytes at data_ptr (when readable) */
	char text[GP_PANIC_TEXT_MAX]; /* bytes at word[0] */
	__u64 sp;                     /* user registers at gopanic's entry */
	__u64 bp;
	__u64 sp_words[2];            /* [sp]: the return address into gopanic's caller */
	__u64 gopc;                   /* g.gopc: the go statement that started the goroutine */
	__u32 nframes;                /* pcs in stack[], gopanic's entry first */
	__u32 _pad;
	__u64 stack[GP_PANIC_STACK_MAX];
};
_Static_assert(sizeof(struct gp_panic_event) == 272 + 8 * GP_PANIC_STACK_MAX, "gp_panic_event layout (src/probes/go_panic.rs)");
#define GP_PANIC_HEADER (sizeof(struct gp_panic_event) - 8 * GP_PANIC_STACK_MAX)

/* Scratch space: the event is too large for the 512-byte BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gp_panic_event);
} scratch SEC(".maps");

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
	struct gp_panic_event *ev = bpf_map_lookup_elem(&scratch, &zero);
	if (!ev)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
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
	if (read_goids(ctx, cfg, &ev->goid, &ev->parent_goid))
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
			/* Re-checked after the barrier, for the verifier. */
			asm volatile("" : "+r"(n));
			if (n > GP_PANIC_TEXT_MAX)
				n = 0;
			if (n && bpf_probe_read_user(ev->text, n, (void *)p))
				ev->text_len = 0;
		}
	}
	ev->sp = regs->rsp;
	ev->bp = regs->rbp;
	ev->sp_words[0] = ev->sp_words[1] = 0;
	ev->gopc = 0;
	ev->_pad = 0;
	if (bpf_probe_read_user(ev->sp_words, sizeof(ev->sp_words), (void *)regs->rsp))
		ev->flags |= GP_FLAG_READ_FAILED;
	if (off(cfg, GP_F_g_gopc) != GP_NO_OFFSET)
		read_u64(&ev->gopc, regs->r14 + off(cfg, GP_F_g_gopc));
	/* The kernel's frame-pointer walker, from the uprobe's registers: on
	 * the goroutine's own stack, which is where gopanic runs. */
	long n = bpf_get_stack(ctx, ev->stack, sizeof(ev->stack), BPF_F_USER_STACK);
	if (n < 0) {
		n = 0;
		ev->flags |= GP_FLAG_READ_FAILED;
	}
	__u32 frames = (__u32)n / 8;
	if (frames > GP_PANIC_STACK_MAX)
		frames = GP_PANIC_STACK_MAX;
	ev->nframes = frames;
	__u64 size = GP_PANIC_HEADER + (__u64)frames * 8;
	/* Re-checked after the barrier, for the verifier. */
	asm volatile("" : "+r"(size));
	if (size > sizeof(*ev))
		size = sizeof(*ev);
	output(ev, size);
	return 0;
}
