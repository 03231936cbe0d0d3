/* Several fields through the merged (Linux 6.3+) kfuncs, with counters in an ARRAY map, in the
 * role of tools/testing/selftests/bpf/progs/xdp_hw_metadata.c (kernel-facts 9.3): a subprogram
 * counts, a failed kfunc leaves its field 0. */
#include "xdplab_bpf.h"

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsk SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct meta {
	__u64 rx_timestamp;
	__u32 rx_hash;
	__u32 rx_hash_type;
};

extern int bpf_xdp_metadata_rx_timestamp(const struct xdp_md *ctx, __u64 *timestamp) __ksym;
extern int bpf_xdp_metadata_rx_hash(const struct xdp_md *ctx, __u32 *hash,
				    enum xdp_rss_hash_type *rss_type) __ksym;

enum { PKTS_SKIP, PKTS_FAIL, PKTS_REDIR };

__attribute__((noinline)) int count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);
	if (c)
		__sync_fetch_and_add(c, 1);
	return 0;
}

SEC("xdp")
int rx_fields(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	unsigned char *p = data;
	struct meta m = {};

	if (data + 42 > data_end || *(__u16 *)(p + 36) != bswap16(8080)) {
		count(PKTS_SKIP);
		return XDP_PASS;
	}
	if (bpf_xdp_metadata_rx_timestamp(ctx, &m.rx_timestamp))
		m.rx_timestamp = 0;
	if (bpf_xdp_metadata_rx_hash(ctx, &m.rx_hash, (enum xdp_rss_hash_type *)&m.rx_hash_type))
		m.rx_hash = 0;
	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct meta))) {
		count(PKTS_FAIL);
		return XDP_PASS;
	}
	data = (void *)(long)ctx->data;
	struct meta *out = (void *)(long)ctx->data_meta;
	if ((void *)(out + 1) > data) {
		count(PKTS_FAIL);
		return XDP_PASS;
	}
	*out = m;
	count(PKTS_REDIR);
	return bpf_redirect_map(&xsk, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "GPL";
