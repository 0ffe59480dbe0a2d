// SPDX-License-Identifier: GPL-2.0
/* grpc_server.bpf.c: the grpc_server family (catalog probe grpc.server):
 * calls served by google.golang.org/grpc, timed from the entry of
 * (*Server).handleStream to its return (every RET; see http_server.bpf.c),
 * with the full method, the status the server wrote, the connection's two
 * addresses and an incoming W3C traceparent, all read-only.
 *
 * handleStream runs on the call's goroutine and returns when the call is
 * over, unary or streaming; on that goroutine the server transport's
 * WriteStatus (writeStatus since gRPC 1.69) writes the call's status, which
 * grpc_server_status_entry copies into the call in flight. The request
 * headers are parsed earlier, on the connection's reader goroutine, in
 * http2Server.operateHeaders: grpc_server_headers_entry looks for a
 * `traceparent` among them and keeps it for the stream (keyed by transport
 * and stream id) until handleStream picks it up.
 *
 * Hook slots (catalog `slot`):
 *   grpc_server:         0,1 ServerTransport (itab, data)  2 stream (*Stream, or *ServerStream since 1.69)
 *   grpc_server_status:  0 *status.Status
 *   grpc_server_headers: 0 *http2Server (receiver)  1 *http2.MetaHeadersFrame
 */
#define GP_RINGBUF_BYTES (4 << 20)
#include "fields.h"
#include "family.h"
#include "netaddr.h"

/* gp_grpc_server_event.flags beyond GP_FLAG_* (src/probes/grpc_server.rs) */
#define GP_FLAG_STATUS (1 << 8)      /* a status was written: code and message are set */

/* gp_config.mode slots and their values (src/probes/grpc_server.rs). */
#define GP_MODE_STREAM 0             /* how handleStream's stream holds the transport.Stream */
#define GP_STREAM_PLAIN 0            /* gRPC < 1.69: it is a *transport.Stream */
#define GP_STREAM_EMBED_PTR 1        /* 1.69 - 1.76: *ServerStream embeds *Stream */
#define GP_STREAM_EMBED_VALUE 2      /* 1.77 and later: *ServerStream embeds Stream */
#define GP_MODE_PEER 1               /* where http2Server keeps the connection's addresses */
#define GP_PEER_NONE 0               /* offsets unknown: no addresses */
#define GP_PEER_FIELDS 1             /* gRPC < 1.60: remoteAddr, localAddr */
#define GP_PEER_STRUCT 2             /* 1.60 and later: peer peer.Peer {Addr, LocalAddr} */
#define GP_MODE_HEADERS 2            /* 0: incoming headers not searched */
#define GP_MODE_FIELD_SIZE 3         /* sizeof(hpack.HeaderField), the stride of MetaHeadersFrame.Fields */

#define GP_METHOD_MAX 128
#define GP_MESSAGE_MAX 128
#define GP_TRACEPARENT_MAX 64        /* a version-00 traceparent is 55 bytes */
#define GP_HEADERS_MAX 16            /* header fields searched for traceparent */
#define GP_HEADER_FIELD_MAX 48       /* the largest hpack.HeaderField accepted (40 bytes on 64-bit) */

/* One call served; the in-flight map holds the same struct between entry
 * and return. */
struct gp_grpc_server_event {
	__u32 pid;
	__u32 tid;
	__u32 flags;                  /* GP_FLAG_* */
	__s32 code;                   /* status code (GP_FLAG_STATUS) */
	__u64 goid;
	__u64 g;
	__u64 start_ns;
	__u64 end_ns;
	__u64 transport_type;         /* handleStream's ServerTransport's dynamic type */
	__u32 stream_id;              /* HTTP/2 stream id */
	__u32 method_len;             /* real lengths (may exceed the buffers) */
	__u32 message_len;
	__u32 traceparent_len;
	struct gp_tcpaddr peer;       /* the client's end of the connection */
	struct gp_tcpaddr local;      /* the server's end */
	char method[GP_METHOD_MAX];   /* "/helloworld.Greeter/SayHello" */
	char message[GP_MESSAGE_MAX]; /* the status message */
	char traceparent[GP_TRACEPARENT_MAX];
};
_Static_assert(sizeof(struct gp_grpc_server_event) == 456, "gp_grpc_server_event layout (src/probes/grpc_server.rs)");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GP_INFLIGHT_ENTRIES);
	__type(key, struct gp_call_key);
	__type(value, struct gp_grpc_server_event);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gp_grpc_server_event);
} scratch SEC(".maps");

