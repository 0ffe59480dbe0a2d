// SPDX-License-Identifier: GPL-2.0
/* db_sql.bpf.c: the db_sql family (catalog probe db.sql): database/sql
 * calls (queries, execs, prepared statements, commits, rollbacks), timed
 * from entry to every RET, with the query text, the connector's and the
 * driver's dynamic types (user space names them), the DSN (for the server
 * address only; never written out) and the returned error's type.
 *
 * Hook slots (catalog `slot`):
 *   db_call: 0 receiver (*DB, or *Stmt / *Tx per GP_HOOK_* flags)
 *            1,2 query string (ptr, len; *DB hooks only)  3,4 error (return)
 */
#define GP_RINGBUF_BYTES (8 << 20)   /* about 6,000 calls of slack */
#include "fields.h"
#include "family.h"

/* gp_hook.flags of db_call hooks (catalog `flags`, src/probes/db_sql/mod.rs) */
#define GP_HOOK_RECEIVER_IS_STMT 1
#define GP_HOOK_RECEIVER_IS_TX 2
#define GP_HOOK_SKIP_IF_TX_DONE 4  /* a call on a finished Tx is a no-op: no event */

#define GP_QUERY_MAX 1024       /* db.query.text is cut here (documented in record --help) */
#define GP_DSN_MAX 128

/* A call between entry and return: the argument words the return program
 * needs (strings and receivers are still alive at return). */
struct gp_call {
	__u64 start_ns;
	__u64 goid;
	__u64 parent_goid;            /* runtime.g.parentGoid, read with goid (read_goids) */
	__u64 w[3];                   /* the hook's slots 0..2 */
	__u32 hook;                   /* index in `hooks` */
	__u32 flags;                  /* GP_FLAG_*, and GP_CALL_SKIP */
};
#define GP_CALL_SKIP 0x80000000      /* gp_call.flags: paired but sends nothing */
#define GP_CALL_DONE 0x40000000      /* gp_call.flags: the call ended, the entry waits for reuse */

/* One completed call. Type descriptors are sent as the target's runtime
 * addresses; user space names them from the ELF file. */
struct gp_db_event {
	__u32 pid;
	__u32 tid;
	__u32 flags;                  /* GP_FLAG_ERROR, GP_FLAG_READ_FAILED */
	__u32 hook;                   /* index in `hooks`: which function */
	__u64 goid;
	__u64 g;
	__u64 parent_goid;            /* runtime.g.parentGoid (Go >= 1.21), 0 when unknown */
	__u64 start_ns;
	__u64 end_ns;
	__u64 connector_type;         /* DB.connector's dynamic type */
	__u64 driver_type;            /* dsnConnector.driver's dynamic type (meaningful only when connector_type is *sql.dsnConnector) */
	__u64 error_type;             /* the returned error's dynamic type */
	__u32 query_len;              /* real length of the query text */
	__u32 dsn_len;
	char dsn[GP_DSN_MAX];         /* dsnConnector.dsn, for server.address/port only; never written out */
	char query[GP_QUERY_MAX];
};
_Static_assert(sizeof(struct gp_db_event) == 1240, "gp_db_event layout (src/probes/db_sql/mod.rs)");

/* Calls in flight: small records, the text is read at return. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, GP_INFLIGHT_ENTRIES);
	__type(key, struct gp_call_key);
	__type(value, struct gp_call);
} calls SEC(".maps");


SEC("uprobe")
int db_call_entry(void *ctx)
{
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h)
		return 0;
	struct gp_call c = {};
	c.start_ns = bpf_ktime_get_ns();
	c.hook = (__u32)bpf_get_attach_cookie(ctx);
	if (read_goids(ctx, cfg, &c.goid, &c.parent_goid))
		c.flags |= GP_FLAG_READ_FAILED;
	c.w[0] = slot(ctx, h, 0);
	c.w[1] = slot(ctx, h, 1);
	c.w[2] = slot(ctx, h, 2);
	if ((h->flags & GP_HOOK_SKIP_IF_TX_DONE) && off(cfg, GP_F_Tx_done) != GP_NO_OFFSET) {
		__u32 done = 0;
		if (bpf_probe_read_user(&done, sizeof(done), (void *)(c.w[0] + off(cfg, GP_F_Tx_done))) == 0 && done)
			c.flags |= GP_CALL_SKIP;
	}
	/* The goroutine's entry of an ended call is reused in place (its
	 * return marks it GP_CALL_DONE instead of deleting it): a map update
	 * and delete per call cost more than a lookup (see http_server.bpf.c). */
	struct gp_call_key key = call_key(ctx);
	struct gp_call *open = bpf_map_lookup_elem(&calls, &key);
	if (open)
		*open = c;
	else if (bpf_map_update_elem(&calls, &key, &c, BPF_ANY))
		count_lost(GP_LOST_INFLIGHT);
	return 0;
}

