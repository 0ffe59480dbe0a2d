// SPDX-License-Identifier: GPL-2.0
/* http_server.bpf.c: the http_server family (catalog probe http.server):
 * HTTP requests served by net/http, timed from the entry of
 * serverHandler.ServeHTTP to its return, with method, path, query, host,
 * protocol, peer, status, route, user agent, whether it came over TLS and
 * an incoming W3C traceparent.
 *
 * The entry program is attached after the function's stack-growth check, so
 * a call that grows its stack is seen once; the return program at every RET
 * instruction (Go must never get uretprobes, which corrupt moving goroutine
 * stacks). Entry fills an event in the in-flight LRU map keyed by (tgid,
 * goroutine pointer), in place; return completes it and sends it, and
 * leaves the entry (marked done) for the goroutine's next request.
 *
 * A request whose ServeHTTP never returns (a panic escaped the handler, and
 * net/http's recovery runs) ends at the entry of that recovery function:
 * http_server_unwound_entry, on the hooks the catalog lists for it.
 *
 * HTTP/2: net/http's own server (bundled; net/http/internal/http2 since
 * Go 1.27) calls ServeHTTP like HTTP/1 does, with a ResponseWriter whose
 * status lives in its responseWriterState. golang.org/x/net/http2's server
 * calls ServeHTTP too when it serves a net/http Server (ConfigureServer),
 * but not when it serves a handler of its own (the h2c handler, ServeConn):
 * its (*serverConn).runHandler is hooked as well (GP_HOOK_XNET_RUNHANDLER),
 * and a ServeHTTP inside it on the same goroutine is the same request
 * (counted in `depth`, not a second span). The programs cannot tell the
 * ResponseWriter's dynamic type from its runtime address, so at return they
 * read the status the way each HTTP/2 server keeps it and user space picks
 * by the type's name. h2c's connection preface (`PRI * HTTP/2.0`, which
 * x/net's h2c handler receives as a request and serves the whole
 * connection from) is no request and gets no span.
 *
 * Hook slots (catalog `slot`):
 *   http_server:          0,1 ResponseWriter (itab, data)  2 *Request
 *                         (x/net runHandler: 1 *responseWriter, no itab)
 *   http_server_unwound:  none
 *   http_server_xnet_done: none
 */
#define GP_RINGBUF_BYTES (8 << 20)   /* about 10,000 requests of slack */
#include "fields.h"
#include "family.h"

/* gp_server_event.flags beyond GP_FLAG_* (src/probes/http_server.rs) */
#define GP_FLAG_UNWOUND (1 << 8)     /* ServeHTTP never returned; net/http's recovery ran instead */
#define GP_FLAG_MAP_TOO_BIG (1 << 9) /* Request.Header too big to search for traceparent */
#define GP_FLAG_TLS (1 << 10)        /* Request.TLS is set: the request came over TLS */
#define GP_FLAG_TLS_KNOWN (1 << 11)  /* Request.TLS was read (its offset is known) */
#define GP_FLAG_XNET (1 << 12)       /* served by x/net's runHandler: status_xnet is the status */
#define GP_FLAG_PREFACE (1 << 13)    /* h2c's connection preface: tracked to its end, never sent */
#define GP_FLAG_DONE (1 << 14)       /* in the in-flight map only: the call ended, the entry waits for reuse */

/* gp_hook.flags (catalog `flags`) */
#define GP_HOOK_XNET_RUNHANDLER 1    /* golang.org/x/net/http2.(*serverConn).runHandler */

/* gp_config.mode slots and their values. */
#define GP_MODE_ROUTE 0
#define GP_ROUTE_NONE 0
#define GP_ROUTE_PATTERN 1      /* Go >= 1.23: Request.Pattern string */
#define GP_ROUTE_PAT_PTR 2      /* Go 1.22: Request.pat *pattern, pattern.str string */
#define GP_MODE_MAP 1           /* how Go maps are laid out, for Request.Header */
#define GP_MAP_NONE 0           /* offsets unknown: traceparent is not read */
#define GP_MAP_BUCKETS 1        /* Go < 1.24: runtime.hmap with 8-slot buckets */
#define GP_MAP_SWISS 2          /* Go >= 1.24: internal/runtime/maps Swiss tables */

