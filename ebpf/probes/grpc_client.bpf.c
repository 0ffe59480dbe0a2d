// SPDX-License-Identifier: GPL-2.0
/* grpc_client.bpf.c: the grpc_client family (catalog probe grpc.client):
 * calls made through google.golang.org/grpc, unary (ClientConn.Invoke) and
 * streaming (ClientConn.NewStream) alike: both create their stream in
 * grpc.newClientStream, and every stream ends in (*clientStream).finish,
 * called once with the call's outcome (possibly on another goroutine: a
 * stream's messages may be received anywhere).
 *
 * So a call is timed from newClientStream's entry to finish's entry. At
 * newClientStream's return the call in flight moves from its goroutine's
 * key to its stream's: the *clientStream that newClientStreamWithParams
 * (gRPC 1.40 and later; newClientStream wraps it since 1.85) returned on
 * the way, or else the one newClientStream returned itself;
 * when newClientStream fails there is no stream, and the call ends there
 * with the error it returned. At finish, the stream's attempt says which
 * connection (the transport's two addresses) and which HTTP/2 stream carried
 * the call, and the error gives the status: a *status.Error holds the code
 * and message; io.EOF (a stream read to its end) is success. The programs
 * cannot tell an error's dynamic type from its runtime address, so they read
 * what a *status.Error and an *errors.errorString would hold and user space
 * picks by the type's name.
 *
 * Hook slots (catalog `slot`):
 *   grpc_client:        0,1 method (ptr, len)  2 *ClientConn
 *                       3 ClientStream's data word (return)  4,5 error (return)
 *   grpc_client_params: 3 ClientStream's data word (return)  4 error's itab (return)
 *   grpc_client_finish: 0 *clientStream  1,2 error
 */
#define GP_RINGBUF_BYTES (4 << 20)
#include "fields.h"
#include "family.h"
#include "netaddr.h"

/* gp_grpc_client_event.flags beyond GP_FLAG_* (src/probes/grpc_client.rs) */
#define GP_FLAG_STATUS (1 << 8)      /* code and message read as a *status.Error's */
#define GP_FLAG_NO_STREAM (1 << 9)   /* newClientStream failed: the call never had a stream */

/* gp_config.mode slots and their values (src/probes/grpc_client.rs). */
#define GP_MODE_STREAM 0             /* how csAttempt's stream holds the transport.Stream */
#define GP_STREAM_PLAIN 0            /* gRPC < 1.69: *transport.Stream */
#define GP_STREAM_EMBED_PTR 1        /* 1.69 - 1.76: *ClientStream embeds *Stream */
#define GP_STREAM_EMBED_VALUE 2      /* 1.77 and later: *ClientStream embeds Stream */
#define GP_MODE_ERROR 1              /* how a *status.Error reaches the protobuf status */
#define GP_ERROR_NONE 0              /* offsets unknown: no codes */
#define GP_ERROR_PROTO 1             /* gRPC < 1.40ish: Error{e *spb.Status} */
#define GP_ERROR_STATUS 2            /* Error{s *Status}, Status{s *spb.Status} */
#define GP_MODE_ATTEMPT 2            /* 1: the attempt's transport and stream can be read */

#define GP_METHOD_MAX 128
#define GP_MESSAGE_MAX 128
#define GP_TARGET_MAX 64
#define GP_ERROR_TEXT_MAX 64

struct gp_grpc_client_event {
	__u32 pid;
	__u32 tid;
	__u32 flags;                  /* GP_FLAG_* */
	__s32 code;                   /* GP_FLAG_STATUS: the *status.Error's code */
	__u64 goid;
	__u64 g;
	__u64 start_ns;
	__u64 end_ns;
	__u64 error_type;             /* the call's error's dynamic type, 0 for nil */
	__u64 cs;                     /* the *clientStream, once newClientStreamWithParams returned it */
	__u64 parent_goid;            /* runtime.g.parentGoid (Go >= 1.21), 0 when unknown */
	__u32 stream_id;
	__u32 method_len;
	__u32 message_len;
	__u32 target_len;
	__u32 error_text_len;
	__u32 _pad;
	struct gp_tcpaddr local;      /* the client's end of the connection */
	struct gp_tcpaddr peer;       /* the server's end */
	char method[GP_METHOD_MAX];
	char message[GP_MESSAGE_MAX]; /* status message */
	char target[GP_TARGET_MAX];   /* ClientConn.target: what the program dialled */
	char error_text[GP_ERROR_TEXT_MAX]; /* an *errors.errorString's text */
};
_Static_assert(sizeof(struct gp_grpc_client_event) == 544, "gp_grpc_client_event layout (src/probes/grpc_client.rs)");

