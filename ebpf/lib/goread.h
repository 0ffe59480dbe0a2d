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
 * of runtime.itab (internal/abi.ITab) in every Go release goprobe supports. */
static __always_inline __u64 itab_type(__u64 itab)
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

#endif