/* Field sizes: Go strings are copied up to these many bytes; the event
 * keeps the real length so user space can tell a string was truncated. */
#define GP_METHOD_MAX 16
#define GP_SHORT_MAX 64
#define GP_LONG_MAX 256
#define GP_TRACEPARENT_MAX 64   /* a version-00 traceparent is 55 bytes */
#define GP_USER_AGENT_MAX 256

/* One request served, as sent through the ring buffer (its fixed part and
 * the used bytes of buf); the in-flight map holds the same struct between
 * entry and return.
 *
 * Method, protocol and peer have fixed places (the programs look at the
 * first two; the peer is kept for the next request of a keep-alive
 * connection, read_peer). The other strings are packed into `buf`
 * (APPEND_GO_STRING, goread.h), each at its `at[GP_AT_*]`. */
#define GP_AT_HOST 0
#define GP_AT_PATH 1
#define GP_AT_QUERY 2
#define GP_AT_USER_AGENT 3
#define GP_AT_TRACEPARENT 4
#define GP_AT_ROUTE 5
#define GP_AT_N 6
#define GP_PACKED_BYTES (GP_SHORT_MAX + 3 * GP_LONG_MAX + GP_USER_AGENT_MAX + GP_TRACEPARENT_MAX)
struct gp_server_event {
	__u32 pid;                    /* tgid */
	__u32 tid;
	__u32 flags;                  /* GP_FLAG_* */
	__u32 unwound_by;             /* GP_FLAG_UNWOUND: index in `hooks` of the net/http function that ran */
	__u64 goid;                   /* runtime.g.goid, 0 if unreadable */
	__u64 g;                      /* goroutine pointer */
	__u64 start_ns;               /* CLOCK_MONOTONIC at entry */
	__u64 end_ns;                 /* CLOCK_MONOTONIC at return */
	__s64 status;                 /* HTTP status code, 0 when unknown */
	__u64 req;                    /* *http.Request */
	__u64 resp;                   /* ResponseWriter's data word (*http.response for HTTP/1.x) */
	__u64 resp_type;              /* the ResponseWriter's dynamic type (0: x/net's runHandler) */
	__s64 status_h2;              /* HTTP/2: the status as net/http's own server keeps it (-1: unread) */
	__s64 status_xnet;            /* HTTP/2: the status as golang.org/x/net/http2 keeps it (-1: unread) */
	__u64 peer_ptr;               /* RemoteAddr's data pointer, to skip copying it again (http_request.h) */
	__u32 hook;                   /* index in `hooks` of the function entered */
	__u32 depth;                  /* nested entries on this goroutine for the same request */
	__u32 method_len;             /* real lengths (may exceed the buffers) */
	__u32 path_len;
	__u32 host_len;
	__u32 proto_len;
	__u32 peer_len;
	__u32 route_len;
	__u32 traceparent_len;
	__u32 query_len;              /* URL.RawQuery */
	__u32 user_agent_len;
	__u32 _pad2;
	__u16 at[GP_AT_N];            /* where each packed string starts in buf */
	__u16 used;                   /* bytes of buf filled (and sent) */
	__u16 _pad3;
	char method[GP_METHOD_MAX];
	char proto[GP_METHOD_MAX];
	char peer[GP_SHORT_MAX];
	char buf[GP_PACKED_BYTES];    /* host, path, query, user agent, traceparent, route, up to their sizes */
};
#define GP_EVENT_FIXED (sizeof(struct gp_server_event) - GP_PACKED_BYTES)
_Static_assert(sizeof(struct gp_server_event) == 1416, "gp_server_event layout (src/probes/http_server.rs)");
_Static_assert(GP_EVENT_FIXED == 264, "gp_server_event's fixed part (src/probes/http_server.rs)");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GP_INFLIGHT_ENTRIES);
	__type(key, struct gp_call_key);
	__type(value, struct gp_server_event);
} inflight SEC(".maps");

