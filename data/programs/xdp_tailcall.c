/* Written for xdplab (selftest role: tail calls through a statically initialised PROG_ARRAY).
 * xdp_entry prints, then jumps to slot 0 (xdp_stage2); slot 1 is empty, so the jump there
 * falls through.  xdp_stage2 counts in .bss and passes; reaching the end of xdp_entry drops.
 * xdp_loop tail-calls itself: the kernel allows MAX_TAIL_CALL_CNT (33) jumps, then the call
 * falls through, so it runs 34 times per packet. */
#include "xdplab_bpf.h"

int xdp_stage2(struct xdp_md *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__uint(key_size, 4);
	__array(values, int(void *));
} jmp SEC(".maps") = {
	.values = { [0] = (void *)&xdp_stage2 },
};

int xdp_loop(struct xdp_md *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, 4);
	__array(values, int(void *));
} loop_jmp SEC(".maps") = {
	.values = { [0] = (void *)&xdp_loop },
};

__u64 stage2_runs;
__u64 loop_runs;
__u32 empty_slot = 1;

SEC("xdp")
int xdp_entry(struct xdp_md *ctx)
{
	bpf_printk("entry");
	bpf_tail_call(ctx, &jmp, empty_slot);     /* nothing there: falls through */
	bpf_printk("after empty slot");
	bpf_tail_call(ctx, &jmp, 0);              /* no return */
	bpf_printk("not reached");
	return XDP_DROP;
}

SEC("xdp")
int xdp_stage2(struct xdp_md *ctx)
{
	__sync_fetch_and_add(&stage2_runs, 1);
	bpf_printk("stage2 run %llu", stage2_runs);
	return XDP_PASS;
}

SEC("xdp")
int xdp_loop(struct xdp_md *ctx)
{
	__u64 n = __sync_fetch_and_add(&loop_runs, 1) + 1;

	bpf_tail_call(ctx, &loop_jmp, 0);
	bpf_printk("loop fell through after %llu runs", n);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
