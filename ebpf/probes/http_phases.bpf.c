// SPDX-License-Identifier: GPL-2.0
/* http_phases.bpf.c: the http_phases family (catalog probes http.phases and
 * http.exchange): the phases of an outgoing call that opens a new
 * connection, one record at the start and one at the end of each:
 *   dns      net.(*Resolver).lookupIPAddr: host, addresses resolved, error
 *   connect  net.(*sysDialer).dialTCP: peer address and port, error
 *   tls      crypto/tls.(*Conn).clientHandshake: negotiated version, error
 * and, for the first request on an HTTP/1 connection opened while attached,
 * two instants:
 *   request_sent  net/http.(*Request).write returned on the connection's
 *                 writeLoop goroutine
 *   first_byte    net/http.(*persistConn).readResponse entered for it
 *                 (readLoop's Peek(1) has the first byte of the response)
 * Each record carries the goroutine it happened on; user space nests it in
 * the caller's span through goroutine creation (go.spawn).
 *
 * Hook slots (catalog `slot`):
 *   ph_dns:   0,1 host (string)  2 answers (len of the result, return)
 *             3,4 error (return)
 *   ph_tcp:   0 *TCPAddr raddr   1,2 error (return)
 *   ph_tls:   0 *tls.Conn        1,2 error (return)
 *   ph_wloop: 0 *persistConn
 *   ph_write: 0,1 error (return)
 *   ph_resp:  0 *persistConn
 */
#define GP_RINGBUF_BYTES (1 << 20)
#include "fields.h"
#include "family.h"

/* gp_phase_event.phase (src/probes/http_phases.rs) */
#define GP_PHASE_DNS 1
#define GP_PHASE_CONNECT 2
#define GP_PHASE_TLS 3
#define GP_PHASE_REQUEST_SENT 4
#define GP_PHASE_FIRST_BYTE 5

/* gp_phase_event.flags beyond GP_FLAG_* */
#define GP_FLAG_END (1 << 8)     /* the end of a phase (else its start, or an instant) */

#define GP_HOST_MAX 128
#define GP_ADDR_MAX 16 /* an IPv6 address; IPv4 ones are 4 or 16 (v4-mapped) bytes */

/* Sized for concurrent dials, not concurrent requests. */
#define GP_PHASE_ENTRIES 4096

/* One phase's start or end, or an instant. */
struct gp_phase_event {
	__u32 pid;
	__u32 tid;
	__u32 flags;          /* GP_FLAG_ERROR, GP_FLAG_READ_FAILED, GP_FLAG_END */
	__u32 phase;          /* GP_PHASE_* */
	__u64 goid;
	__u64 g;
	__u64 parent_goid;    /* runtime.g.parentGoid (Go >= 1.21), 0 when unknown */
	__u64 start_ns;       /* the phase's start */
	__u64 end_ns;         /* its end; = start_ns for a start or an instant */
	__u64 err_type;       /* the error's dynamic type (runtime address), 0 for none */
	__u64 obj;            /* tls: the *tls.Conn, to read its version at the end */
	__s64 answers;        /* dns end: addresses resolved */
	__s64 port;           /* connect: peer port */
	__u32 tls_version;    /* tls end: tls.Conn.vers (0x0304 = TLS 1.3) */
	__u32 host_len;       /* dns: real length of the host name */
	__u32 addr_len;       /* connect: real length of the peer IP */
	__u32 _pad0;
	char host[GP_HOST_MAX];
	__u8 addr[GP_ADDR_MAX];
};
_Static_assert(sizeof(struct gp_phase_event) == 248, "gp_phase_event layout (src/probes/http_phases.rs)");

/* A phase in progress on one goroutine. */
struct gp_phase_key {
	__u32 tgid;
	__u32 phase;
	__u64 g;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GP_PHASE_ENTRIES);
	__type(key, struct gp_phase_key);
	__type(value, struct gp_phase_event);
} inflight SEC(".maps");

