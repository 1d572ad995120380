#include "CLinuxNet.h"

#include <errno.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

// Generic netlink requests are small: one header, one string attribute.
struct request {
  struct nlmsghdr header;
  struct genlmsghdr genl;
  char attributes[64];
};

static int open_socket(void) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
  if (fd < 0) return -errno;
  struct timeval timeout = {.tv_sec = 2, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  struct sockaddr_nl local;
  memset(&local, 0, sizeof local);
  local.nl_family = AF_NETLINK;
  if (bind(fd, (struct sockaddr *)&local, sizeof local) != 0) {
    int error = errno;
    close(fd);
    return -error;
  }
  return fd;
}

static size_t add_string(struct request *request, uint16_t type, const char *value) {
  size_t length = strlen(value) + 1;
  if (length > 48) length = 48;
  struct nlattr *attribute = (struct nlattr *)request->attributes;
  attribute->nla_type = type;
  attribute->nla_len = (uint16_t)(NLA_HDRLEN + length);
  memcpy((char *)attribute + NLA_HDRLEN, value, length - 1);
  ((char *)attribute + NLA_HDRLEN)[length - 1] = 0;
  return NLA_ALIGN(attribute->nla_len);
}

static int send_request(int fd, uint16_t family, uint8_t command, uint16_t attribute, const char *value) {
  struct request request;
  memset(&request, 0, sizeof request);
  size_t attributes = value ? add_string(&request, attribute, value) : 0;
  request.header.nlmsg_len = (uint32_t)(NLMSG_LENGTH(GENL_HDRLEN) + attributes);
  request.header.nlmsg_type = family;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  request.header.nlmsg_seq = 1;
  request.genl.cmd = command;
  request.genl.version = 1;
  struct sockaddr_nl kernel;
  memset(&kernel, 0, sizeof kernel);
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, &request, request.header.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) return -errno;
  return 0;
}

int smcpair_genl_family(const char *name, uint32_t *commands) {
  *commands = 0;
  int fd = open_socket();
  if (fd < 0) return fd;
  int result = send_request(fd, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_NAME, name);
  if (result < 0) {
    close(fd);
    return result;
  }
  char buffer[8192];
  int family = -ENOENT;
  for (;;) {
    ssize_t length = recv(fd, buffer, sizeof buffer, 0);
    if (length < 0) {
      family = -errno;
      break;
    }
    int done = 0;
    for (struct nlmsghdr *header = (struct nlmsghdr *)buffer; NLMSG_OK(header, (size_t)length);
         header = NLMSG_NEXT(header, length)) {
      if (header->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *error = (struct nlmsgerr *)NLMSG_DATA(header);
        if (error->error != 0) family = error->error;
        done = 1;
        break;
      }
      if (header->nlmsg_type == NLMSG_DONE) {
        done = 1;
        break;
      }
      struct genlmsghdr *genl = (struct genlmsghdr *)NLMSG_DATA(header);
      int remaining = (int)header->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
      struct nlattr *attribute = (struct nlattr *)((char *)genl + GENL_HDRLEN);
      while (remaining >= (int)sizeof(struct nlattr) && attribute->nla_len >= sizeof(struct nlattr) &&
             attribute->nla_len <= remaining) {
        if (attribute->nla_type == CTRL_ATTR_FAMILY_ID) {
          family = *(uint16_t *)((char *)attribute + NLA_HDRLEN);
        } else if ((attribute->nla_type & NLA_TYPE_MASK) == CTRL_ATTR_OPS) {
          // Nested list of ops, each nested with CTRL_ATTR_OP_ID.
          int opsLeft = attribute->nla_len - NLA_HDRLEN;
          struct nlattr *op = (struct nlattr *)((char *)attribute + NLA_HDRLEN);
          while (opsLeft >= (int)sizeof(struct nlattr) && op->nla_len >= sizeof(struct nlattr) && op->nla_len <= opsLeft) {
            int fieldsLeft = op->nla_len - NLA_HDRLEN;
            struct nlattr *field = (struct nlattr *)((char *)op + NLA_HDRLEN);
            while (fieldsLeft >= (int)sizeof(struct nlattr) && field->nla_len >= sizeof(struct nlattr) &&
                   field->nla_len <= fieldsLeft) {
              if (field->nla_type == CTRL_ATTR_OP_ID) {
                uint32_t id = *(uint32_t *)((char *)field + NLA_HDRLEN);
                if (id >= 251 && id <= 253) *commands |= 1u << (id - 251);
              }
              fieldsLeft -= NLA_ALIGN(field->nla_len);
              field = (struct nlattr *)((char *)field + NLA_ALIGN(field->nla_len));
            }
            opsLeft -= NLA_ALIGN(op->nla_len);
            op = (struct nlattr *)((char *)op + NLA_ALIGN(op->nla_len));
          }
        }
        remaining -= NLA_ALIGN(attribute->nla_len);
        attribute = (struct nlattr *)((char *)attribute + NLA_ALIGN(attribute->nla_len));
      }
    }
    if (done) break;
  }
  close(fd);
  return family;
}

int smcpair_genl_command(int family, uint8_t command, uint16_t attribute, const char *value) {
  int fd = open_socket();
  if (fd < 0) return fd;
  int result = send_request(fd, (uint16_t)family, command, attribute, value);
  if (result == 0) {
    char buffer[4096];
    ssize_t length = recv(fd, buffer, sizeof buffer, 0);
    if (length < 0) {
      result = -errno;
    } else {
      struct nlmsghdr *header = (struct nlmsghdr *)buffer;
      if (NLMSG_OK(header, (size_t)length) && header->nlmsg_type == NLMSG_ERROR) {
        result = ((struct nlmsgerr *)NLMSG_DATA(header))->error;
      }
    }
  }
  close(fd);
  return result;
}