/* Scratch space: the event is too large for the 512-byte BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gp_server_event);
} scratch SEC(".maps");

/* The in-flight entry of the goroutine that entered: the one it already
 * has, else a new one. An entry is not deleted when its call ends (it is
 * marked GP_FLAG_DONE) and the goroutine's next request reuses it in place:
 * net/http serves every request of a keep-alive connection on one
 * goroutine, and the runtime recycles goroutine structs (so HTTP/2's
 * goroutine per request mostly lands on a known g). A map update and
 * delete per request, which copy the whole event into and out of cold
 * preallocated elements, cost more than the rest of the programs. The
 * LRU map evicts the entries of goroutines that are gone. */
static __always_inline struct gp_server_event *entry_slot(struct gp_call_key *key, struct gp_server_event *open)
{
	if (open)
		return open;
	__u32 zero = 0;
	struct gp_server_event *tmpl = bpf_map_lookup_elem(&scratch, &zero);
	if (!tmpl)
		return 0;
	if (bpf_map_update_elem(&inflight, key, tmpl, BPF_ANY)) {
		count_lost(GP_LOST_INFLIGHT);
		return 0;
	}
	return bpf_map_lookup_elem(&inflight, key);
}

/* Resets every scalar of a (reused) entry; string bytes past each *_len
 * are left stale (too big to clear cheaply): user space never reads past
 * min(len, buffer size). */
static __always_inline void start_event(void *ctx, struct gp_server_event *ev, __u64 goid, int goid_bad)
{
	struct gp_regs_x86_64 *regs = (struct gp_regs_x86_64 *)ctx;
	ev->flags = goid_bad ? GP_FLAG_READ_FAILED : 0;
	ev->unwound_by = 0;
	ev->goid = goid;
	ev->end_ns = 0;
	ev->status = 0;
	ev->req = 0;
	ev->resp = 0;
	ev->resp_type = 0;
	ev->status_h2 = -1;
	ev->status_xnet = -1;
	ev->peer_ptr = 0;
	ev->hook = 0;
	ev->depth = 0;
	ev->method_len = 0;
	ev->path_len = 0;
	ev->host_len = 0;
	ev->proto_len = 0;
	ev->peer_len = 0;
	ev->route_len = 0;
	ev->traceparent_len = 0;
	ev->query_len = 0;
	ev->user_agent_len = 0;
	ev->used = 0;
	__u64 id = bpf_get_current_pid_tgid();
	ev->pid = id >> 32;
	ev->tid = (__u32)id;
	ev->g = regs->r14;
	ev->start_ns = bpf_ktime_get_ns();
}

/* The call in flight on this goroutine, or 0 (none, or ended). */
static __always_inline struct gp_server_event *in_flight(struct gp_call_key *key)
{
	struct gp_server_event *ev = bpf_map_lookup_elem(&inflight, key);
	if (!ev || (ev->flags & GP_FLAG_DONE))
		return 0;
	return ev;
}

/* The call ended: sent (unless it was h2c's preface) and kept for reuse. */
static __always_inline void finish(struct gp_server_event *ev)
{
	if (!(ev->flags & GP_FLAG_PREFACE)) {
		ev->end_ns = bpf_ktime_get_ns();
		output(ev, GP_EVENT_FIXED + PACKED_USED(ev));
	}
	ev->flags |= GP_FLAG_DONE;
}

#include "http_headers.h"

/* The mux fills the route in during ServeHTTP, so it is read at return
 * (or when a panic escapes the handler). */
static __always_inline void read_route(struct gp_server_event *ev, struct gp_config *cfg, __u64 req)
{
	if (mode(cfg, GP_MODE_ROUTE) == GP_ROUTE_PATTERN) {
		if (READ_APPEND_GO_STRING(ev, req + off(cfg, GP_F_Request_Pattern), GP_AT_ROUTE, GP_LONG_MAX, route_len))
			ev->flags |= GP_FLAG_READ_FAILED;
	} else if (mode(cfg, GP_MODE_ROUTE) == GP_ROUTE_PAT_PTR) {
		__u64 pat = 0;
		if (read_u64(&pat, req + off(cfg, GP_F_Request_pat)) == 0 && pat) {
			if (READ_APPEND_GO_STRING(ev, pat + off(cfg, GP_F_pattern_str), GP_AT_ROUTE, GP_LONG_MAX, route_len))
				ev->flags |= GP_FLAG_READ_FAILED;
		}
	}
}

