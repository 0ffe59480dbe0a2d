/* http_request.h: how http_server.bpf.c reads a Request's strings at
 * ServeHTTP's entry (included by it once, after the header walk,
 * http_headers.h, whose buffer it shares), in as few user-memory reads as
 * it can: each costs some 60-100 ns of program time, more than everything
 * else the program does, so this is where its time goes.
 *
 *   1. The Request's string headers and pointers (Method, URL, Proto,
 *      Header, Host, RemoteAddr, TLS): one read of its first bytes.
 *   2. The URL's Path and RawQuery headers: one read.
 *   3. The bytes of Method, Path, RawQuery and Proto: one read when they
 *      lie in one stretch of memory, which for HTTP/1 they do: net/http
 *      cuts all four out of the request line it read as one string
 *      ("GET /p?q HTTP/1.1"; Path is that substring too unless it had
 *      %-escapes). The stretch is read once and each string copied out of
 *      it by the program; a string outside it is read on its own.
 *   4. Host and RemoteAddr: one read each, and RemoteAddr not even that on
 *      a keep-alive connection (see peer_cached).
 */
#ifndef GP_HTTP_REQUEST_H
#define GP_HTTP_REQUEST_H

/* The Request fields of step 1 lie in its first GP_REQ_WINDOW bytes in
 * every supported release; field by field only when an offset says
 * otherwise. */
#define GP_REQ_WINDOW 256
_Static_assert(GP_REQ_WINDOW <= GP_BUCKET_BYTES, "the request window fits the map bucket buffer");

/* The 8 bytes at `o` in the window. */
static __always_inline __u64 win_u64(__u8 *w, __u64 o)
{
	if (o > GP_REQ_WINDOW - 8)
		return 0;
	return *(__u64 *)(w + o);
}

static __always_inline int in_window(struct gp_config *cfg, int f, __u64 size)
{
	__u64 o = off(cfg, f);
	return o != GP_NO_OFFSET && o + size <= GP_REQ_WINDOW;
}

/* A Go string header read out of the target: (data, length). */
struct gp_str {
	__u64 p;
	__u64 n;
};

/* The URL's Path and RawQuery headers into *path, *query: one read when
 * they lie close together (they do in every supported release: Path @56,
 * RawQuery @96), else one each. Non-zero when a read failed. */
#define GP_URL_SPAN 64
static __always_inline int url_strings(struct gp_config *cfg, __u64 url, struct gp_str *path, struct gp_str *query)
{
	__u64 po = off(cfg, GP_F_URL_Path), qo = off(cfg, GP_F_URL_RawQuery);
	if (po != GP_NO_OFFSET && qo != GP_NO_OFFSET && qo > po && ((qo - po) & 7) == 0 &&
	    qo + 16 - po <= GP_URL_SPAN) {
		__u64 w[GP_URL_SPAN / 8] = {};
		__u64 n = qo + 16 - po;
		/* Re-checked after the barrier, for the verifier. */
		asm volatile("" : "+r"(n));
		if (n > sizeof(w))
			return -1;
		if (bpf_probe_read_user(w, n, (void *)(url + po)))
			return -1;
		__u64 qi = ((qo - po) >> 3) & (GP_URL_SPAN / 8 - 1);
		if (qi > GP_URL_SPAN / 8 - 2)
			return -1;
		path->p = w[0];
		path->n = w[1];
		query->p = w[qi];
		query->n = w[qi + 1];
		return 0;
	}
	if (bpf_probe_read_user(path, sizeof(*path), (void *)(url + po)))
		return -1;
	return bpf_probe_read_user(query, sizeof(*query), (void *)(url + qo)) ? -1 : 0;
}

/* Step 3's stretch: the longest request line read whole (a power of two:
 * offsets into it are masked for the verifier). Method, a path and a
 * query of up to a few hundred bytes and the protocol fit. */
#define GP_LINE_BYTES 512
/* The buffer runs a path buffer's length past GP_LINE_BYTES: a string is
 * copied out of it in whole words, a fixed number of them (no branch per
 * word, which multiplies the paths the verifier follows), and the last
 * ones may run past the bytes read into stale ones that land past the
 * string's length, which user space never reads. */
#define GP_LINE_BUF (GP_LINE_BYTES + GP_LONG_MAX)
_Static_assert(GP_LINE_BUF <= GP_MAPBUF_BYTES, "the request line fits the map bucket buffer");

/* Where the first `keep` bytes of s end in the stretch that starts at
 * `base`, when they lie in it; 0 when they do not (or s is empty). */
static __always_inline __u64 line_end(__u64 base, struct gp_str *s, __u64 keep)
{
	__u64 n = s->n, d = s->p - base;
	if (n > keep)
		n = keep;
	if (!n || d >= GP_LINE_BYTES || d + n > GP_LINE_BYTES)
		return 0;
	return d + n;
}

/* `words` words at offset o of the line into dst (unrolled: straight-line code). */
#define COPY_WORDS(dst, line, o, words)                                         \
	do {                                                                     \
		__u64 __o = (o) & (GP_LINE_BYTES - 1);                          \
		_Pragma("unroll") for (int __i = 0; __i < (words); __i++)        \
			((__u64 *)(dst))[__i] = *(__u64 *)((line) + __o + 8 * __i); \
	} while (0)

/* s's length into ev->len_field and its first bytes (up to the buffer)
 * from the line into ev->field: the whole buffer's words, straight-line. */
#define FROM_LINE(ev, line, o, s, field, len_field)                               \
	do {                                                                      \
		(ev)->len_field = (s).n > 0xffffffffULL ? 0xffffffffU : (__u32)(s).n; \
		COPY_WORDS((ev)->field, line, o, sizeof((ev)->field) / 8);        \
	} while (0)

