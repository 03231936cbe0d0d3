/* Minimal definitions for xdplab's XDP programs: written for xdplab, no kernel or libbpf
 * headers needed.  Values follow include/uapi/linux/bpf.h (helper ids, enum xdp_action,
 * map types) and the RFC v2 / merged kfunc prototypes (kernel-facts 5, 12.2). */
#ifndef XDPLAB_BPF_H
#define XDPLAB_BPF_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef int __s32;
typedef __u16 __be16;
typedef __u32 __be32;

struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

enum xdp_action { XDP_ABORTED = 0, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT };
/* include/net/xdp.h (6.3+): the merged rx_hash kfunc's third parameter points to this enum;
 * libbpf checks the kind (enum, not int) against the kernel's prototype. */
enum xdp_rss_hash_type { XDP_RSS_TYPE_NONE = 0, XDP_RSS_TYPE_L4_IPV4_UDP = (1 << 0) | (1 << 3) | (1 << 5) };

#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_PROG_ARRAY 3
#define BPF_MAP_TYPE_PERCPU_ARRAY 6
#define BPF_MAP_TYPE_LRU_HASH 9
#define BPF_MAP_TYPE_XSKMAP 17
#define BPF_MAP_TYPE_RINGBUF 27

#define SEC(name) __attribute__((section(name), used))
#define __ksym __attribute__((section(".ksyms")))
/* BTF-described map definitions: the value rides in an array dimension, the type in a pointer. */
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
/* A PROG_ARRAY's static initialiser: libbpf fills it from .rel.maps after loading. */
#define __array(name, val) typeof(val) *name[]

/* Helpers: a call to a fixed id, as the kernel numbers them. */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)51;
static long (*bpf_xdp_adjust_meta)(struct xdp_md *xdp_md, int delta) = (void *)54;
static long (*bpf_trace_printk)(const char *fmt, __u32 fmt_size, ...) = (void *)6;
static long (*bpf_tail_call)(void *ctx, void *prog_array_map, __u32 index) = (void *)12;
static long (*bpf_ringbuf_output)(void *ringbuf, void *data, __u64 size, __u64 flags) = (void *)130;

/* bpf_printk: the format lives in .rodata, its size is passed along (a trace_pipe line). */
#define bpf_printk(fmt, ...) ({ static const char ____fmt[] = fmt; \
	bpf_trace_printk(____fmt, sizeof(____fmt), ##__VA_ARGS__); })

#define ETH_P_IP_BE 0x0008       /* htons(0x0800) on a little-endian target */
#define IPPROTO_UDP 17

static inline __u16 bswap16(__u16 x) { return __builtin_bswap16(x); }

#endif