/* The writeLoop goroutine of each HTTP/1 connection opened while attached,
 * until its first request is written: goroutine -> its goid (the runtime
 * reuses g structs: a later goroutine on the same g is not that writer).
 * LRU: a connection that never carries a request leaves its entry to be
 * evicted. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GP_PHASE_ENTRIES);
	__type(key, struct gp_call_key);
	__type(value, __u64);
} writers SEC(".maps");

/* The same connections until their first response byte:
 * (tgid, *persistConn) -> unused. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GP_PHASE_ENTRIES);
	__type(key, struct gp_call_key);
	__type(value, __u8);
} readers SEC(".maps");

/* Scratch space for a record: kept off the 512-byte BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gp_phase_event);
} scratch SEC(".maps");

/* A fresh record of `phase` for the current goroutine, timed now. */
static __always_inline struct gp_phase_event *new_event(void *ctx, struct gp_config *cfg, __u32 phase)
{
	struct gp_regs_x86_64 *regs = (struct gp_regs_x86_64 *)ctx;
	__u32 zero = 0;
	struct gp_phase_event *ev = bpf_map_lookup_elem(&scratch, &zero);
	if (!ev)
		return 0;
	/* The scratch slot is reused: reset every scalar (bytes past host_len
	 * and addr_len are never read). */
	__u64 id = bpf_get_current_pid_tgid();
	ev->pid = id >> 32;
	ev->tid = (__u32)id;
	ev->flags = 0;
	ev->phase = phase;
	ev->goid = 0;
	ev->g = regs->r14;
	/* Phases run on net/http's goroutines (the dial's, its connection's
	 * loops): who started them links them to the caller's span. */
	ev->parent_goid = read_parent_goid(ctx, cfg);
	ev->start_ns = bpf_ktime_get_ns();
	ev->end_ns = ev->start_ns;
	ev->err_type = 0;
	ev->obj = 0;
	ev->answers = 0;
	ev->port = 0;
	ev->tls_version = 0;
	ev->host_len = 0;
	ev->addr_len = 0;
	ev->_pad0 = 0;
	if (read_goid(ctx, cfg, &ev->goid)) {
		ev->flags |= GP_FLAG_READ_FAILED;
		count_lost(GP_LOST_READ);
	}
	return ev;
}

/* Emit the start record and keep it until the phase ends. */
static __always_inline void started(struct gp_phase_event *ev)
{
	output(ev, sizeof(*ev));
	struct gp_phase_key key = {.tgid = ev->pid, .phase = ev->phase, .g = ev->g};
	if (bpf_map_update_elem(&inflight, &key, ev, BPF_ANY))
		count_lost(GP_LOST_INFLIGHT);
}

/* The phase started on this goroutine, now ending; NULL (counted) when its
 * start was not seen (attached mid-phase, or evicted). */
static __always_inline struct gp_phase_event *ending(void *ctx, __u32 phase, struct gp_phase_key *key)
{
	struct gp_regs_x86_64 *regs = (struct gp_regs_x86_64 *)ctx;
	key->tgid = bpf_get_current_pid_tgid() >> 32;
	key->phase = phase;
	key->g = regs->r14;
	struct gp_phase_event *ev = bpf_map_lookup_elem(&inflight, key);
	if (!ev) {
		count_lost(GP_LOST_UNPAIRED);
		return 0;
	}
	ev->flags |= GP_FLAG_END;
	ev->end_ns = bpf_ktime_get_ns();
	return ev;
}

/* The error result in slots s, s+1 (itab, data): its dynamic type. */
static __always_inline void set_error(void *ctx, struct gp_hook *h, int s, struct gp_phase_event *ev)
{
	__u64 itab = slot(ctx, h, s);
	if (!itab)
		return;
	ev->flags |= GP_FLAG_ERROR;
	ev->err_type = itab_type(itab);
}

static __always_inline void finished(struct gp_phase_event *ev, struct gp_phase_key *key)
{
	output(ev, sizeof(*ev));
	bpf_map_delete_elem(&inflight, key);
}

/* net.(*Resolver).lookupIPAddr(ctx, network, host string) ([]IPAddr, error) */
SEC("uprobe")
int ph_dns_entry(void *ctx)
{
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h)
		return 0;
	struct gp_phase_event *ev = new_event(ctx, cfg, GP_PHASE_DNS);
	if (!ev)
		return 0;
	/* The host string is in two registers (slots 0, 1), not in memory. */
	__u64 p = slot(ctx, h, 0), n = slot(ctx, h, 1);
	ev->host_len = n > 0xffffffffULL ? 0xffffffffU : (__u32)n;
	if (n > GP_HOST_MAX)
		n = GP_HOST_MAX;
	/* Re-checked after the barrier, for the verifier. */
	asm volatile("" : "+r"(n));
	if (n > GP_HOST_MAX)
		n = 0;
	if (n && bpf_probe_read_user(ev->host, n, (void *)p)) {
		ev->host_len = 0;
		ev->flags |= GP_FLAG_READ_FAILED;
		count_lost(GP_LOST_READ);
	}
	/* An address literal comes through here too: user space drops it
	 * (telling one apart here takes a loop per character, and a bpf_loop
	 * callback needs BTF func_info the multi-uprobe loader does not pass). */
	started(ev);
	return 0;
}

SEC("uprobe")
int ph_dns_return(void *ctx)
{
	struct gp_hook *h = get_hook(ctx);
	if (!h)
		return 0;
	struct gp_phase_key key;
	struct gp_phase_event *ev = ending(ctx, GP_PHASE_DNS, &key);
	if (!ev)
		return 0;
	ev->answers = (__s64)slot(ctx, h, 2);
	set_error(ctx, h, 3, ev);
	finished(ev, &key);
	return 0;
}

