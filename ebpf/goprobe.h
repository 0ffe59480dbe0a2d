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

/* Which probe an event comes from (first __u32 of every ring-buffer record). */
#define GP_KIND_HTTP_SERVER 1
#define GP_KIND_HTTP_CLIENT 2
#define GP_KIND_SPAWN 3
#define GP_KIND_DB 4
#define GP_KIND_PANIC 5

/* gp_event.flags (and gp_db_event.flags, gp_panic_event.flags) */
#define GP_FLAG_ERROR 1          /* the call returned a non-nil error */
#define GP_FLAG_READ_FAILED 2    /* some field could not be read (partial event) */
#define GP_FLAG_NO_RESPONSE 4    /* client: no *Response to read a status from */
#define GP_FLAG_UNWOUND 8        /* server: ServeHTTP never returned; net/http's recovery ran instead */
#define GP_FLAG_MAP_TOO_BIG 16   /* server: Request.Header too big to search for traceparent */

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
#define GP_TRACEPARENT_MAX 64   /* a version-00 traceparent is 55 bytes */
#define GP_QUERY_MAX 1024       /* db.query.text is cut here (documented in record --help) */
#define GP_DSN_MAX 128
#define GP_PANIC_TEXT_MAX 128

/* How the server probe reads the matched route (gp_config.route_mode). */
#define GP_ROUTE_NONE 0
#define GP_ROUTE_PATTERN 1      /* Go >= 1.23: Request.Pattern string */
#define GP_ROUTE_PAT_PTR 2      /* Go 1.22: Request.pat *pattern, pattern.str string */

/* How Go maps are laid out (gp_config.map_mode), for Request.Header. */
#define GP_MAP_NONE 0           /* offsets unknown: traceparent is not read */
#define GP_MAP_BUCKETS 1        /* Go < 1.24: runtime.hmap with 8-slot buckets */
#define GP_MAP_SWISS 2          /* Go >= 1.24: internal/runtime/maps Swiss tables */

/* An offset the programs must not use. */
#define GP_NO_OFFSET 0xffffffffffffffffULL

/* Struct field offsets, indices into gp_config.off. The comment names the
 * field as `goprobe offsets` does; src/bpf/abi.rs has the same list in the
 * same order (a unit test compares them). */
#define GP_F_G_GOID 0             /* runtime.g.goid */
#define GP_F_REQ_METHOD 1         /* net/http.Request.Method */
#define GP_F_REQ_URL 2            /* net/http.Request.URL */
#define GP_F_REQ_PROTO 3          /* net/http.Request.Proto */
#define GP_F_REQ_HOST 4           /* net/http.Request.Host */
#define GP_F_REQ_REMOTE_ADDR 5    /* net/http.Request.RemoteAddr */
#define GP_F_REQ_PATTERN 6        /* net/http.Request.Pattern */
#define GP_F_REQ_PAT 7            /* net/http.Request.pat */
#define GP_F_PATTERN_STR 8        /* net/http.pattern.str */
#define GP_F_URL_SCHEME 9         /* net/url.URL.Scheme */
#define GP_F_URL_HOST 10          /* net/url.URL.Host */
#define GP_F_URL_PATH 11          /* net/url.URL.Path */
#define GP_F_URL_RAW_QUERY 12     /* net/url.URL.RawQuery */
#define GP_F_RESPONSE_STATUS 13   /* net/http.response.status */
#define GP_F_RESP_STATUS_CODE 14  /* net/http.Response.StatusCode */
#define GP_F_REQ_HEADER 15        /* net/http.Request.Header */
#define GP_F_HMAP_B 16            /* runtime.hmap.B */
#define GP_F_HMAP_BUCKETS 17      /* runtime.hmap.buckets */
#define GP_F_HMAP_OLDBUCKETS 18   /* runtime.hmap.oldbuckets */
#define GP_F_SMAP_DIRPTR 19       /* internal/runtime/maps.Map.dirPtr */
#define GP_F_SMAP_DIRLEN 20       /* internal/runtime/maps.Map.dirLen */
#define GP_F_STABLE_GROUPS 21     /* internal/runtime/maps.table.groups */
#define GP_F_GROUPS_DATA 22       /* internal/runtime/maps.groupsReference.data */
#define GP_F_GROUPS_MASK 23       /* internal/runtime/maps.groupsReference.lengthMask */
#define GP_F_DB_CONNECTOR 24      /* database/sql.DB.connector */
#define GP_F_STMT_DB 25           /* database/sql.Stmt.db */
#define GP_F_STMT_QUERY 26        /* database/sql.Stmt.query */
#define GP_F_TX_DB 27             /* database/sql.Tx.db */
#define GP_F_DSN_DSN 28           /* database/sql.dsnConnector.dsn */
#define GP_F_DSN_DRIVER 29        /* database/sql.dsnConnector.driver */
#define GP_F_TX_DONE 30           /* database/sql.Tx.done */
#define GP_F_MAX 32

/* Struct field offsets for the target binary, written by user space into
 * the one-entry `config` array map before any probe is attached. */
struct gp_config {
	__u64 off[GP_F_MAX];          /* GP_F_* -> offset, or GP_NO_OFFSET */
	__u32 route_mode;             /* GP_ROUTE_* */
	__u32 map_mode;               /* GP_MAP_* */
};

