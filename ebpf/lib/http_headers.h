/* http_headers.h: the header walk of http_server.bpf.c (included by it
 * once, after struct gp_server_event): the Traceparent and User-Agent
 * entries of Request.Header, found in one walk of the map, for both Go map
 * layouts (8-slot buckets before Go 1.24, Swiss tables since). A header of
 * its own only to keep http_server.bpf.c a readable size. */
#ifndef GP_HTTP_HEADERS_H
#define GP_HTTP_HEADERS_H

/* One map bucket or group of Request.Header while searching it. */
#define GP_BUCKET_BYTES 336
/* The buffer also holds the Request's first bytes and then its request
 * line at ServeHTTP's entry (http_request.h), before the walk. */
#define GP_MAPBUF_BYTES 768
struct gp_mapbuf {
	__u8 b[GP_MAPBUF_BYTES];
	/* GP_FOUND_* of the header walk. Kept in map memory, not a register:
	 * the verifier then sees an unknown value at each slot instead of
	 * following every combination of matches through the unrolled
	 * loops (which exceeds its instruction budget). */
	__u32 found;
	/* GP_FOUND_* whose first value's string header is in `val`: the walk
	 * only notes them, and the bytes are copied once it is over, outside
	 * its unrolled loops (an append there multiplied the paths the
	 * verifier follows past its limits). */
	__u32 got;
	__u64 val[4];                 /* Traceparent's (data, len), then User-Agent's */
};
/* Volatile: clang must not keep them in registers either. */
#define FOUND(mb) (*(volatile __u32 *)&(mb)->found)
#define GOT(mb) (*(volatile __u32 *)&(mb)->got)
#define VAL(mb, i) (*(volatile __u64 *)&(mb)->val[(i) & 3])
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gp_mapbuf);
} mapbuf SEC(".maps");

/* --- Incoming trace context and user agent: the Traceparent and
 * User-Agent entries of Request.Header, found in one walk ---
 *
 * Header is a map[string][]string. goprobe cannot hash the key (the seed
 * is per map and the hash is the runtime's), so it scans every slot and
 * compares keys; a header map is small. Keys are canonical
 * ("Traceparent", "User-Agent"). Only the first value is used. Bounds keep
 * the verifier happy and the cost fixed; a bigger map sets
 * GP_FLAG_MAP_TOO_BIG. The cost is in the user-memory reads, so each
 * bucket or group is read whole, and a key is read only when its length
 * is one of the two wanted. */
#define GP_TP_KEY_LEN 11
#define GP_UA_KEY_LEN 10
#define GP_FOUND_TP 1
#define GP_FOUND_UA 2
#define GP_FOUND_ALL 3

/* Slot layout for map[string][]string on 64-bit: a string key is 16 bytes,
 * a []string value 24.
 * Go < 1.24 bucket: tophash[8] @0, keys[8] @8, elems[8] @136, overflow @328.
 * Go >= 1.24 group: ctrl word @0, then 8 slots of {key @0, elem @16}, 40 bytes each. */
#define GP_BK_KEYS 8
#define GP_BK_ELEMS 136
#define GP_BK_OVERFLOW 328
#define GP_GR_SLOTS 8
#define GP_GR_SLOT_SIZE 40
#define GP_GR_BYTES 328
/* runtime/map.go: tophash values below minTopHash (5) mark empty or evacuated slots. */
#define GP_MIN_TOPHASH 5
/* Limits: 2^4 buckets (about 104 headers) plus the old array while growing;
 * 4 Swiss tables of up to 16 groups. */
#define GP_MAX_B 4
#define GP_MAX_CHAIN 2
#define GP_MAX_TABLES 4
#define GP_MAX_GROUPS 16

/* The two keys as the little-endian words of their bytes, zero-padded to
 * 16: "Tracepar" "ent", "User-Age" "nt". A key is compared as two words,
 * without a loop or a branch per byte (which multiplies the paths the
 * verifier follows through the unrolled slot loops). */
#define GP_TP_W0 0x7261706563617254ULL
#define GP_TP_W1 0x746e65ULL
#define GP_UA_W0 0x6567412d72657355ULL
#define GP_UA_W1 0x746eULL

/* If the key at buf+koff is one still wanted (`found` has what is not),
 * note the string header of the first value of the []string at buf+voff
 * in mb (GOT, VAL); returns the GP_FOUND_* bit it matched, 0 for none. */