/* The status of an HTTP/2 response at rw: rw.rws.status, with the
 * offsets of one HTTP/2 server (0: none written yet); -1 when unreadable. */
static __always_inline __s64 h2_status(__u64 rw, __u64 off_rws, __u64 off_status)
{
	__u64 rws = 0;
	__s64 st = 0;
	if (off_rws == GP_NO_OFFSET || off_status == GP_NO_OFFSET || !rw ||
	    read_u64(&rws, rw + off_rws) || !rws)
		return -1;
	if (bpf_probe_read_user(&st, sizeof(st), (void *)(rws + off_status)))
		return -1;
	return st;
}

/* net/http's own HTTP/2 server: the bundled copy before Go 1.27, then
 * net/http/internal/http2 (one of the two pairs of offsets is known). */
static __always_inline __s64 std_h2_status(struct gp_config *cfg, __u64 rw)
{
	if (off(cfg, GP_F_http2responseWriter_rws) != GP_NO_OFFSET)
		return h2_status(rw, off(cfg, GP_F_http2responseWriter_rws), off(cfg, GP_F_http2responseWriterState_status));
	return h2_status(rw, off(cfg, GP_F_responseWriter_rws), off(cfg, GP_F_responseWriterState_status));
}

static __always_inline __s64 xnet_h2_status(struct gp_config *cfg, __u64 rw)
{
	return h2_status(rw, off(cfg, GP_F_golang_org_x_net_http2_responseWriter_rws),
			 off(cfg, GP_F_golang_org_x_net_http2_responseWriterState_status));
}

#include "http_request.h"

/* net/http.serverHandler.ServeHTTP(sh serverHandler, rw ResponseWriter, req *Request);
 * golang.org/x/net/http2.(*serverConn).runHandler(sc, rw *responseWriter, req *Request, handler) */
