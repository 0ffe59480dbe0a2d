// SPDX-License-Identifier: GPL-2.0
/* http_client.bpf.c: the http_client family (catalog probe http.client):
 * outgoing HTTP calls through net/http.(*Transport).roundTrip, or through
 * golang.org/x/net/http2's own Transport (RoundTripOpt), timed from entry
 * to return (every RET; see http_server.bpf.c for why), with method, URL,
 * the Host header, status, protocol, and the error that came back: its
 * dynamic type and the first words of its value (user space names the type
 * and, where Go's text follows exactly from them, the message). A round
 * trip inside another on the same goroutine (net/http handing an HTTP/2
 * request to x/net's transport, ConfigureTransport) is the same call:
 * counted in `depth`, not a second event.
 *
 * The connection the request went out on is read where each transport
 * picks it, on the same goroutine (http_client_conn): net/http's
 * persistConn (HTTP/1), its HTTP/2 ClientConn, x/net's ClientConn. Its
 * net.Conn is a *net.TCPConn, or a *tls.Conn over one; the programs cannot
 * tell which from the type's runtime address, so they read both ways and
 * user space picks by the types' names (src/probes/http_client.rs).
 *
 * Hook slots (catalog `slot`):
 *   http_client:      0 *Request  1 *Response (return)  2,3 error (return)
 *   http_client_conn: 0 the connection struct (receiver; which one: GP_HOOK_*)
 */
#define GP_RINGBUF_BYTES (4 << 20)
#include "fields.h"
#include "family.h"
#include "netaddr.h"

/* gp_client_event.flags beyond GP_FLAG_* (src/probes/http_client.rs) */
#define GP_FLAG_NO_RESPONSE (1 << 8) /* no *Response to read a status from */
#define GP_FLAG_USERINFO (1 << 9)    /* URL.User is set: the URL carries credentials */
#define GP_FLAG_DONE (1 << 14)       /* in the in-flight map only: the call ended, the entry waits for reuse */

/* gp_hook.flags of http_client_conn hooks (catalog `flags`): where the
 * receiver keeps its net.Conn. */
#define GP_HOOK_CONN_PERSIST 1       /* net/http.persistConn.conn */
#define GP_HOOK_CONN_H2 2            /* net/http's HTTP/2 ClientConn.tconn (bundled, or internal/http2 since Go 1.27) */
#define GP_HOOK_CONN_XNET 4          /* golang.org/x/net/http2.ClientConn.tconn */

#define GP_METHOD_MAX 16
#define GP_SHORT_MAX 64
#define GP_LONG_MAX 256
#define GP_ERROR_TEXT_MAX 128

/* The packed strings of gp_client_event, by index in `at`. */
#define GP_AT_HOST 0
#define GP_AT_REQUEST_HOST 1
#define GP_AT_PATH 2
#define GP_AT_QUERY 3
#define GP_AT_N 4
#define GP_PACKED_BYTES (2 * GP_SHORT_MAX + 2 * GP_LONG_MAX)

/* One completed call, as sent through the ring buffer (its fixed part and
 * the used bytes of buf); the in-flight map holds the same struct between
 * entry and return. */
