/* Written for xdplab (selftest role: the merged 6.3 design's AF_XDP metadata program).
 * The metadata the consumer reads is `struct xdp_meta`, described by BTF; the kfuncs are
 * declared with the merged prototypes (int status, out-pointers).  Under the RFC v2 design the
 * kernel's prototypes differ (by-value returns), which libbpf refuses at load. */
#include "xdplab_bpf.h"

struct xdp_meta {
	__u64 rx_timestamp;
	__u32 rx_hash;
	__u32 rx_hash_type;
	__s32 rx_timestamp_err;
	__s32 rx_hash_err;
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

/* A subprogram taking the struct puts it in the object's BTF (clang emits BTF for types that
 * globals, maps and function signatures reach; a local pointer alone is only in DWARF). */
static __attribute__((noinline)) int meta_fits(struct xdp_meta *meta, void *data)
{
	return (void *)(meta + 1) <= data;
}

SEC("xdp")
int rx(struct xdp_md *ctx)
{
	struct xdp_meta *meta;
	void *data, *data_meta;

	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct xdp_meta)))
		return XDP_PASS;
	data = (void *)(long)ctx->data;
	data_meta = (void *)(long)ctx->data_meta;
	meta = data_meta;
	if (!meta_fits(meta, data))
		return XDP_PASS;
	meta->rx_timestamp_err = bpf_xdp_metadata_rx_timestamp(ctx, &meta->rx_timestamp);
	if (meta->rx_timestamp_err)
		meta->rx_timestamp = 0;
	meta->rx_hash_err = bpf_xdp_metadata_rx_hash(ctx, &meta->rx_hash,
						     (enum xdp_rss_hash_type *)&meta->rx_hash_type);
	return bpf_redirect_map(&xsk, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "GPL";
