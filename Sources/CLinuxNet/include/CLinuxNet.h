// Why this target exists: AF_PACKET (sockaddr_ll, ETH_P_ALL) and if_nametoindex are not
// all visible from Swift's Glibc module. These few wrappers keep those declarations in C;
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

#endif
