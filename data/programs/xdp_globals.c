/* Written for xdplab (selftest roles: global data, bpf_printk, subprograms, several programs
 * per section, an unused prog array, CO-RE, a non-XDP section).
 * - .rodata: `port` (const volatile, as a loader would set it before load) and printk formats;
 * - .rodata.str1.1: string literals passed to %s;
 * - .data: `verdict_other`, the action for other packets;
 * - .bss: `seen`, `matched` counters;
 * - a PROG_ARRAY that nothing calls (libbpf creates it anyway);
 * - `classify`, a static noinline subprogram in .text (bpf-to-bpf call, section-symbol reloc);
 * - two programs in SEC("xdp"): xdp_count (counts, prints, passes) and xdp_drop_other;
 * - struct ethhdr with preserve_access_index: its field reads are CO-RE relocations;
 * - SEC("tc"): a classifier, which xdplab must refuse to run as XDP. */
#include "xdplab_bpf.h"

struct ethhdr {
	unsigned char h_dest[6];
	unsigned char h_source[6];
	__be16 h_proto;
} __attribute__((preserve_access_index));

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__uint(key_size, 4);
	__uint(value_size, 4);
} unused_jmp SEC(".maps");

const volatile __u16 port = 8080;
int verdict_other = XDP_DROP;
__u64 seen;
__u64 matched;

static __attribute__((noinline)) int classify(void *data, void *data_end)
{
	unsigned char *p = data;
	struct ethhdr *eth = data;

	if (data + 42 > data_end)
		return -1;
	if (eth->h_proto != ETH_P_IP_BE || p[23] != IPPROTO_UDP)
		return 0;
	return *(__u16 *)(p + 36) == bswap16(port);
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	int c = classify(data, data_end);

	__sync_fetch_and_add(&seen, 1);
	if (c > 0) {
		__sync_fetch_and_add(&matched, 1);
		bpf_printk("xdp_count: udp port %d len %u", port, (__u32)(data_end - data));
	} else {
		bpf_printk("xdp_count: other (%d)", c);
	}
	return XDP_PASS;
}

SEC("xdp")
int xdp_drop_other(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	int c = classify(data, data_end);

	/* string literals as %s arguments: clang puts them in .rodata.str1.1, one more map */
	bpf_printk("xdp_drop_other: %s", c > 0 ? "match" : "other");
	if (c > 0)
		return XDP_PASS;
	return verdict_other;
}

SEC("tc")
int tc_pass(void *skb)
{
	return 0;
}

char _license[] SEC("license") = "GPL";