/* A stream's traceparent between operateHeaders and handleStream. */
struct gp_stream_key {
	__u32 tgid;
	__u32 stream_id;
	__u64 transport;              /* *http2Server */
};
_Static_assert(sizeof(struct gp_stream_key) == 16, "gp_stream_key layout");

struct gp_traceparent {
	__u32 len;
	__u32 _pad;
	char value[GP_TRACEPARENT_MAX];
};

/* LRU: a stream whose handler never starts (refused, reset) leaves its
 * entry behind, to be evicted. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct gp_stream_key);
	__type(value, struct gp_traceparent);
} traceparents SEC(".maps");

/* The header fields of one HEADERS frame, copied at once. */
struct gp_fieldsbuf {
	__u8 b[GP_HEADERS_MAX * GP_HEADER_FIELD_MAX];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gp_fieldsbuf);
} fieldsbuf SEC(".maps");

/* The address of the transport.Stream inside handleStream's stream argument. */
static __always_inline int stream_base(struct gp_config *cfg, __u64 stream, __u64 *base)
{
	switch (mode(cfg, GP_MODE_STREAM)) {
	case GP_STREAM_EMBED_PTR:
		return read_u64(base, stream + off(cfg, GP_F_ServerStream_Stream));
	case GP_STREAM_EMBED_VALUE:
		*base = stream + off(cfg, GP_F_ServerStream_Stream);
		return 0;
	default:
		*base = stream;
		return 0;
	}
}

static __always_inline int read_addrs(struct gp_grpc_server_event *ev, struct gp_config *cfg, __u64 t)
{
	__u64 oip = off(cfg, GP_F_TCPAddr_IP), oport = off(cfg, GP_F_TCPAddr_Port);
	int bad = 0;
	switch (mode(cfg, GP_MODE_PEER)) {
	case GP_PEER_FIELDS:
		bad |= read_tcpaddr(&ev->peer, t + off(cfg, GP_F_http2Server_remoteAddr), oip, oport);
		bad |= read_tcpaddr(&ev->local, t + off(cfg, GP_F_http2Server_localAddr), oip, oport);
		break;
	case GP_PEER_STRUCT: {
		__u64 p = t + off(cfg, GP_F_http2Server_peer);
		bad |= read_tcpaddr(&ev->peer, p + off(cfg, GP_F_Peer_Addr), oip, oport);
		if (off(cfg, GP_F_Peer_LocalAddr) != GP_NO_OFFSET)
			bad |= read_tcpaddr(&ev->local, p + off(cfg, GP_F_Peer_LocalAddr), oip, oport);
		break;
	}
	default:
		break;
	}
	return bad;
}