SEC("uprobe")
int db_call_return(void *ctx)
{
	struct gp_regs_x86_64 *regs = (struct gp_regs_x86_64 *)ctx;
	struct gp_config *cfg = get_config();
	struct gp_hook *h = get_hook(ctx);
	if (!cfg || !h)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	struct gp_call_key key = call_key(ctx);
	struct gp_call *c = bpf_map_lookup_elem(&calls, &key);
	if (!c || (c->flags & GP_CALL_DONE)) {
		count_lost(GP_LOST_UNPAIRED);
		return 0;
	}
	__u32 skip = c->flags & GP_CALL_SKIP;
	c->flags |= GP_CALL_DONE;
	if (skip)
		return 0;
	/* The event is built in its ring-buffer record: most of it is the
	 * query buffer, of which only the text's bytes are written. */
	struct gp_db_event *ev = RESERVE(sizeof(*ev));
	if (!ev)
		return 0;
	ev->pid = id >> 32;
	ev->tid = (__u32)id;
	ev->flags = c->flags & ~(GP_CALL_SKIP | GP_CALL_DONE);
	ev->goid = c->goid;
	ev->g = regs->r14;
	ev->parent_goid = c->parent_goid;
	ev->start_ns = c->start_ns;
	ev->end_ns = bpf_ktime_get_ns();
	ev->hook = c->hook;
	ev->query_len = 0;
	ev->dsn_len = 0;
	ev->connector_type = 0;
	ev->driver_type = 0;
	ev->error_type = 0;
	__u64 recv = c->w[0], qptr = c->w[1], qlen = c->w[2], db = recv;
	int bad = 0;
	if (h->flags & GP_HOOK_RECEIVER_IS_STMT) {
		__u64 hdr[2] = {0, 0};
		if (read_u64(&db, recv + off(cfg, GP_F_Stmt_db)) ||
		    bpf_probe_read_user(hdr, sizeof(hdr), (void *)(recv + off(cfg, GP_F_Stmt_query))))
			bad = 1;
		qptr = hdr[0];
		qlen = hdr[1];
	} else if (h->flags & GP_HOOK_RECEIVER_IS_TX) {
		if (read_u64(&db, recv + off(cfg, GP_F_Tx_db)))
			bad = 1;
		qptr = 0;
		qlen = 0;
	}
	/* The query string is immutable and its caller still holds it. */
	if (qptr && qlen) {
		ev->query_len = qlen > 0xffffffffULL ? 0xffffffffU : (__u32)qlen;
		__u64 n = qlen;
		if (n > GP_QUERY_MAX)
			n = GP_QUERY_MAX;
		/* Re-checked after the barrier: the verifier must see the bound
		 * on the register it is given, not one clang has folded away. */
		asm volatile("" : "+r"(n));
		if (n > GP_QUERY_MAX)
			n = 0;
		if (n && bpf_probe_read_user(ev->query, n, (void *)qptr))
			bad = 1;
	}
	/* DB.connector (driver.Connector interface) names the database system:
	 * sql.Open's dsnConnector wraps the driver and keeps the DSN. */
	__u64 conn[2] = {0, 0};
	if (db && bpf_probe_read_user(conn, sizeof(conn), (void *)(db + off(cfg, GP_F_DB_connector))) == 0) {
		ev->connector_type = itab_type(conn[0]);
		__u64 od = off(cfg, GP_F_dsnConnector_dsn), ov = off(cfg, GP_F_dsnConnector_driver);
		if (conn[1] && od == 0 && ov == 16) {
			/* dsnConnector{dsn string; driver driver.Driver} in every
			 * supported release: both in one read instead of two. */
			__u64 dc[4] = {0, 0, 0, 0};
			if (bpf_probe_read_user(dc, sizeof(dc), (void *)conn[1]) == 0) {
				ev->driver_type = itab_type(dc[2]);
				COPY_GO_STRING(ev, dc[0], dc[1], dsn, dsn_len);
			}
		} else {
			if (conn[1] && ov != GP_NO_OFFSET) {
				__u64 drv[2] = {0, 0};
				if (bpf_probe_read_user(drv, sizeof(drv), (void *)(conn[1] + ov)) == 0)
					ev->driver_type = itab_type(drv[0]);
			}
			if (conn[1] && od != GP_NO_OFFSET)
				READ_GO_STRING(ev, conn[1] + od, dsn, dsn_len);
		}
	} else {
		bad = 1;
	}
	__u64 err = slot(ctx, h, 3);
	if (err) {
		ev->flags |= GP_FLAG_ERROR;
		ev->error_type = itab_type(err);
	}
	if (bad) {
		ev->flags |= GP_FLAG_READ_FAILED;
		count_lost(GP_LOST_READ);
	}
	bpf_ringbuf_submit(ev, wakeup_flags(sizeof(*ev)));
	return 0;
}
