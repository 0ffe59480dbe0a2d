/* netaddr.h: reading a connection's address out of the target's Go
 * structs, read-only: a net.Addr interface whose dynamic type should be
 * *net.TCPAddr ({IP []byte, Port int, Zone string}). The programs cannot
 * tell the dynamic type from its runtime address, so they copy what a
 * *net.TCPAddr would hold and send the type along; user space keeps the
 * address only when the type is *net.TCPAddr (src/probes/netaddr.rs).
 *
 * Families that use it name net.TCPAddr.IP and net.TCPAddr.Port in the
 * catalog and pass their offsets in.
 */
#ifndef GP_NETADDR_H
#define GP_NETADDR_H

#include "abi.h"
#include "goread.h"

/* One endpoint as sent in an event (mirrored by src/probes/netaddr.rs). */
struct gp_tcpaddr {
	__u64 type;                   /* the net.Addr's dynamic type (runtime address), 0 when unread */
	__u8 ip[16];                  /* the first ip_len bytes of TCPAddr.IP */
	__u32 ip_len;                 /* 4 or 16 for a real address */
	__u32 port;                   /* TCPAddr.Port */
};
_Static_assert(sizeof(struct gp_tcpaddr) == 32, "gp_tcpaddr layout (src/probes/netaddr.rs)");

static __always_inline void clear_tcpaddr(struct gp_tcpaddr *a)
{
	a->type = 0;
	a->ip_len = 0;
	a->port = 0;
}

/* The net.Addr interface stored at `iface` into *a; non-zero when a read
 * failed (a zero interface is not a failure: *a stays empty). */
static __always_inline int read_tcpaddr(struct gp_tcpaddr *a, __u64 iface, __u64 off_ip, __u64 off_port)
{
	clear_tcpaddr(a);
	if (off_ip == GP_NO_OFFSET || off_port == GP_NO_OFFSET)
		return 0;
	__u64 w[2] = {0, 0};
	if (bpf_probe_read_user(w, sizeof(w), (void *)iface))
		return -1;
	if (!w[0] || !w[1])
		return 0;
	a->type = itab_type(w[0]);
	__u64 ip[4] = {0, 0, 0, 0};
	__s64 port = 0;
	if (off_port == off_ip + 24) {
		/* IP's slice header and Port side by side (every supported
		 * release): one read instead of two. */
		if (bpf_probe_read_user(ip, sizeof(ip), (void *)(w[1] + off_ip)))
			return -1;
		port = (__s64)ip[3];
	} else if (bpf_probe_read_user(ip, 16, (void *)(w[1] + off_ip)) ||
		   bpf_probe_read_user(&port, sizeof(port), (void *)(w[1] + off_port))) {
		return -1;
	}
	__u64 n = ip[1];
	if (n != 4 && n != 16)
		return 0;
	/* The verifier needs the length bounded on the register it sees. */
	asm volatile("" : "+r"(n));
	if (n > sizeof(a->ip))
		return 0;
	if (bpf_probe_read_user(a->ip, n, (void *)ip[0]))
		return -1;
	a->ip_len = (__u32)n;
	a->port = (__u32)port;
	return 0;
}

#endif