/* google.golang.org/grpc.(*Server).handleStream(s, t ServerTransport, stream, ...) */
SEC("uprobe")
int grpc_server_entry(void *ctx)
{
	struct gp_regs_x86_64 *regs = (struct gp_regs_x86_64 *)ctx;
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h)
		return 0;
	__u32 zero = 0;
	struct gp_grpc_server_event *ev = bpf_map_lookup_elem(&scratch, &zero);
	if (!ev)
		return 0;
	/* The scratch slot is reused: reset every scalar (string bytes past
	 * each *_len are never read). */
	ev->flags = 0;
	ev->code = 0;
	ev->goid = 0;
	ev->end_ns = 0;
	ev->stream_id = 0;
	ev->method_len = 0;
	ev->message_len = 0;
	ev->traceparent_len = 0;
	clear_tcpaddr(&ev->peer);
	clear_tcpaddr(&ev->local);
	__u64 id = bpf_get_current_pid_tgid();
	ev->pid = id >> 32;
	ev->tid = (__u32)id;
	ev->g = regs->r14;
	ev->start_ns = bpf_ktime_get_ns();
	int bad = read_goid(ctx, cfg, &ev->goid);
	__u64 t = slot(ctx, h, 1);
	ev->transport_type = itab_type(slot(ctx, h, 0));
	__u64 s = 0;
	if (stream_base(cfg, slot(ctx, h, 2), &s) || !s) {
		bad = 1;
	} else {
		bad |= READ_GO_STRING(ev, s + off(cfg, GP_F_Stream_method), method, method_len);
		if (off(cfg, GP_F_Stream_id) != GP_NO_OFFSET &&
		    bpf_probe_read_user(&ev->stream_id, sizeof(ev->stream_id), (void *)(s + off(cfg, GP_F_Stream_id))))
			bad = 1;
	}
	if (t)
		bad |= read_addrs(ev, cfg, t);
	if (ev->stream_id && t) {
		struct gp_stream_key sk = {.tgid = ev->pid, .stream_id = ev->stream_id, .transport = t};
		struct gp_traceparent *tp = bpf_map_lookup_elem(&traceparents, &sk);
		if (tp) {
			ev->traceparent_len = tp->len;
			__builtin_memcpy(ev->traceparent, tp->value, GP_TRACEPARENT_MAX);
			bpf_map_delete_elem(&traceparents, &sk);
		}
	}
	if (bad) {
		ev->flags |= GP_FLAG_READ_FAILED;
		count_lost(GP_LOST_READ);
	}
	struct gp_call_key key = {.tgid = ev->pid, .g = ev->g};
	if (bpf_map_update_elem(&inflight, &key, ev, BPF_ANY))
		count_lost(GP_LOST_INFLIGHT);
	return 0;
}

SEC("uprobe")
int grpc_server_return(void *ctx)
{
	struct gp_call_key key = call_key(ctx);
	struct gp_grpc_server_event *ev = bpf_map_lookup_elem(&inflight, &key);
	if (!ev) {
		count_lost(GP_LOST_UNPAIRED);
		return 0;
	}
	ev->end_ns = bpf_ktime_get_ns();
	output(ev, sizeof(*ev));
	bpf_map_delete_elem(&inflight, &key);
	return 0;
}

/* (*http2Server).WriteStatus(t, s, st *status.Status) error; writeStatus
 * since gRPC 1.69. The first status written is the call's. */
SEC("uprobe")
int grpc_server_status_entry(void *ctx)
{
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h)
		return 0;
	struct gp_call_key key = call_key(ctx);
	struct gp_grpc_server_event *ev = bpf_map_lookup_elem(&inflight, &key);
	if (!ev || (ev->flags & GP_FLAG_STATUS))
		return 0;
	__u64 st = slot(ctx, h, 0), pb = 0;
	__s32 code = 0;
	/* status.Status{s *spb.Status}; a nil *spb.Status is OK. */
	if (!st || read_u64(&pb, st + off(cfg, GP_F_Status_s))) {
		ev->flags |= GP_FLAG_READ_FAILED;
		count_lost(GP_LOST_READ);
		return 0;
	}
	ev->flags |= GP_FLAG_STATUS;
	if (!pb)
		return 0;
	if (bpf_probe_read_user(&code, sizeof(code), (void *)(pb + off(cfg, GP_F_Status_Code)))) {
		ev->flags |= GP_FLAG_READ_FAILED;
		count_lost(GP_LOST_READ);
	}
	ev->code = code;
	if (off(cfg, GP_F_Status_Message) != GP_NO_OFFSET)
		READ_GO_STRING(ev, pb + off(cfg, GP_F_Status_Message), message, message_len);
	return 0;
}

