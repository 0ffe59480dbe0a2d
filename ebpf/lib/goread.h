/* goread.h: reading Go values out of the target's memory, read-only. */
#ifndef GP_GOREAD_H
#define GP_GOREAD_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "abi.h"

static __always_inline int read_u64(__u64 *dst, __u64 addr)
{
	return bpf_probe_read_user(dst, sizeof(*dst), (void *)addr);
}

/* The dynamic type of a non-empty interface: itab->_type, the second word
 * of runtime.itab (internal/abi.ITab) in every Go release goprobe supports.
 * Programs call itab_type (family.h), which caches this read. */
static __always_inline __u64 read_itab_type(__u64 itab)
{
	__u64 t = 0;
	if (itab)
		read_u64(&t, itab + 8);
	return t;
}

/* Copies up to sizeof(ev->field) bytes of the Go string (ptr, n), whose
 * header was already read, into ev->field and stores the real length in
 * ev->len_field. Non-zero when the read failed. */
#define COPY_GO_STRING(ev, ptr, n, field, len_field)                            \
	({                                                                           \
		int __ret = 0;                                                       \
		__u64 __n = (n);                                                     \
		(ev)->len_field = __n > 0xffffffffULL ? 0xffffffffU : (__u32)__n;    \
		if (__n > sizeof((ev)->field))                                       \
			__n = sizeof((ev)->field);                                   \
		/* The verifier needs the bound re-checked on the value it sees, \
		 * not one clang has already proven. */                           \
		asm volatile("" : "+r"(__n));                                        \
		if (__n > sizeof((ev)->field))                                       \
			__n = 0;                                                     \
		if (__n && bpf_probe_read_user((ev)->field, __n, (void *)(ptr)))     \
			__ret = -1;                                                  \
		__ret;                                                               \
	})

/* Reads a Go string header (ptr, len) at `addr` and copies up to
 * sizeof(ev->field) bytes of its data into ev->field. Stores the real length
 * in ev->len_field. Non-zero when a read failed. */
#define READ_GO_STRING(ev, addr, field, len_field)                              \
	({                                                                           \
		int __r = 0;                                                         \
		__u64 __hdr[2] = {0, 0};                                             \
		if (bpf_probe_read_user(__hdr, sizeof(__hdr), (void *)(addr)))       \
			__r = -1;                                                    \
		else                                                                 \
			__r = COPY_GO_STRING(ev, __hdr[0], __hdr[1], field, len_field); \
		__r;                                                                 \
	})

/* Packed strings: an event with `__u16 at[]`, `__u16 used` and `char buf[]`
 * keeps some of its strings one after another in buf, each at its at[i],
 * and is sent only up to the bytes used (a request's strings are a few
 * dozen bytes; writing whole fixed-size buffers into the ring buffer, cold
 * memory line after line, cost a quarter of a return program). Each
 * string is appended at most once per event, and buf is the sum of their
 * sizes, so it always has room. src/bpf/abi.rs reads them back.
 *
 * APPEND_GO_STRING appends up to `max` bytes of the Go string (ptr, n),
 * whose header was already read, as string `i` (real length into
 * ev->len_field). Non-zero when the read failed (its bytes are then stale,
 * as with COPY_GO_STRING, and the caller marks the event READ_FAILED). */
#define APPEND_GO_STRING(ev, ptr, n, i, max, len_field)                         \
	({                                                                           \
		int __ret = 0;                                                       \
		__u64 __n = (n);                                                     \
		__u64 __u = (ev)->used;                                              \
		(ev)->len_field = __n > 0xffffffffULL ? 0xffffffffU : (__u32)__n;    \
		if (__n > (max))                                                     \
			__n = (max);                                                 \
		/* The verifier needs the bounds re-checked on the values it     \
		 * sees, not ones clang has already proven. */                     \
		asm volatile("" : "+r"(__n));                                        \
		asm volatile("" : "+r"(__u));                                        \
		if (__n > (max) || __u > sizeof((ev)->buf) - (max)) {                \
			/* Never: each string is appended once (see above). */      \
			(ev)->len_field = 0;                                         \
			__ret = -1;                                                  \
		} else {                                                             \
			(ev)->at[(i)] = (__u16)__u;                                  \
			if (__n && bpf_probe_read_user((ev)->buf + __u, __n, (void *)(ptr))) \
				__ret = -1;                                          \
			(ev)->used = (__u16)(__u + __n);                             \
		}                                                                    \
		__ret;                                                               \
	})

/* Reads a Go string header at `addr` and appends its data (as above). */
#define READ_APPEND_GO_STRING(ev, addr, i, max, len_field)                      \
	({                                                                           \
		int __r = 0;                                                         \
		__u64 __hdr[2] = {0, 0};                                             \
		if (bpf_probe_read_user(__hdr, sizeof(__hdr), (void *)(addr)))       \
			__r = -1;                                                    \
		else                                                                 \
			__r = APPEND_GO_STRING(ev, __hdr[0], __hdr[1], i, max, len_field); \
		__r;                                                                 \
	})

/* The bytes of ev's packed strings that are used, for sending: at most
 * sizeof(ev->buf), in a form the verifier can bound. */
#define PACKED_USED(ev)                                                          \
	({                                                                           \
		__u64 __n = (ev)->used;                                              \
		/* Re-checked after the barrier, for the verifier. */               \
		asm volatile("" : "+r"(__n));                                        \
		if (__n > sizeof((ev)->buf))                                         \
			__n = sizeof((ev)->buf);                                     \
		__n;                                                                 \
	})

/* The first 32 bytes of a value at `data` (an interface's data word) into
 * word[4], and when word[0..2] could be a Go string header, up to
 * `GP_CAPTURE_TEXT` bytes of its data into text (real length in *text_len).
 * Whether they really are a string is decided in user space from the
 * value's type; reading a wrong guess only fails or is ignored. */
#define GP_CAPTURE_TEXT 128
static __always_inline void capture_value(__u64 data, __u64 word[4], char text[GP_CAPTURE_TEXT],
					  __u32 *text_len)
{
	word[0] = word[1] = word[2] = word[3] = 0;
	*text_len = 0;
	if (!data)
		return;
	/* The value may be smaller than 32 bytes and end at a page edge:
	 * fall back to the first two words. */
	if (bpf_probe_read_user(word, 32, (void *)data) &&
	    bpf_probe_read_user(word, 16, (void *)data))
		return;
	__u64 p = word[0], n = word[1];
	if (!p || !n || n >= (1ULL << 32))
		return;
	*text_len = (__u32)n;
	if (n > GP_CAPTURE_TEXT)
		n = GP_CAPTURE_TEXT;
	/* Re-checked after the barrier, for the verifier. */
	asm volatile("" : "+r"(n));
	if (n > GP_CAPTURE_TEXT)
		n = 0;
	if (n && bpf_probe_read_user(text, n, (void *)p))
		*text_len = 0;
}

#endif
