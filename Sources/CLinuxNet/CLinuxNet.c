#include "CLinuxNet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int smcpair_packet_socket_open(const char *ifname, int *ifindex_out) {
  unsigned int index = if_nametoindex(ifname);
  if (index == 0) return -errno;
  // Protocol 0: this socket only sends, it never receives copies of traffic.
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  struct sockaddr_ll address;
  memset(&address, 0, sizeof address);
  address.sll_family = AF_PACKET;
  address.sll_ifindex = (int)index;
  address.sll_protocol = 0;
  if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0) {
    int error = errno;
    close(fd);
    return -error;
  }
  *ifindex_out = (int)index;
  return fd;
}

ssize_t smcpair_packet_send(int fd, int ifindex, const void *frame, size_t length) {
  struct sockaddr_ll address;
  memset(&address, 0, sizeof address);
  address.sll_family = AF_PACKET;
  address.sll_ifindex = ifindex;
  address.sll_halen = ETH_ALEN;
  memcpy(address.sll_addr, frame, ETH_ALEN);
  ssize_t sent;
  do {
    sent = sendto(fd, frame, length, 0, (struct sockaddr *)&address, sizeof address);
  } while (sent < 0 && errno == EINTR);
  return sent < 0 ? -errno : sent;
}

int smcpair_attach_socket_filter(int fd, const void *instructions, unsigned short count) {
  struct sock_fprog program;
  program.len = count;
  program.filter = (struct sock_filter *)instructions;
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof(program)) != 0) return -errno;
  return 0;
}