struct gp_client_event {
	__u32 pid;
	__u32 tid;
	__u32 flags;                  /* GP_FLAG_* */
	__u32 _pad0;
	__u64 goid;
	__u64 g;
	__u64 parent_goid;            /* runtime.g.parentGoid (Go >= 1.21), 0 when unknown */
	__u64 start_ns;
	__u64 end_ns;
	__s64 status;                 /* Response.StatusCode, 0 when unknown */
	__u64 conn_type;              /* the connection's net.Conn's dynamic type, 0 when none was seen */
	__u64 inner_type;             /* read as a *tls.Conn: the net.Conn under it */
	struct gp_tcpaddr tcp_local;  /* read as a *net.TCPConn: its ends */
	struct gp_tcpaddr tcp_peer;
	struct gp_tcpaddr tls_local;  /* read as a *tls.Conn over a *net.TCPConn */
	struct gp_tcpaddr tls_peer;
	__u32 method_len;             /* real lengths (may exceed the buffers) */
	__u32 scheme_len;
	__u32 host_len;
	__u32 request_host_len;
	__u32 path_len;
	__u32 query_len;
	__u32 proto_len;
	__u32 depth;                  /* nested round trips on this goroutine (the same call) */
	__u16 at[GP_AT_N];            /* where each packed string starts in buf */
	__u16 used;                   /* bytes of buf filled (and sent) */
	__u16 _pad2[3];
	char proto[GP_METHOD_MAX];    /* Response.Proto */
	char method[GP_METHOD_MAX];
	char scheme[GP_METHOD_MAX];
	__u64 error_type;             /* the error's dynamic type (runtime address), 0 without one */
	__u64 error_data;             /* its data word */
	__u64 error_word[4];          /* 32 bytes at error_data (when readable) */
	__u32 error_text_len;         /* error_word[1] when error_word[0] looks like a string's data */
	__u32 _pad1;
	char error_text[GP_ERROR_TEXT_MAX]; /* bytes at error_word[0] */
	/* URL.Host, Request.Host (the Host header, when set), URL.Path and
	 * URL.RawQuery, packed (APPEND_GO_STRING, goread.h). */
	char buf[GP_PACKED_BYTES];
};
#define GP_EVENT_FIXED (sizeof(struct gp_client_event) - GP_PACKED_BYTES)
_Static_assert(sizeof(struct gp_client_event) == 1128, "gp_client_event layout (src/probes/http_client.rs)");
_Static_assert(GP_EVENT_FIXED == 488, "gp_client_event's fixed part (src/probes/http_client.rs)");

/* Half the server's: a service rarely has more calls out than requests in. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GP_INFLIGHT_ENTRIES / 2);
	__type(key, struct gp_call_key);
	__type(value, struct gp_client_event);
} inflight SEC(".maps");

/* Scratch space: the event is too large for the 512-byte BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gp_client_event);
} scratch SEC(".maps");

/* The Request's and then the URL's first bytes, each read in one piece:
 * a user-memory read costs some 60-100 ns of program time, more than the
 * rest of the program, and the fields the entry wants (Request.Method,
 * URL, Host; URL.Scheme, User, Host, Path, RawQuery) lie in the first
 * GP_WIN_BYTES of their structs in every supported release. A layout
 * that put one past the window is read field by field. */
#define GP_WIN_BYTES 256
struct gp_win {
	__u8 b[GP_WIN_BYTES];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gp_win);
} win SEC(".maps");

/* Field f's offset when `size` bytes of it lie in the window, else GP_NO_OFFSET. */
static __always_inline __u64 win_off(struct gp_config *cfg, int f, __u64 size)
{
	__u64 o = off(cfg, f);
	return o != GP_NO_OFFSET && o + size <= GP_WIN_BYTES ? o : GP_NO_OFFSET;
}

static __always_inline __u64 max_end(__u64 end, __u64 o, __u64 size)
{
	return o + size > end ? o + size : end;
}

/* The 8 bytes at o of the window (o checked by win_off). */
static __always_inline __u64 win_word(struct gp_win *w, __u64 o)
{
	if (o > GP_WIN_BYTES - 8)
		return 0;
	return *(__u64 *)(w->b + o);
}

/* The first `end` bytes at addr into the window; non-zero when the read failed. */
static __always_inline int read_win(struct gp_win *w, __u64 addr, __u64 end)
{
	/* Re-checked after the barrier, for the verifier. */
	asm volatile("" : "+r"(end));
	if (end < 1 || end > GP_WIN_BYTES)
		return -1;
	return bpf_probe_read_user(w->b, end, (void *)addr) ? -1 : 0;
}

/* A Go string header at `o` of the window, or (when o is GP_NO_OFFSET: out
 * of it) read at addr + off on its own. */
static __always_inline int win_str(struct gp_win *w, __u64 o, __u64 addr, __u64 field_off, __u64 hdr[2])
{
	if (o != GP_NO_OFFSET) {
		hdr[0] = win_word(w, o);
		hdr[1] = win_word(w, o + 8);
		return 0;
	}
	return bpf_probe_read_user(hdr, 16, (void *)(addr + field_off)) ? -1 : 0;
}