static __always_inline __u32 match_slot(struct gp_server_event *ev, struct gp_mapbuf *mb, __u8 *buf, __u32 koff,
					__u32 voff, __u32 found)
{
	if (koff > GP_BUCKET_BYTES - 16 || voff > GP_BUCKET_BYTES - 24)
		return 0;
	__u64 kptr = *(__u64 *)(buf + koff);
	__u64 klen = *(__u64 *)(buf + koff + 8);
	/* Cheap rejection first: only two key lengths are of interest. */
	if ((klen != GP_TP_KEY_LEN && klen != GP_UA_KEY_LEN) || !kptr)
		return 0;
	__u64 k[2] = {0, 0};
	/* Clang knows klen is 10 or 11 and would drop the mask the verifier
	 * needs to bound the read (it only sees klen & ~1 == 10). */
	__u64 n = klen;
	asm volatile("" : "+r"(n));
	if (bpf_probe_read_user(k, n & 15, (void *)kptr))
		return 0;
	__u32 hit = 0;
	if (k[0] == GP_TP_W0 && k[1] == GP_TP_W1)
		hit = GP_FOUND_TP;
	else if (k[0] == GP_UA_W0 && k[1] == GP_UA_W1)
		hit = GP_FOUND_UA;
	if (!hit || (found & hit))
		return 0;
	__u64 vptr = *(__u64 *)(buf + voff);
	__u64 vlen = *(__u64 *)(buf + voff + 8);
	if (!vptr || vlen < 1)
		return hit;
	/* The first value's string header, noted for read_headers. */
	__u64 hdr[2] = {0, 0};
	if (bpf_probe_read_user(hdr, sizeof(hdr), (void *)vptr)) {
		ev->flags |= GP_FLAG_READ_FAILED;
		return hit;
	}
	__u32 v = hit == GP_FOUND_TP ? 0 : 2;
	VAL(mb, v) = hdr[0];
	VAL(mb, v + 1) = hdr[1];
	GOT(mb) |= hit;
	return hit;
}

/* Scan one bucket (and up to GP_MAX_CHAIN-1 overflow buckets); 1 when
 * everything wanted was found. */
static __always_inline int scan_buckets(struct gp_server_event *ev, struct gp_mapbuf *mb, __u64 addr)
{
	__u8 *buf = mb->b;
	for (int c = 0; c < GP_MAX_CHAIN; c++) {
		if (!addr)
			return 0;
		if (bpf_probe_read_user(buf, GP_BUCKET_BYTES, (void *)addr))
			return 0;
#pragma unroll
		for (int s = 0; s < 8; s++) {
			if (buf[s] < GP_MIN_TOPHASH)
				continue;
			FOUND(mb) |= match_slot(ev, mb, buf, GP_BK_KEYS + 16 * s, GP_BK_ELEMS + 24 * s, FOUND(mb));
			if (FOUND(mb) == GP_FOUND_ALL)
				return 1;
		}
		addr = *(__u64 *)(buf + GP_BK_OVERFLOW);
	}
	if (addr)
		ev->flags |= GP_FLAG_MAP_TOO_BIG;
	return 0;
}

/* One Swiss-table group; 1 when everything wanted was found. */
static __always_inline int scan_group(struct gp_server_event *ev, struct gp_mapbuf *mb, __u64 addr)
{
	__u8 *buf = mb->b;
	if (!addr || bpf_probe_read_user(buf, GP_GR_BYTES, (void *)addr))
		return 0;
#pragma unroll
	for (int s = 0; s < GP_GR_SLOTS; s++) {
		/* internal/runtime/maps: a control byte with the high bit clear is a full slot. */
		if (buf[s] & 0x80)
			continue;
		FOUND(mb) |= match_slot(ev, mb, buf, 8 + GP_GR_SLOT_SIZE * s, 8 + GP_GR_SLOT_SIZE * s + 16, FOUND(mb));
		if (FOUND(mb) == GP_FOUND_ALL)
			return 1;
	}
	return 0;
}

/* The map header (runtime.hmap or internal/runtime/maps.Map) is read in
 * one piece: every field the walk needs lies in its first 48 bytes in all
 * supported releases (checked against the offsets, headers_readable: a
 * layout that moved them out is not searched). */
#define GP_MAPHDR_BYTES 48

/* The word at byte `off` of the header: a stack buffer, where the verifier
 * wants 8-byte loads at an offset it knows to be aligned, hence the index
 * (headers_readable checked the offsets are aligned). */
static __always_inline __u64 hdr_u64(__u64 *hdr, __u64 off)
{
	__u64 i = off >> 3;
	if (i >= GP_MAPHDR_BYTES / 8)
		return 0;
	return hdr[i];
}

static __always_inline int word_in_hdr(__u64 off)
{
	return off <= GP_MAPHDR_BYTES - 8 && (off & 7) == 0;
}

/* Offsets known and every field the walk needs inside the map header. */
static __always_inline int headers_readable(struct gp_config *cfg)
{
	__u32 m = mode(cfg, GP_MODE_MAP);
	if (m == GP_MAP_BUCKETS)
		return off(cfg, GP_F_hmap_B) <= GP_MAPHDR_BYTES - 1 &&
		       word_in_hdr(off(cfg, GP_F_hmap_buckets)) &&
		       word_in_hdr(off(cfg, GP_F_hmap_oldbuckets));
	if (m == GP_MAP_SWISS)
		return word_in_hdr(off(cfg, GP_F_Map_dirPtr)) && word_in_hdr(off(cfg, GP_F_Map_dirLen));
	return 0;
}

