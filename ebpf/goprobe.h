/* goprobe.h: the ABI shared by the eBPF programs (goprobe.bpf.c) and
 * goprobe's user space (src/bpf/abi.rs mirrors every struct here with
 * #[repr(C)] and a compile-time size check; change both together).
 *
 * Only fixed-width types, explicit padding, and sizes that are multiples
 * of 8 so that C and Rust agree without relying on packing rules.
 */
#ifndef GOPROBE_H
#define GOPROBE_H

#ifndef __u64
typedef unsigned long long __u64;
typedef long long __s64;
typedef unsigned int __u32;
typedef unsigned short __u16;
typedef unsigned char __u8;
#endif

/* Which probe an event comes from (gp_event.kind). */
#define GP_KIND_HTTP_SERVER 1
#define GP_KIND_HTTP_CLIENT 2
#define GP_KIND_SPAWN 3

/* gp_event.flags */
#define GP_FLAG_ERROR 1          /* client: roundTrip returned a non-nil error */
#define GP_FLAG_READ_FAILED 2    /* some field could not be read (partial event) */
#define GP_FLAG_NO_RESPONSE 4    /* client: no *Response to read a status from */

/* Indices of the per-CPU `lost` counters. */
#define GP_LOST_RINGBUF 0   /* ring buffer full: a completed call was dropped */
#define GP_LOST_INFLIGHT 1  /* in-flight map insert failed: the call will be missing */
#define GP_LOST_READ 2      /* a user-memory read failed: an event is incomplete */
#define GP_LOST_UNPAIRED 3  /* a return with no recorded entry (attached mid-call, or evicted) */
#define GP_LOST_MAX 4

/* Field sizes: Go strings are copied up to these many bytes; the event
 * keeps the real length so user space can tell a string was truncated. */
#define GP_METHOD_MAX 16
#define GP_SHORT_MAX 64
#define GP_LONG_MAX 256

/* How the server probe reads the matched route (gp_config.route_mode). */
#define GP_ROUTE_NONE 0
#define GP_ROUTE_PATTERN 1      /* Go >= 1.23: Request.Pattern string */
#define GP_ROUTE_PAT_PTR 2      /* Go 1.22: Request.pat *pattern, pattern.str string */

/* An offset the programs must not use. */
#define GP_NO_OFFSET 0xffffffffffffffffULL

/* Struct field offsets for the target binary, written by user space into
 * the one-entry `config` array map before any probe is attached. */
struct gp_config {
	__u64 g_goid;                 /* runtime.g.goid */
	__u64 req_method;             /* net/http.Request.Method */
	__u64 req_url;                /* net/http.Request.URL */
	__u64 req_proto;              /* net/http.Request.Proto */
	__u64 req_host;               /* net/http.Request.Host */
	__u64 req_remote_addr;        /* net/http.Request.RemoteAddr */
	__u64 req_route;              /* Request.Pattern (1.23+) or Request.pat (1.22) */
	__u64 pattern_str;            /* net/http.pattern.str (1.22 only) */
	__u64 url_scheme;             /* net/url.URL.Scheme */
	__u64 url_host;               /* net/url.URL.Host */
	__u64 url_path;               /* net/url.URL.Path */
	__u64 url_raw_query;          /* net/url.URL.RawQuery */
	__u64 response_status;        /* net/http.response.status (server side) */
	__u64 resp_status_code;       /* net/http.Response.StatusCode (client side) */
	__u32 route_mode;             /* GP_ROUTE_* */
	__u32 _pad;
};

/* Key of the in-flight map: one call in progress on one goroutine. */
struct gp_inflight_key {
	__u32 tgid;
	__u32 kind;
	__u64 g;                      /* goroutine pointer (R14 on amd64) */
};

/* One completed call, as sent through the ring buffer. The in-flight map
 * holds the same struct between entry and return. */
struct gp_event {
	__u32 kind;                   /* GP_KIND_* */
	__u32 pid;                    /* tgid */
	__u32 tid;
	__u32 flags;                  /* GP_FLAG_* */
	__u64 goid;                   /* runtime.g.goid, 0 if unreadable */
	__u64 g;                      /* goroutine pointer */
	__u64 start_ns;               /* CLOCK_MONOTONIC at entry */
	__u64 end_ns;                 /* CLOCK_MONOTONIC at return */
	__s64 status;                 /* HTTP status code, 0 when unknown */
	__u64 ptr_a;                  /* server: *http.Request; client: *http.Request; spawn: child goid */
	__u64 ptr_b;                  /* server: *http.response; spawn: parent g pointer */
	__u32 method_len;             /* real lengths (may exceed the buffers) */
	__u32 path_len;
	__u32 host_len;
	__u32 proto_len;
	__u32 peer_len;
	__u32 route_len;
	__u32 scheme_len;
	__u32 query_len;
	char method[GP_METHOD_MAX];
	char scheme[GP_METHOD_MAX];
	char host[GP_SHORT_MAX];
	char proto[GP_METHOD_MAX];
	char peer[GP_SHORT_MAX];
	char path[GP_LONG_MAX];
	char route[GP_LONG_MAX];
	char query[GP_LONG_MAX];
};

/* A goroutine was created (runtime.newproc1 returned): sent through the
 * ring buffer like gp_event; user space tells them apart by `kind`. */
struct gp_spawn {
	__u32 kind;                   /* GP_KIND_SPAWN */
	__u32 pid;
	__u32 tid;
	__u32 flags;
	__u64 parent_goid;            /* the goroutine that ran the go statement */
	__u64 child_goid;             /* the new goroutine */
	__u64 ts_ns;                  /* CLOCK_MONOTONIC */
};

/* amd64 struct pt_regs (the uprobe context): fixed by the kernel's
 * user-space ABI (asm/ptrace.h), spelled out here because the headers only
 * define it when compiling *for* x86_64, not for the bpf target. */
struct gp_regs_x86_64 {
	__u64 r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8;
	__u64 rax, rcx, rdx, rsi, rdi, orig_rax, rip, cs, eflags, rsp, ss;
};

#endif