/* net/http.(*Transport).roundTrip(t *Transport, req *Request) (*Response, error) */
SEC("uprobe")
int http_client_entry(void *ctx)
{
	struct gp_regs_x86_64 *regs = (struct gp_regs_x86_64 *)ctx;
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h)
		return 0;
	/* A round trip inside one already open on this goroutine is the same
	 * call (a reused g of another goroutine has another id: stale). */
	__u64 goid = 0, parent = 0;
	int bad = read_goids(ctx, cfg, &goid, &parent);
	struct gp_call_key key = call_key(ctx);
	struct gp_client_event *open = bpf_map_lookup_elem(&inflight, &key);
	if (open && !(open->flags & GP_FLAG_DONE) && open->depth < 8 && !bad && goid && goid == open->goid) {
		open->depth++;
		return 0;
	}
	/* The goroutine's entry is filled in place: an ended call's entry is
	 * kept (GP_FLAG_DONE) for the goroutine's next call, so a client that
	 * calls out again and again pays no map update and delete per call
	 * (which copy the whole event into and out of cold map memory; see
	 * http_server.bpf.c). */
	struct gp_client_event *ev = open;
	if (!ev) {
		__u32 zero = 0;
		struct gp_client_event *tmpl = bpf_map_lookup_elem(&scratch, &zero);
		if (!tmpl)
			return 0;
		if (bpf_map_update_elem(&inflight, &key, tmpl, BPF_ANY)) {
			count_lost(GP_LOST_INFLIGHT);
			return 0;
		}
		ev = bpf_map_lookup_elem(&inflight, &key);
		if (!ev)
			return 0;
	}
	/* The entry is reused: reset every scalar (string bytes past
	 * each *_len are never read). */
	ev->flags = 0;
	ev->goid = goid;
	ev->end_ns = 0;
	ev->status = 0;
	ev->method_len = 0;
	ev->scheme_len = 0;
	ev->host_len = 0;
	ev->request_host_len = 0;
	ev->path_len = 0;
	ev->query_len = 0;
	ev->proto_len = 0;
	ev->depth = 0;
	ev->used = 0;
	ev->conn_type = 0;
	ev->inner_type = 0;
	clear_tcpaddr(&ev->tcp_local);
	clear_tcpaddr(&ev->tcp_peer);
	clear_tcpaddr(&ev->tls_local);
	clear_tcpaddr(&ev->tls_peer);
	ev->error_type = 0;
	ev->error_data = 0;
	ev->error_text_len = 0;
	__u64 id = bpf_get_current_pid_tgid();
	ev->pid = id >> 32;
	ev->tid = (__u32)id;
	ev->g = regs->r14;
	ev->start_ns = bpf_ktime_get_ns();
	ev->parent_goid = parent;
	__u64 req = slot(ctx, h, 0);
	__u32 zero = 0;
	struct gp_win *w = bpf_map_lookup_elem(&win, &zero);
	if (!w)
		return 0;
	/* The Request's window: Method, URL, Host. */
	__u64 om = win_off(cfg, GP_F_Request_Method, 16), ou = win_off(cfg, GP_F_Request_URL, 8);
	__u64 oh = win_off(cfg, GP_F_Request_Host, 16);
	__u64 end = 0;
	if (om != GP_NO_OFFSET)
		end = max_end(end, om, 16);
	if (ou != GP_NO_OFFSET)
		end = max_end(end, ou, 8);
	if (oh != GP_NO_OFFSET)
		end = max_end(end, oh, 16);
	if (end && read_win(w, req, end)) {
		/* Unreadable as a whole: every field on its own. */
		om = ou = oh = GP_NO_OFFSET;
	}
	__u64 meth[2] = {0, 0}, rhost[2] = {0, 0}, url = 0;
	bad |= win_str(w, om, req, off(cfg, GP_F_Request_Method), meth);
	bad |= win_str(w, oh, req, off(cfg, GP_F_Request_Host), rhost);
	if (ou != GP_NO_OFFSET)
		url = win_word(w, ou);
	else if (read_u64(&url, req + off(cfg, GP_F_Request_URL)))
		url = 0;
	bad |= COPY_GO_STRING(ev, meth[0], meth[1], method, method_len);
	bad |= APPEND_GO_STRING(ev, rhost[0], rhost[1], GP_AT_REQUEST_HOST, GP_SHORT_MAX, request_host_len);
	if (!url) {
		bad = 1;
	} else {
		/* The URL's window: Scheme, User, Host, Path, RawQuery. */
		__u64 os = win_off(cfg, GP_F_URL_Scheme, 16), ohost = win_off(cfg, GP_F_URL_Host, 16);
		__u64 op = win_off(cfg, GP_F_URL_Path, 16), oq = win_off(cfg, GP_F_URL_RawQuery, 16);
		__u64 ous = win_off(cfg, GP_F_URL_User, 8);
		end = 0;
		if (os != GP_NO_OFFSET)
			end = max_end(end, os, 16);
		if (ohost != GP_NO_OFFSET)
			end = max_end(end, ohost, 16);
		if (op != GP_NO_OFFSET)
			end = max_end(end, op, 16);
		if (oq != GP_NO_OFFSET)
			end = max_end(end, oq, 16);
		if (ous != GP_NO_OFFSET)
			end = max_end(end, ous, 8);
		if (end && read_win(w, url, end))
			os = ohost = op = oq = ous = GP_NO_OFFSET;
		__u64 scheme[2] = {0, 0}, host[2] = {0, 0}, path[2] = {0, 0}, query[2] = {0, 0};
		bad |= win_str(w, os, url, off(cfg, GP_F_URL_Scheme), scheme);
		bad |= win_str(w, ohost, url, off(cfg, GP_F_URL_Host), host);
		bad |= win_str(w, op, url, off(cfg, GP_F_URL_Path), path);
		bad |= win_str(w, oq, url, off(cfg, GP_F_URL_RawQuery), query);
		/* url.full says REDACTED:REDACTED@ for credentials, never them. */
		__u64 user = 0;
		if (ous != GP_NO_OFFSET)
			user = win_word(w, ous);
		else if (off(cfg, GP_F_URL_User) != GP_NO_OFFSET && read_u64(&user, url + off(cfg, GP_F_URL_User)))
			bad = 1;
		if (user)
			ev->flags |= GP_FLAG_USERINFO;
		bad |= COPY_GO_STRING(ev, scheme[0], scheme[1], scheme, scheme_len);
		bad |= APPEND_GO_STRING(ev, host[0], host[1], GP_AT_HOST, GP_SHORT_MAX, host_len);
		bad |= APPEND_GO_STRING(ev, path[0], path[1], GP_AT_PATH, GP_LONG_MAX, path_len);
		bad |= APPEND_GO_STRING(ev, query[0], query[1], GP_AT_QUERY, GP_LONG_MAX, query_len);
	}
	if (bad) {
		ev->flags |= GP_FLAG_READ_FAILED;
		count_lost(GP_LOST_READ);
	}
	return 0;
}