/* One hooked function, in the `hooks` array map at the index the uprobe's
 * attach cookie carries. Filled from the probe catalog (src/catalog.toml):
 * reg[slot] is the register-ABI word index (0 = RAX on amd64) of the
 * argument or result the program reads in that slot; GP_REG_NONE when the
 * hook has none. Slots per program:
 *   http_server: 0,1 ResponseWriter (itab, data)  2 *Request
 *   http_client: 0 *Request  1 *Response (return)  2,3 error (return)
 *   db_call:     0 receiver (*DB, or *Stmt / *Tx per flags)  1,2 query string
 *                (ptr, len; *DB hooks only)  3,4 error (return)
 *   panic:       0,1 the panic value (eface: type, data)
 *   unwound:     none
 *   spawn:       0 callergp *g  1 the new *g (return) */
#define GP_SLOTS 8
#define GP_REG_NONE 0xff
#define GP_HOOK_RECEIVER_IS_STMT 1
#define GP_HOOK_RECEIVER_IS_TX 2
#define GP_HOOK_SKIP_IF_TX_DONE 4  /* a call on a finished Tx is a no-op: no event */
#define GP_HOOKS_MAX 64

struct gp_hook {
	__u32 kind;                   /* GP_KIND_* of the events this hook makes */
	__u32 flags;                  /* GP_HOOK_* */
	__u8 reg[GP_SLOTS];
};

/* Key of the in-flight maps: one call in progress on one goroutine. */
struct gp_inflight_key {
	__u32 tgid;
	__u32 kind;
	__u64 g;                      /* goroutine pointer (R14 on amd64) */
};

/* One completed HTTP call, as sent through the ring buffer. The in-flight
 * map holds the same struct between entry and return. */
struct gp_event {
	__u32 kind;                   /* GP_KIND_HTTP_* */
	__u32 pid;                    /* tgid */
	__u32 tid;
	__u32 flags;                  /* GP_FLAG_* */
	__u64 goid;                   /* runtime.g.goid, 0 if unreadable */
	__u64 g;                      /* goroutine pointer */
	__u64 start_ns;               /* CLOCK_MONOTONIC at entry */
	__u64 end_ns;                 /* CLOCK_MONOTONIC at return */
	__s64 status;                 /* HTTP status code, 0 when unknown */
	__u64 ptr_a;                  /* server: *http.Request; client: *http.Request */
	__u64 ptr_b;                  /* server: *http.response */
	__u64 unwound_by;             /* GP_FLAG_UNWOUND: index in `hooks` of the net/http function that ran */
	__u32 method_len;             /* real lengths (may exceed the buffers) */
	__u32 path_len;
	__u32 host_len;
	__u32 proto_len;
	__u32 peer_len;
	__u32 route_len;
	__u32 scheme_len;
	__u32 query_len;
	__u32 traceparent_len;
	__u32 _pad;
	char method[GP_METHOD_MAX];
	char scheme[GP_METHOD_MAX];
	char host[GP_SHORT_MAX];
	char proto[GP_METHOD_MAX];
	char peer[GP_SHORT_MAX];
	char path[GP_LONG_MAX];
	char route[GP_LONG_MAX];
	char query[GP_LONG_MAX];
	char traceparent[GP_TRACEPARENT_MAX];
};

/* A database/sql call between entry and return: the argument words the
 * return program needs (strings and receivers are still alive at return). */
struct gp_call {
	__u64 start_ns;
	__u64 goid;
	__u64 w[3];                   /* the hook's slots 0..2 */
	__u32 hook;                   /* index in `hooks` */
	__u32 flags;                  /* GP_FLAG_*, and GP_CALL_SKIP */
};
#define GP_CALL_SKIP 0x80000000      /* gp_call.flags: paired but sends nothing */

/* One completed database/sql call. Type descriptors are sent as the
 * target's runtime addresses; user space names them from the ELF file. */
struct gp_db_event {
	__u32 kind;                   /* GP_KIND_DB */
	__u32 pid;
	__u32 tid;
	__u32 flags;                  /* GP_FLAG_ERROR, GP_FLAG_READ_FAILED */
	__u64 goid;
	__u64 g;
	__u64 start_ns;
	__u64 end_ns;
	__u32 hook;                   /* index in `hooks`: which function */
	__u32 query_len;              /* real length of the query text */
	__u64 connector_type;         /* DB.connector's dynamic type */
	__u64 driver_type;            /* dsnConnector.driver's dynamic type (meaningful only when connector_type is *sql.dsnConnector) */
	__u64 error_type;             /* the returned error's dynamic type */
	__u32 dsn_len;
	__u32 _pad;
	char dsn[GP_DSN_MAX];         /* dsnConnector.dsn, for server.address/port only; never written out */
	char query[GP_QUERY_MAX];
};

/* runtime.gopanic was called. */
struct gp_panic_event {
	__u32 kind;                   /* GP_KIND_PANIC */
	__u32 pid;
	__u32 tid;
	__u32 flags;
	__u64 goid;
	__u64 g;
	__u64 ts_ns;
	__u64 type_ptr;               /* the value's type descriptor (runtime address) */
	__u64 data_ptr;               /* the value's data word */
	__u64 word[4];                /* 32 bytes at data_ptr (when readable) */
	__u32 text_len;               /* word[1] when word[0] looks like a string's data */
	__u32 _pad;
	char text[GP_PANIC_TEXT_MAX]; /* bytes at word[0] */
};

/* A goroutine was created (runtime.newproc1 returned). */
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