/* Calls between newClientStream's entry and return, by goroutine. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GP_INFLIGHT_ENTRIES / 2);
	__type(key, struct gp_call_key);
	__type(value, struct gp_grpc_client_event);
} calls SEC(".maps");

/* Calls whose stream exists, by stream, until finish. */
struct gp_cs_key {
	__u32 tgid;
	__u32 _pad;
	__u64 cs;                     /* *clientStream */
};
_Static_assert(sizeof(struct gp_cs_key) == 16, "gp_cs_key layout");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GP_INFLIGHT_ENTRIES / 2);
	__type(key, struct gp_cs_key);
	__type(value, struct gp_grpc_client_event);
} streams SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gp_grpc_client_event);
} scratch SEC(".maps");

/* The call's outcome from error (itab, data): its type, and what it holds
 * if it is a *status.Error or an *errors.errorString. Both readings are
 * speculative (the type is only known in user space), so a failed read
 * here is no failure: GP_FLAG_STATUS says the status reading went through,
 * and user space, knowing the type, tells a failure from a wrong guess. */
static __always_inline void read_error(struct gp_grpc_client_event *ev, struct gp_config *cfg, __u64 itab, __u64 data)
{
	ev->error_type = itab_type(itab);
	if (!itab || !data)
		return;
	if (off(cfg, GP_F_errorString_s) != GP_NO_OFFSET)
		READ_GO_STRING(ev, data + off(cfg, GP_F_errorString_s), error_text, error_text_len);
	__u64 pb = 0;
	switch (mode(cfg, GP_MODE_ERROR)) {
	case GP_ERROR_PROTO:
		if (read_u64(&pb, data + off(cfg, GP_F_Error_e)))
			return;
		break;
	case GP_ERROR_STATUS: {
		__u64 st = 0;
		if (read_u64(&st, data + off(cfg, GP_F_Error_s)) || !st ||
		    read_u64(&pb, st + off(cfg, GP_F_Status_s)))
			return;
		break;
	}
	default:
		return;
	}
	__s32 code = 0;
	/* A nil *spb.Status is OK. */
	if (pb && bpf_probe_read_user(&code, sizeof(code), (void *)(pb + off(cfg, GP_F_Status_Code))))
		return;
	ev->flags |= GP_FLAG_STATUS;
	ev->code = code;
	if (pb && off(cfg, GP_F_Status_Message) != GP_NO_OFFSET)
		READ_GO_STRING(ev, pb + off(cfg, GP_F_Status_Message), message, message_len);
}

/* The connection and HTTP/2 stream of the stream's current attempt. */
static __always_inline int read_attempt(struct gp_grpc_client_event *ev, struct gp_config *cfg, __u64 cs)
{
	if (!mode(cfg, GP_MODE_ATTEMPT))
		return 0;
	__u64 a = 0;
	if (read_u64(&a, cs + off(cfg, GP_F_clientStream_attempt)))
		return -1;
	if (!a)
		return 0;
	int bad = 0;
	/* csAttempt.t (transport since 1.71): the ClientTransport, an *http2Client. */
	__u64 fo = off(cfg, GP_F_csAttempt_t);
	if (fo == GP_NO_OFFSET)
		fo = off(cfg, GP_F_csAttempt_transport);
	__u64 t[2] = {0, 0};
	if (fo != GP_NO_OFFSET && bpf_probe_read_user(t, sizeof(t), (void *)(a + fo)) == 0 && t[1]) {
		__u64 oip = off(cfg, GP_F_TCPAddr_IP), oport = off(cfg, GP_F_TCPAddr_Port);
		bad |= read_tcpaddr(&ev->local, t[1] + off(cfg, GP_F_http2Client_localAddr), oip, oport);
		bad |= read_tcpaddr(&ev->peer, t[1] + off(cfg, GP_F_http2Client_remoteAddr), oip, oport);
	}
	/* csAttempt.s (transportStream since 1.71). */
	__u64 so = off(cfg, GP_F_csAttempt_s);
	if (so == GP_NO_OFFSET)
		so = off(cfg, GP_F_csAttempt_transportStream);
	__u64 s = 0;
	if (so == GP_NO_OFFSET || off(cfg, GP_F_Stream_id) == GP_NO_OFFSET || read_u64(&s, a + so) || !s)
		return bad;
	switch (mode(cfg, GP_MODE_STREAM)) {
	case GP_STREAM_EMBED_PTR:
		if (read_u64(&s, s + off(cfg, GP_F_ClientStream_Stream)) || !s)
			return bad;
		break;
	case GP_STREAM_EMBED_VALUE:
		s += off(cfg, GP_F_ClientStream_Stream);
		break;
	default:
		break;
	}
	if (bpf_probe_read_user(&ev->stream_id, sizeof(ev->stream_id), (void *)(s + off(cfg, GP_F_Stream_id))))
		bad = 1;
	return bad;
}

