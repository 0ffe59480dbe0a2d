// SPDX-License-Identifier: GPL-2.0
/* baseline.bpf.c: a program that does nothing, attached at exactly the
 * points the real programs would be by `goprobe attach --baseline-empty`,
 * so benches/attach.sh can measure what the uprobe traps alone cost. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("uprobe")
int empty_probe(void *ctx)
{
	return 0;
}
