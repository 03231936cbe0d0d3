/* Written for xdplab (selftest role: xdp_hw_metadata, merged design).  UDP to port 9091 gets
 * its metadata in `struct xdp_meta` and goes to AF_XDP; everything else passes.  The struct is
 * only reached through a local pointer, as the selftests write it, so clang leaves it out of
 * .BTF: the consumer finds its layout in DWARF (-g).  It mixes widths, signedness and bitfields
 * so that a consumer reading it as one u64 shows. */
#include "xdplab_bpf.h"

struct xdp_meta {
	__u64 rx_timestamp;
	__u32 rx_hash;
	__u32 rx_hash_type;
	short rx_timestamp_err;		/* signed 16-bit: -EOPNOTSUPP / -ENODATA fit */
	unsigned char have_ts : 1;
	unsigned char have_hash : 1;
	unsigned char pad : 6;
	signed char hash_err;
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsk SEC(".maps");

extern int bpf_xdp_metadata_rx_timestamp(const struct xdp_md *ctx, __u64 *timestamp) __ksym;
extern int bpf_xdp_metadata_rx_hash(const struct xdp_md *ctx, __u32 *hash,
				    enum xdp_rss_hash_type *rss_type) __ksym;

SEC("xdp")
int rx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	unsigned char *p = data;
	struct xdp_meta *meta;
	int err;

	if (data + 42 > data_end || *(__u16 *)(p + 12) != ETH_P_IP_BE || p[23] != IPPROTO_UDP
	    || *(__u16 *)(p + 36) != bswap16(9091))
		return XDP_PASS;
	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct xdp_meta)))
		return XDP_PASS;
	data = (void *)(long)ctx->data;
	meta = (void *)(long)ctx->data_meta;
	if ((void *)(meta + 1) > data)
		return XDP_PASS;
	err = bpf_xdp_metadata_rx_timestamp(ctx, &meta->rx_timestamp);
	meta->rx_timestamp_err = err;
	meta->have_ts = !err;
	if (err)
		meta->rx_timestamp = 0;
	err = bpf_xdp_metadata_rx_hash(ctx, &meta->rx_hash, (enum xdp_rss_hash_type *)&meta->rx_hash_type);
	meta->hash_err = err;
	meta->have_hash = !err;
	meta->pad = 0;
	return bpf_redirect_map(&xsk, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "GPL";