/* The walk of the Header map m (non-nil): what it finds is noted in mb. */
static __always_inline void walk_headers(struct gp_server_event *ev, struct gp_config *cfg, __u64 m,
					 struct gp_mapbuf *mb)
{
	__u64 hdr[GP_MAPHDR_BYTES / 8] = {};
	if (bpf_probe_read_user(hdr, sizeof(hdr), (void *)m))
		return;
	if (mode(cfg, GP_MODE_MAP) == GP_MAP_BUCKETS) {
		__u64 boff = off(cfg, GP_F_hmap_B);
		if (boff > GP_MAPHDR_BYTES - 1)
			return;
		__u8 b = *((__u8 *)hdr + boff);
		__u64 buckets = hdr_u64(hdr, off(cfg, GP_F_hmap_buckets));
		__u64 old = hdr_u64(hdr, off(cfg, GP_F_hmap_oldbuckets));
		if (b > GP_MAX_B) {
			ev->flags |= GP_FLAG_MAP_TOO_BIG;
			return;
		}
		__u32 n = 1u << b;
		for (__u32 i = 0; i < (1u << GP_MAX_B); i++) {
			if (i >= n)
				break;
			if (scan_buckets(ev, mb, buckets + (__u64)i * GP_BUCKET_BYTES))
				return;
		}
		/* While the map grows, entries not yet moved are in the old
		 * array (half the size); moved ones are marked evacuated there. */
		for (__u32 i = 0; old && i < (1u << (GP_MAX_B - 1)); i++) {
			if (i >= n / 2)
				break;
			if (scan_buckets(ev, mb, old + (__u64)i * GP_BUCKET_BYTES))
				return;
		}
		return;
	}
	/* GP_MAP_SWISS */
	__u64 dir = hdr_u64(hdr, off(cfg, GP_F_Map_dirPtr));
	__u64 dirlen = hdr_u64(hdr, off(cfg, GP_F_Map_dirLen));
	if (dirlen == 0) {
		/* A small map (up to 8 entries): dirPtr points at its one group. */
		scan_group(ev, mb, dir);
		return;
	}
	if (dirlen > GP_MAX_TABLES) {
		ev->flags |= GP_FLAG_MAP_TOO_BIG;
		return;
	}
	__u64 groups_off = off(cfg, GP_F_table_groups);
	for (__u32 t = 0; t < GP_MAX_TABLES; t++) {
		if (t >= dirlen)
			break;
		__u64 table = 0, gr[2] = {0, 0};
		if (read_u64(&table, dir + 8 * (__u64)t) || !table)
			return;
		__u64 data_off = groups_off + off(cfg, GP_F_groupsReference_data);
		__u64 mask_off = groups_off + off(cfg, GP_F_groupsReference_lengthMask);
		/* groupsReference is {data, lengthMask}: one read when adjacent. */
		if (mask_off == data_off + 8) {
			if (bpf_probe_read_user(gr, sizeof(gr), (void *)(table + data_off)))
				return;
		} else if (read_u64(&gr[0], table + data_off) || read_u64(&gr[1], table + mask_off)) {
			return;
		}
		__u64 data = gr[0], mask = gr[1];
		if (mask + 1 > GP_MAX_GROUPS) {
			ev->flags |= GP_FLAG_MAP_TOO_BIG;
			return;
		}
		for (__u32 g = 0; g < GP_MAX_GROUPS; g++) {
			if (g > mask)
				break;
			if (scan_group(ev, mb, data + (__u64)g * GP_GR_BYTES))
				return;
		}
	}
}

/* m: the Header map (non-nil). Traceparent's and User-Agent's first values
 * into ev. */
static __always_inline void read_headers(struct gp_server_event *ev, struct gp_config *cfg, __u64 m)
{
	__u32 zero = 0;
	struct gp_mapbuf *mb = bpf_map_lookup_elem(&mapbuf, &zero);
	if (!mb)
		return;
	FOUND(mb) = 0;
	GOT(mb) = 0;
	walk_headers(ev, cfg, m, mb);
	__u32 got = GOT(mb);
	int bad = 0;
	if (got & GP_FOUND_TP)
		bad |= APPEND_GO_STRING(ev, VAL(mb, 0), VAL(mb, 1), GP_AT_TRACEPARENT, GP_TRACEPARENT_MAX,
					traceparent_len);
	if (got & GP_FOUND_UA)
		bad |= APPEND_GO_STRING(ev, VAL(mb, 2), VAL(mb, 3), GP_AT_USER_AGENT, GP_USER_AGENT_MAX,
					user_agent_len);
	if (bad)
		ev->flags |= GP_FLAG_READ_FAILED;
}

#endif
