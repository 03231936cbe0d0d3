/* The RFC v2 selftest's role (05/14, progs/xdp_metadata.c): UDP to port 8080 gets its RX timestamp
 * placed in front of the packet and goes to the queue's AF_XDP socket; the rest passes.
 * Written for xdplab from the selftest's description (kernel-facts 9.2). */
#include "xdplab_bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsk SEC(".maps");

extern int bpf_xdp_metadata_rx_timestamp_supported(const struct xdp_md *ctx) __ksym;
extern const __u64 bpf_xdp_metadata_rx_timestamp(const struct xdp_md *ctx) __ksym;

SEC("xdp")
int rx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	unsigned char *p = data;
	__u64 ts = 0;

	if (data + 42 > data_end)
		return XDP_PASS;
	if (*(__u16 *)(p + 12) != ETH_P_IP_BE || p[23] != IPPROTO_UDP)
		return XDP_PASS;
	if (*(__u16 *)(p + 36) != bswap16(8080))
		return XDP_PASS;

	if (bpf_xdp_metadata_rx_timestamp_supported(ctx))
		ts = bpf_xdp_metadata_rx_timestamp(ctx);

	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(__u64)))
		return XDP_PASS;
	data = (void *)(long)ctx->data;
	__u64 *meta = (void *)(long)ctx->data_meta;
	if ((void *)(meta + 1) > data)
		return XDP_PASS;
	*meta = ts;
	return bpf_redirect_map(&xsk, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "GPL";