/* s (up to GP_LONG_MAX bytes) from the line appended to ev->buf as packed
 * string i (APPEND_GO_STRING): GP_LONG_MAX bytes' words are copied,
 * straight-line, and `used` grows by the string's part of them; what runs
 * past it is overwritten by the next string or never sent. Non-zero when
 * buf has no room (never: see struct gp_server_event). */
#define APPEND_FROM_LINE(ev, line, o, s, i, len_field)                          \
	({                                                                           \
		int __ret = 0;                                                       \
		__u64 __n = (s).n;                                                   \
		__u64 __u = (ev)->used;                                              \
		(ev)->len_field = __n > 0xffffffffULL ? 0xffffffffU : (__u32)__n;    \
		if (__n > GP_LONG_MAX)                                               \
			__n = GP_LONG_MAX;                                           \
		/* Re-checked after the barrier, for the verifier. */               \
		asm volatile("" : "+r"(__u));                                        \
		if (__u > sizeof((ev)->buf) - GP_LONG_MAX) {                           \
			(ev)->len_field = 0;                                         \
			__ret = -1;                                                  \
		} else {                                                             \
			(ev)->at[(i)] = (__u16)__u;                                  \
			COPY_WORDS((ev)->buf + __u, line, o, GP_LONG_MAX / 8);       \
			(ev)->used = (__u16)(__u + __n);                             \
		}                                                                    \
		__ret;                                                               \
	})

/* Method, path, query and protocol into ev (step 3); non-zero when a read
 * failed. `buf` holds the line (0: read one by one). All four come out of
 * the line or none does: a choice per string would multiply the paths the
 * verifier follows down the rest of the program past its budget. */
static __always_inline int read_line(struct gp_server_event *ev, __u8 *buf, struct gp_str *meth,
				     struct gp_str *proto, struct gp_str *path, struct gp_str *query)
{
	/* The request line starts with the method. */
	__u64 base = meth->p;
	__u64 e_meth = line_end(base, meth, GP_METHOD_MAX);
	__u64 e_proto = line_end(base, proto, GP_METHOD_MAX);
	__u64 e_path = line_end(base, path, GP_LONG_MAX);
	__u64 e_query = query->n ? line_end(base, query, GP_LONG_MAX) : e_meth;
	__u64 end = e_meth;
	end = e_proto > end ? e_proto : end;
	end = e_path > end ? e_path : end;
	end = e_query > end ? e_query : end;
	int line = 0;
	if (buf && base && e_meth && e_proto && e_path && e_query) {
		/* Re-checked after the barrier, for the verifier. */
		asm volatile("" : "+r"(end));
		if (end >= 1 && end <= GP_LINE_BYTES && bpf_probe_read_user(buf, end, (void *)base) == 0)
			line = 1;
	}
	if (line) {
		FROM_LINE(ev, buf, meth->p - base, *meth, method, method_len);
		FROM_LINE(ev, buf, proto->p - base, *proto, proto, proto_len);
		return APPEND_FROM_LINE(ev, buf, path->p - base, *path, GP_AT_PATH, path_len) |
		       APPEND_FROM_LINE(ev, buf, query->p - base, *query, GP_AT_QUERY, query_len);
	}
	return COPY_GO_STRING(ev, meth->p, meth->n, method, method_len) |
	       COPY_GO_STRING(ev, proto->p, proto->n, proto, proto_len) |
	       APPEND_GO_STRING(ev, path->p, path->n, GP_AT_PATH, GP_LONG_MAX, path_len) |
	       APPEND_GO_STRING(ev, query->p, query->n, GP_AT_QUERY, GP_LONG_MAX, query_len);
}

/* RemoteAddr, unless the previous request on this entry already copied it:
 * same goroutine (goid: never reused) and the same string (data pointer
 * and length). net/http serves a keep-alive connection on one goroutine
 * and sets every Request.RemoteAddr on it to the connection's one string,
 * which lives as long as the connection, so its bytes are those already
 * in ev->peer. `prev` is the entry's peer_ptr, goid and peer_len before
 * start_event reset them (0s for a new entry). */
static __always_inline int read_peer(struct gp_server_event *ev, struct gp_str *peer, __u64 prev_ptr,
				     __u64 prev_goid, __u32 prev_len)
{
	if (peer->p && ev->goid && prev_goid == ev->goid && prev_ptr == peer->p && peer->n == prev_len) {
		ev->peer_len = prev_len;
		ev->peer_ptr = peer->p;
		return 0;
	}
	int bad = COPY_GO_STRING(ev, peer->p, peer->n, peer, peer_len);
	ev->peer_ptr = bad ? 0 : peer->p;
	return bad;
}

/* The strings of steps 3 and 4, gathered by the entry program. */
struct gp_req_strs {
	struct gp_str meth, proto, path, query, host, peer;
	__u64 prev_peer;              /* read_peer's `prev` */
	__u64 prev_goid;
	__u32 prev_peer_len;
	__u32 _pad;
};

/* Steps 3 and 4: every string's bytes into ev; non-zero when a read failed. */
static __always_inline int read_req_strings(struct gp_server_event *ev, struct gp_mapbuf *mb, struct gp_req_strs *r)
{
	if (!ev || !r)
		return 1;
	int bad = read_line(ev, mb ? mb->b : 0, &r->meth, &r->proto, &r->path, &r->query);
	bad |= APPEND_GO_STRING(ev, r->host.p, r->host.n, GP_AT_HOST, GP_SHORT_MAX, host_len);
	bad |= read_peer(ev, &r->peer, r->prev_peer, r->prev_goid, r->prev_peer_len);
	return bad;
}

#endif