SEC("uprobe")
int http_server_entry(void *ctx)
{
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h)
		return 0;
	__u64 goid = 0;
	int goid_bad = read_goid(ctx, cfg, &goid);
	/* x/net's runHandler already opened this request on this goroutine:
	 * its ServeHTTP is the same request. A goroutine's g can be reused by
	 * a later goroutine, which has another id: that entry is stale. */
	struct gp_call_key key = call_key(ctx);
	struct gp_server_event *open = bpf_map_lookup_elem(&inflight, &key);
	if (open && !(open->flags & GP_FLAG_DONE) && open->depth < 8 && !goid_bad && goid &&
	    goid == open->goid) {
		open->depth++;
		return 0;
	}
	/* What the goroutine's previous request left (read_peer). */
	struct gp_req_strs rs = {};
	if (open) {
		rs.prev_peer = open->peer_ptr;
		rs.prev_goid = open->goid;
		rs.prev_peer_len = open->peer_len;
	}
	struct gp_server_event *ev = entry_slot(&key, open);
	if (!ev)
		return 0;
	start_event(ctx, ev, goid, goid_bad);
	__u64 req = slot(ctx, h, 2);
	ev->req = req;
	ev->resp = slot(ctx, h, 1);
	ev->resp_type = itab_type(slot(ctx, h, 0));
	ev->hook = (__u32)bpf_get_attach_cookie(ctx);
	if (h->flags & GP_HOOK_XNET_RUNHANDLER)
		ev->flags |= GP_FLAG_XNET;
	int bad = 0;
	__u64 url = 0, m = 0, tls = 0;
	int headers = headers_readable(cfg) && off(cfg, GP_F_Request_Header) != GP_NO_OFFSET;
	int tls_known = off(cfg, GP_F_Request_TLS) != GP_NO_OFFSET;
	__u32 zero = 0;
	struct gp_mapbuf *wb = bpf_map_lookup_elem(&mapbuf, &zero);
	if (wb && in_window(cfg, GP_F_Request_Method, 16) && in_window(cfg, GP_F_Request_Proto, 16) &&
	    in_window(cfg, GP_F_Request_Host, 16) && in_window(cfg, GP_F_Request_RemoteAddr, 16) &&
	    in_window(cfg, GP_F_Request_URL, 8) && (!headers || in_window(cfg, GP_F_Request_Header, 8)) &&
	    (!tls_known || in_window(cfg, GP_F_Request_TLS, 8))) {
		/* The window ends at the last field read, so it never runs past
		 * the Request into memory that may not be mapped. */
		__u64 end = off(cfg, GP_F_Request_Method) + 16;
		__u64 e;
		e = off(cfg, GP_F_Request_Proto) + 16;
		end = e > end ? e : end;
		e = off(cfg, GP_F_Request_Host) + 16;
		end = e > end ? e : end;
		e = off(cfg, GP_F_Request_RemoteAddr) + 16;
		end = e > end ? e : end;
		e = off(cfg, GP_F_Request_URL) + 8;
		end = e > end ? e : end;
		if (headers) {
			e = off(cfg, GP_F_Request_Header) + 8;
			end = e > end ? e : end;
		}
		if (tls_known) {
			e = off(cfg, GP_F_Request_TLS) + 8;
			end = e > end ? e : end;
		}
		asm volatile("" : "+r"(end));
		if (end > GP_REQ_WINDOW)
			end = GP_REQ_WINDOW;
		__u8 *w = wb->b;
		if (bpf_probe_read_user(w, end, (void *)req)) {
			bad = 1;
			tls_known = 0;
		} else {
			/* Take the string headers out before the buffer is reused. */
			__u64 mo = off(cfg, GP_F_Request_Method), po = off(cfg, GP_F_Request_Proto);
			__u64 ho = off(cfg, GP_F_Request_Host), ro = off(cfg, GP_F_Request_RemoteAddr);
			rs.meth.p = win_u64(w, mo);
			rs.meth.n = win_u64(w, mo + 8);
			rs.proto.p = win_u64(w, po);
			rs.proto.n = win_u64(w, po + 8);
			rs.host.p = win_u64(w, ho);
			rs.host.n = win_u64(w, ho + 8);
			rs.peer.p = win_u64(w, ro);
			rs.peer.n = win_u64(w, ro + 8);
			url = win_u64(w, off(cfg, GP_F_Request_URL));
			if (headers)
				m = win_u64(w, off(cfg, GP_F_Request_Header));
			if (tls_known)
				tls = win_u64(w, off(cfg, GP_F_Request_TLS));
		}
	} else {
		bad |= bpf_probe_read_user(&rs.meth, sizeof(rs.meth), (void *)(req + off(cfg, GP_F_Request_Method))) ? 1 : 0;
		bad |= bpf_probe_read_user(&rs.proto, sizeof(rs.proto), (void *)(req + off(cfg, GP_F_Request_Proto))) ? 1 : 0;
		bad |= bpf_probe_read_user(&rs.host, sizeof(rs.host), (void *)(req + off(cfg, GP_F_Request_Host))) ? 1 : 0;
		bad |= bpf_probe_read_user(&rs.peer, sizeof(rs.peer), (void *)(req + off(cfg, GP_F_Request_RemoteAddr))) ? 1 : 0;
		if (read_u64(&url, req + off(cfg, GP_F_Request_URL)))
			url = 0;
		if (headers && read_u64(&m, req + off(cfg, GP_F_Request_Header)))
			m = 0;
		if (tls_known && read_u64(&tls, req + off(cfg, GP_F_Request_TLS))) {
			bad = 1;
			tls_known = 0;
		}
	}
	if (!url || url_strings(cfg, url, &rs.path, &rs.query))
		bad = 1;
	bad |= read_req_strings(ev, wb, &rs);
	/* url.scheme: net/http sets Request.TLS for requests it read over TLS. */
	if (tls_known)
		ev->flags |= GP_FLAG_TLS_KNOWN | (tls ? GP_FLAG_TLS : 0);
	/* h2c's connection preface, "PRI * HTTP/2.0", is not a request: it is
	 * tracked (its return is no lost event) but never sent. */
	__u64 at_path = ev->at[GP_AT_PATH];
	/* Re-checked after the barrier, for the verifier. */
	asm volatile("" : "+r"(at_path));
	if (ev->method_len == 3 && ev->method[0] == 'P' && ev->method[1] == 'R' && ev->method[2] == 'I' &&
	    ev->path_len == 1 && at_path < GP_PACKED_BYTES && ev->buf[at_path] == '*') {
		ev->flags = GP_FLAG_PREFACE;
		return 0;
	}
	if (bad)
		ev->flags |= GP_FLAG_READ_FAILED;
	if (m)
		read_headers(ev, cfg, m);
	if (ev->flags & GP_FLAG_READ_FAILED)
		count_lost(GP_LOST_READ);
	return 0;
}