/* net.(*sysDialer).dialTCP(ctx, laddr, raddr *TCPAddr) (*TCPConn, error) */
SEC("uprobe")
int ph_tcp_entry(void *ctx)
{
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h)
		return 0;
	struct gp_phase_event *ev = new_event(ctx, cfg, GP_PHASE_CONNECT);
	if (!ev)
		return 0;
	__u64 raddr = slot(ctx, h, 0);
	int bad = 0;
	if (raddr) {
		/* TCPAddr.IP is a []byte: its (ptr, len) read like a string's. */
		bad |= READ_GO_STRING(ev, raddr + off(cfg, GP_F_TCPAddr_IP), addr, addr_len);
		bad |= bpf_probe_read_user(&ev->port, sizeof(ev->port), (void *)(raddr + off(cfg, GP_F_TCPAddr_Port))) != 0;
	} else {
		bad = 1;
	}
	if (bad) {
		ev->flags |= GP_FLAG_READ_FAILED;
		count_lost(GP_LOST_READ);
	}
	started(ev);
	return 0;
}

SEC("uprobe")
int ph_tcp_return(void *ctx)
{
	struct gp_hook *h = get_hook(ctx);
	if (!h)
		return 0;
	struct gp_phase_key key;
	struct gp_phase_event *ev = ending(ctx, GP_PHASE_CONNECT, &key);
	if (!ev)
		return 0;
	set_error(ctx, h, 1, ev);
	finished(ev, &key);
	return 0;
}

/* crypto/tls.(*Conn).clientHandshake(ctx) (err error) */
SEC("uprobe")
int ph_tls_entry(void *ctx)
{
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h)
		return 0;
	struct gp_phase_event *ev = new_event(ctx, cfg, GP_PHASE_TLS);
	if (!ev)
		return 0;
	ev->obj = slot(ctx, h, 0);
	started(ev);
	return 0;
}

SEC("uprobe")
int ph_tls_return(void *ctx)
{
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h)
		return 0;
	struct gp_phase_key key;
	struct gp_phase_event *ev = ending(ctx, GP_PHASE_TLS, &key);
	if (!ev)
		return 0;
	__u16 vers = 0;
	if (ev->obj && !bpf_probe_read_user(&vers, sizeof(vers), (void *)(ev->obj + off(cfg, GP_F_Conn_vers))))
		ev->tls_version = vers;
	else {
		ev->flags |= GP_FLAG_READ_FAILED;
		count_lost(GP_LOST_READ);
	}
	set_error(ctx, h, 1, ev);
	finished(ev, &key);
	return 0;
}

/* net/http.(*persistConn).writeLoop(): a new HTTP/1 connection's writer
 * starts. Marks the connection until its first request is written and its
 * first response byte read. */
SEC("uprobe")
int ph_wloop_entry(void *ctx)
{
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h)
		return 0;
	__u64 pc = slot(ctx, h, 0);
	if (!pc)
		return 0;
	__u64 goid = 0;
	if (read_goid(ctx, cfg, &goid))
		count_lost(GP_LOST_READ);
	struct gp_call_key w = call_key(ctx);
	struct gp_call_key r = {.tgid = w.tgid, .g = pc};
	__u8 one = 1;
	if (bpf_map_update_elem(&writers, &w, &goid, BPF_ANY) ||
	    bpf_map_update_elem(&readers, &r, &one, BPF_ANY))
		count_lost(GP_LOST_INFLIGHT);
	return 0;
}

/* An instant of a marked connection, on the current goroutine. */
static __always_inline void instant(void *ctx, __u32 phase)
{
	struct gp_config *cfg = get_config();
	if (!cfg)
		return;
	struct gp_phase_event *ev = new_event(ctx, cfg, phase);
	if (ev)
		output(ev, sizeof(*ev));
}

/* net/http.(*Request).write(...) (err error) returned: every HTTP/1 request
 * traps here; only a marked writeLoop goroutine's first one is recorded. */
SEC("uprobe")
int ph_write_return(void *ctx)
{
	struct gp_call_key w = call_key(ctx);
	__u64 *writer = bpf_map_lookup_elem(&writers, &w);
	if (!writer)
		return 0;
	__u64 goid = *writer;
	bpf_map_delete_elem(&writers, &w);
	struct gp_hook *h = get_hook(ctx);
	struct gp_config *cfg = get_config();
	if (!h || !cfg)
		return 0;
	struct gp_phase_event *ev = new_event(ctx, cfg, GP_PHASE_REQUEST_SENT);
	if (!ev || ev->goid != goid)
		return 0;
	set_error(ctx, h, 0, ev);
	output(ev, sizeof(*ev));
	return 0;
}

/* net/http.(*persistConn).readResponse(rc, trace): every HTTP/1 response
 * traps here; only a marked connection's first one is recorded. */
SEC("uprobe")
int ph_resp_entry(void *ctx)
{
	struct gp_hook *h = get_hook(ctx);
	if (!h)
		return 0;
	struct gp_call_key r = {.tgid = bpf_get_current_pid_tgid() >> 32, .g = slot(ctx, h, 0)};
	if (!bpf_map_lookup_elem(&readers, &r))
		return 0;
	bpf_map_delete_elem(&readers, &r);
	instant(ctx, GP_PHASE_FIRST_BYTE);
	return 0;
}
