// Why this target exists: AF_PACKET (sockaddr_ll, ETH_P_ALL), if_nametoindex and
// SO_ATTACH_FILTER's sock_fprog are not all visible from Swift's Glibc module. These few wrappers keep those declarations in C;
// nothing else belongs here.
#ifndef SMCPAIR_CLINUXNET_H
#define SMCPAIR_CLINUXNET_H

#include <stddef.h>
#include <sys/types.h>

/// Opens a raw AF_PACKET socket bound to interface `ifname` for sending whole Ethernet
/// frames. Returns the descriptor, or -errno. `ifindex_out` receives the interface index.
int smcpair_packet_socket_open(const char *ifname, int *ifindex_out);

/// Sends one Ethernet frame on the socket's interface. Returns bytes sent, or -errno.
ssize_t smcpair_packet_send(int fd, int ifindex, const void *frame, size_t length);

/// Attaches a classic BPF program (`count` 8-byte instructions, the layout of libpcap's
/// `struct bpf_insn` and the kernel's `struct sock_filter`) to a packet socket with
/// SO_ATTACH_FILTER, replacing its filter. Returns 0 or -errno. The agent uses it for
/// programs that read the kernel's packet type, which libpcap cannot run in user space.
int smcpair_attach_socket_filter(int fd, const void *instructions, unsigned short count);

#endif

#ifndef SMCPAIR_CLINUXNET_GENL
#define SMCPAIR_CLINUXNET_GENL
#include <stdint.h>

/// Resolves a generic netlink family. Returns its id (> 0), or -errno (-ENOENT when the
/// kernel has no such family). `commands` receives a bitmask of the family's commands
/// 251, 252, 253 (bits 0, 1, 2) when they are listed.
int smcpair_genl_family(const char *name, uint32_t *commands);

/// Sends a generic netlink command with one optional string attribute and waits for the
/// kernel's acknowledgement. Returns 0 or -errno.
int smcpair_genl_command(int family, uint8_t command, uint16_t attribute, const char *value);
#endif