/* grpc.newClientStream(ctx, desc *StreamDesc, cc *ClientConn, method string, opts ...CallOption) (ClientStream, error) */
SEC("uprobe")
int grpc_client_entry(void *ctx)
{
	struct gp_regs_x86_64 *regs = (struct gp_regs_x86_64 *)ctx;
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h)
		return 0;
	__u32 zero = 0;
	struct gp_grpc_client_event *ev = bpf_map_lookup_elem(&scratch, &zero);
	if (!ev)
		return 0;
	/* The scratch slot is reused: reset every scalar (string bytes past
	 * each *_len are never read). */
	ev->flags = 0;
	ev->code = 0;
	ev->goid = 0;
	ev->end_ns = 0;
	ev->error_type = 0;
	ev->cs = 0;
	ev->stream_id = 0;
	ev->method_len = 0;
	ev->message_len = 0;
	ev->target_len = 0;
	ev->error_text_len = 0;
	clear_tcpaddr(&ev->local);
	clear_tcpaddr(&ev->peer);
	__u64 id = bpf_get_current_pid_tgid();
	ev->pid = id >> 32;
	ev->tid = (__u32)id;
	ev->g = regs->r14;
	ev->start_ns = bpf_ktime_get_ns();
	int bad = read_goid(ctx, cfg, &ev->goid);
	ev->parent_goid = read_parent_goid(ctx, cfg);
	/* The method string is in two registers: copy it from its bytes. */
	__u64 mptr = slot(ctx, h, 0), mlen = slot(ctx, h, 1);
	ev->method_len = mlen > 0xffffffffULL ? 0xffffffffU : (__u32)mlen;
	__u64 n = mlen;
	if (n > GP_METHOD_MAX)
		n = GP_METHOD_MAX;
	asm volatile("" : "+r"(n));
	if (n > GP_METHOD_MAX)
		n = 0;
	if (n && bpf_probe_read_user(ev->method, n, (void *)mptr))
		bad = 1;
	__u64 cc = slot(ctx, h, 2);
	if (cc && off(cfg, GP_F_ClientConn_target) != GP_NO_OFFSET)
		bad |= READ_GO_STRING(ev, cc + off(cfg, GP_F_ClientConn_target), target, target_len);
	if (bad) {
		ev->flags |= GP_FLAG_READ_FAILED;
		count_lost(GP_LOST_READ);
	}
	struct gp_call_key key = {.tgid = ev->pid, .g = ev->g};
	if (bpf_map_update_elem(&calls, &key, ev, BPF_ANY))
		count_lost(GP_LOST_INFLIGHT);
	return 0;
}

SEC("uprobe")
int grpc_client_return(void *ctx)
{
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h)
		return 0;
	struct gp_call_key key = call_key(ctx);
	struct gp_grpc_client_event *ev = bpf_map_lookup_elem(&calls, &key);
	if (!ev) {
		count_lost(GP_LOST_UNPAIRED);
		return 0;
	}
	__u64 err_itab = slot(ctx, h, 4), stream = slot(ctx, h, 3);
	if (err_itab || !stream) {
		/* No stream: the call ends here with newClientStream's error. */
		ev->flags |= GP_FLAG_ERROR | GP_FLAG_NO_STREAM;
		read_error(ev, cfg, err_itab, slot(ctx, h, 5));
		ev->end_ns = bpf_ktime_get_ns();
		output(ev, sizeof(*ev));
	} else {
		struct gp_cs_key sk = {.tgid = key.tgid, .cs = ev->cs ? ev->cs : stream};
		if (bpf_map_update_elem(&streams, &sk, ev, BPF_ANY))
			count_lost(GP_LOST_INFLIGHT);
	}
	bpf_map_delete_elem(&calls, &key);
	return 0;
}

/* newClientStreamWithParams(...) (ClientStream, error): the *clientStream
 * itself, before newClientStream wraps it (gRPC 1.85). */
SEC("uprobe")
int grpc_client_params_return(void *ctx)
{
	struct gp_hook *h = get_hook(ctx);
	if (!h)
		return 0;
	struct gp_call_key key = call_key(ctx);
	struct gp_grpc_client_event *ev = bpf_map_lookup_elem(&calls, &key);
	if (ev && !slot(ctx, h, 4))
		ev->cs = slot(ctx, h, 3);
	return 0;
}

/* (*clientStream).finish(cs, err error): the stream's end, once. */
SEC("uprobe")
int grpc_client_finish_entry(void *ctx)
{
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h)
		return 0;
	__u64 cs = slot(ctx, h, 0);
	struct gp_cs_key sk = {.tgid = bpf_get_current_pid_tgid() >> 32, .cs = cs};
	struct gp_grpc_client_event *ev = bpf_map_lookup_elem(&streams, &sk);
	/* Not ours: a stream newClientStream is still failing (it returns the
	 * error itself), or one that started before goprobe attached. */
	if (!ev)
		return 0;
	__u64 err_itab = slot(ctx, h, 1);
	int bad = 0;
	if (err_itab) {
		ev->flags |= GP_FLAG_ERROR;
		read_error(ev, cfg, err_itab, slot(ctx, h, 2));
	}
	bad |= read_attempt(ev, cfg, cs);
	if (bad) {
		ev->flags |= GP_FLAG_READ_FAILED;
		count_lost(GP_LOST_READ);
	}
	ev->end_ns = bpf_ktime_get_ns();
	output(ev, sizeof(*ev));
	bpf_map_delete_elem(&streams, &sk);
	return 0;
}
