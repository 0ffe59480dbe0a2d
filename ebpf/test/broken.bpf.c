// SPDX-License-Identifier: GPL-2.0
/* broken.bpf.c: TEST ONLY. A family object the kernel's verifier must
 * reject, to show that one family failing to load leaves the others
 * recording (tests/e2e.rs, `a_rejected_family_leaves_the_others_recording`).
 *
 * build.rs compiles it to $OUT_DIR/test_broken.bpf.o, but goprobe itself
 * never embeds it: only that test includes the object, through a family
 * defined in the test. Nothing in the registry (src/probes/mod.rs), the
 * catalog or any command-line flag or environment variable can select it,
 * so it cannot be loaded by accident in production. */
#include "fields_none.h"
#include "family.h"

SEC("uprobe")
int broken_entry(void *ctx)
{
	/* Deliberately past the end of the uprobe context (struct pt_regs is
	 * 168 bytes): the verifier refuses the load ("invalid bpf_context
	 * access"). */
	return *(volatile __u64 *)((char *)ctx + 4096) != 0;
}
