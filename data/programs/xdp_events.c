/* Written for xdplab (selftest roles: per-CPU and LRU maps, a ring buffer to user space).
 * Per packet: a PERCPU_ARRAY counter (one CPU is modelled), an LRU_HASH entry per UDP
 * destination port (3 entries: older ports are evicted), and an event in a RINGBUF that the
 * consumer reads (bpf_ringbuf_output).  Everything passes. */
#include "xdplab_bpf.h"

static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;

struct event {
	__u32 len;
	__u16 dport;
	__u16 seen_before;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} pkts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 3);
	__type(key, __u16);
	__type(value, __u64);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

SEC("xdp")
int xdp_events(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	unsigned char *p = data;
	struct event ev = {};
	__u32 zero = 0;
	__u64 one = 1, *v;

	v = bpf_map_lookup_elem(&pkts, &zero);
	if (v)
		*v += 1;
	if (data + 42 > data_end)
		return XDP_PASS;
	ev.len = data_end - data;
	ev.dport = bswap16(*(__u16 *)(p + 36));
	v = bpf_map_lookup_elem(&ports, &ev.dport);
	if (v) {
		ev.seen_before = 1;
		*v += 1;
	} else {
		bpf_map_update_elem(&ports, &ev.dport, &one, 1 /* BPF_NOEXIST */);
	}
	if (ev.dport == 7)               /* port 7 asks to be forgotten */
		bpf_map_delete_elem(&ports, &ev.dport);
	bpf_ringbuf_output(&events, &ev, sizeof(ev), 0);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