SEC("uprobe")
int http_client_return(void *ctx)
{
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h)
		return 0;
	struct gp_call_key key = call_key(ctx);
	struct gp_client_event *ev = bpf_map_lookup_elem(&inflight, &key);
	if (!ev || (ev->flags & GP_FLAG_DONE)) {
		count_lost(GP_LOST_UNPAIRED);
		return 0;
	}
	if (ev->depth) {
		ev->depth--;
		return 0;
	}
	__u64 resp = slot(ctx, h, 1);
	__u64 itab = slot(ctx, h, 2);
	if (itab) {
		ev->flags |= GP_FLAG_ERROR;
		ev->error_type = itab_type(itab);
		ev->error_data = slot(ctx, h, 3);
		capture_value(ev->error_data, ev->error_word, ev->error_text, &ev->error_text_len);
	}
	if (resp) {
		__s64 code = 0;
		if (bpf_probe_read_user(&code, sizeof(code), (void *)(resp + off(cfg, GP_F_Response_StatusCode)))) {
			ev->flags |= GP_FLAG_READ_FAILED;
			count_lost(GP_LOST_READ);
		}
		ev->status = code;
		if (off(cfg, GP_F_Response_Proto) != GP_NO_OFFSET)
			READ_GO_STRING(ev, resp + off(cfg, GP_F_Response_Proto), proto, proto_len);
	} else {
		ev->flags |= GP_FLAG_NO_RESPONSE;
	}
	ev->end_ns = bpf_ktime_get_ns();
	output(ev, GP_EVENT_FIXED + PACKED_USED(ev));
	ev->flags |= GP_FLAG_DONE;
	return 0;
}

