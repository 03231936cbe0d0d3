/* The RFC v2 xdp->skb selftest's role (07/14): UDP to port 9081 has its metadata exported for
 * the skb with bpf_xdp_metadata_export_to_skb, then goes up the stack. */
#include "xdplab_bpf.h"

extern void bpf_xdp_metadata_export_to_skb(const struct xdp_md *ctx) __ksym;

SEC("xdp")
int rx_skb(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	unsigned char *p = data;

	if (data + 42 > data_end)
		return XDP_PASS;
	if (*(__u16 *)(p + 12) != ETH_P_IP_BE || p[23] != IPPROTO_UDP)
		return XDP_PASS;
	if (*(__u16 *)(p + 36) == bswap16(9081))
		bpf_xdp_metadata_export_to_skb(ctx);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