SEC("uprobe")
int http_server_return(void *ctx)
{
	struct gp_config *cfg = get_config();
	if (!cfg)
		return 0;
	struct gp_call_key key = call_key(ctx);
	struct gp_server_event *ev = in_flight(&key);
	if (!ev) {
		count_lost(GP_LOST_UNPAIRED);
		return 0;
	}
	if (ev->depth) {
		/* The ServeHTTP inside x/net's runHandler: its request goes on. */
		ev->depth--;
		return 0;
	}
	if (ev->flags & GP_FLAG_PREFACE) {
		finish(ev);
		return 0;
	}
	if (ev->flags & GP_FLAG_XNET) {
		/* x/net's runHandler returns after its deferred function ran:
		 * handlerDone (which drops rw.rws) on a normal end, or the
		 * recovery of a panic that escaped the handler, which leaves
		 * rw.rws in place. The status was read before (xnet_done). */
		__u64 rws = 0;
		__u64 o = off(cfg, GP_F_golang_org_x_net_http2_responseWriter_rws);
		if (o != GP_NO_OFFSET && read_u64(&rws, ev->resp + o) == 0 && rws)
			ev->flags |= GP_FLAG_UNWOUND;
	} else if (ev->proto[5] == '1' && ev->resp && off(cfg, GP_F_response_status) != GP_NO_OFFSET) {
		/* rw's dynamic type is *http.response for HTTP/1.x; only then is
		 * the status field where the offset says. */
		__s64 status = 0;
		if (bpf_probe_read_user(&status, sizeof(status), (void *)(ev->resp + off(cfg, GP_F_response_status)))) {
			ev->flags |= GP_FLAG_READ_FAILED;
			count_lost(GP_LOST_READ);
		}
		ev->status = status;
	} else if (ev->proto[5] == '2' && ev->resp) {
		ev->status_h2 = std_h2_status(cfg, ev->resp);
		ev->status_xnet = xnet_h2_status(cfg, ev->resp);
	}
	read_route(ev, cfg, ev->req);
	finish(ev);
	return 0;
}

/* Entry of x/net's runHandler's deferred function: the handler is done
 * (returned or panicked) and handlerDone has not run yet, so rw.rws still
 * holds the status the handler wrote (0: none, an implicit 200). */
SEC("uprobe")
int http_server_xnet_done_entry(void *ctx)
{
	struct gp_config *cfg = get_config();
	if (!cfg)
		return 0;
	struct gp_call_key key = call_key(ctx);
	struct gp_server_event *ev = in_flight(&key);
	if (ev && (ev->flags & GP_FLAG_XNET) && !ev->depth)
		ev->status_xnet = xnet_h2_status(cfg, ev->resp);
	return 0;
}

/* Entry of net/http's recovery (the deferred function of conn.serve, or of
 * the HTTP/2 runHandler), which runs when the goroutine that served
 * requests unwinds. A server call still in flight on this goroutine means
 * ServeHTTP did not return: a panic (or runtime.Goexit) escaped the
 * handler. Its span ends here, with the route the mux had set. */
SEC("uprobe")
int http_server_unwound_entry(void *ctx)
{
	struct gp_config *cfg = get_config();
	if (!cfg)
		return 0;
	struct gp_call_key key = call_key(ctx);
	struct gp_server_event *ev = in_flight(&key);
	if (!ev)
		return 0;
	if (!(ev->flags & GP_FLAG_PREFACE)) {
		ev->unwound_by = (__u32)bpf_get_attach_cookie(ctx);
		ev->flags |= GP_FLAG_UNWOUND;
		read_route(ev, cfg, ev->req);
	}
	finish(ev);
	return 0;
}