/* A *net.TCPConn's two ends, read speculatively (no failure is one). */
static __always_inline void tcp_ends(struct gp_config *cfg, __u64 tcpconn, struct gp_tcpaddr *local, struct gp_tcpaddr *peer)
{
	__u64 fd = 0;
	if (!tcpconn || off(cfg, GP_F_conn_fd) == GP_NO_OFFSET || off(cfg, GP_F_TCPConn_conn) == GP_NO_OFFSET ||
	    read_u64(&fd, tcpconn + off(cfg, GP_F_TCPConn_conn) + off(cfg, GP_F_conn_fd)) || !fd)
		return;
	__u64 oip = off(cfg, GP_F_TCPAddr_IP), oport = off(cfg, GP_F_TCPAddr_Port);
	if (off(cfg, GP_F_netFD_laddr) != GP_NO_OFFSET)
		read_tcpaddr(local, fd + off(cfg, GP_F_netFD_laddr), oip, oport);
	if (off(cfg, GP_F_netFD_raddr) != GP_NO_OFFSET)
		read_tcpaddr(peer, fd + off(cfg, GP_F_netFD_raddr), oip, oport);
}

/* Where the round trip in flight on this goroutine picks its connection:
 * (*persistConn).roundTrip (HTTP/1), (*ClientConn).RoundTrip / roundTrip
 * (HTTP/2). The first connection seen is the call's. */
SEC("uprobe")
int http_client_conn_entry(void *ctx)
{
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h)
		return 0;
	struct gp_call_key key = call_key(ctx);
	struct gp_client_event *ev = bpf_map_lookup_elem(&inflight, &key);
	if (!ev || (ev->flags & GP_FLAG_DONE) || ev->conn_type)
		return 0;
	__u64 fo = GP_NO_OFFSET;
	if (h->flags & GP_HOOK_CONN_PERSIST)
		fo = off(cfg, GP_F_persistConn_conn);
	else if (h->flags & GP_HOOK_CONN_H2)
		fo = off(cfg, GP_F_http2ClientConn_tconn) != GP_NO_OFFSET ? off(cfg, GP_F_http2ClientConn_tconn)
									 : off(cfg, GP_F_ClientConn_tconn);
	else if (h->flags & GP_HOOK_CONN_XNET)
		fo = off(cfg, GP_F_golang_org_x_net_http2_ClientConn_tconn);
	__u64 recv = slot(ctx, h, 0);
	__u64 c[2] = {0, 0};
	if (fo == GP_NO_OFFSET || !recv || bpf_probe_read_user(c, sizeof(c), (void *)(recv + fo)) || !c[0])
		return 0;
	ev->conn_type = itab_type(c[0]);
	tcp_ends(cfg, c[1], &ev->tcp_local, &ev->tcp_peer);
	/* The connection under this one: a *tls.Conn's conn, or the net.Conn a
	 * wrapper (go-conntrack's, in Prometheus) holds as its first field.
	 * tls.Conn.conn is at offset 0 in every Go release, so one read serves
	 * both; user space keeps it only when the outer type's descriptor says
	 * which it was, and the inner one is a *net.TCPConn. */
	__u64 io = off(cfg, GP_F_Conn_conn) != GP_NO_OFFSET ? off(cfg, GP_F_Conn_conn) : 0;
	__u64 inner[2] = {0, 0};
	if (c[1] && bpf_probe_read_user(inner, sizeof(inner), (void *)(c[1] + io)) == 0 && inner[0]) {
		ev->inner_type = itab_type(inner[0]);
		tcp_ends(cfg, inner[1], &ev->tls_local, &ev->tls_peer);
	}
	return 0;
}