/* (*http2Server).operateHeaders(t, [ctx,] frame *http2.MetaHeadersFrame, ...):
 * keep the value of a `traceparent` header field for the stream. gRPC
 * metadata keys are lower case on the wire (HTTP/2). */
SEC("uprobe")
int grpc_server_headers_entry(void *ctx)
{
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h || !mode(cfg, GP_MODE_HEADERS))
		return 0;
	__u64 t = slot(ctx, h, 0), frame = slot(ctx, h, 1);
	__u64 stride = mode(cfg, GP_MODE_FIELD_SIZE);
	if (!t || !frame || stride < 32 || stride > GP_HEADER_FIELD_MAX)
		return 0;
	__u64 hf = 0, fields[2] = {0, 0};
	__u32 sid = 0;
	if (read_u64(&hf, frame + off(cfg, GP_F_MetaHeadersFrame_HeadersFrame)) || !hf ||
	    bpf_probe_read_user(&sid, sizeof(sid),
				(void *)(hf + off(cfg, GP_F_HeadersFrame_FrameHeader) + off(cfg, GP_F_FrameHeader_StreamID))) ||
	    bpf_probe_read_user(fields, sizeof(fields), (void *)(frame + off(cfg, GP_F_MetaHeadersFrame_Fields))))
		return 0;
	__u64 n = fields[1];
	if (n > GP_HEADERS_MAX)
		n = GP_HEADERS_MAX;
	__u32 zero = 0;
	struct gp_fieldsbuf *buf = bpf_map_lookup_elem(&fieldsbuf, &zero);
	if (!buf || !n || !fields[0])
		return 0;
	__u64 bytes = n * stride;
	asm volatile("" : "+r"(bytes));
	if (bytes > sizeof(buf->b))
		return 0;
	if (bpf_probe_read_user(buf->b, bytes, (void *)fields[0]))
		return 0;
	__u64 oname = off(cfg, GP_F_HeaderField_Name), ovalue = off(cfg, GP_F_HeaderField_Value);
	if (oname > GP_HEADER_FIELD_MAX - 16 || ovalue > GP_HEADER_FIELD_MAX - 16)
		return 0;
	for (__u32 i = 0; i < GP_HEADERS_MAX; i++) {
		if (i >= n)
			break;
		__u64 at = (__u64)i * stride;
		/* Bounded for the verifier: at + a field offset + 16 stays in buf. */
		if (at > sizeof(buf->b) - GP_HEADER_FIELD_MAX)
			break;
		__u64 nptr = *(__u64 *)(buf->b + at + oname);
		__u64 nlen = *(__u64 *)(buf->b + at + oname + 8);
		if (nlen != 11 || !nptr)
			continue;
		char name[11];
		if (bpf_probe_read_user(name, sizeof(name), (void *)nptr))
			continue;
		const char want[] = "traceparent";
		int same = 1;
#pragma unroll
		for (int k = 0; k < 11; k++)
			if (name[k] != want[k])
				same = 0;
		if (!same)
			continue;
		struct gp_traceparent tp = {};
		__u64 vptr = *(__u64 *)(buf->b + at + ovalue);
		__u64 vlen = *(__u64 *)(buf->b + at + ovalue + 8);
		tp.len = vlen > 0xffffffffULL ? 0xffffffffU : (__u32)vlen;
		__u64 c = vlen;
		if (c > GP_TRACEPARENT_MAX)
			c = GP_TRACEPARENT_MAX;
		asm volatile("" : "+r"(c));
		if (c > GP_TRACEPARENT_MAX)
			c = 0;
		if (c && bpf_probe_read_user(tp.value, c, (void *)vptr))
			return 0;
		struct gp_stream_key sk = {.tgid = bpf_get_current_pid_tgid() >> 32, .stream_id = sid, .transport = t};
		bpf_map_update_elem(&traceparents, &sk, &tp, BPF_ANY);
		return 0;
	}
	return 0;
}
